//! The `#[micro::service]` attribute of [micro](https://docs.rs/micro).
//!
//! Depend on `micro`, which re-exports the macro as `micro::service`; this
//! crate is an implementation detail and moves in lockstep with it.
//!
//! ```
//! use micro::prelude::*;
//!
//! #[derive(Default)]
//! struct Greeter;
//!
//! #[micro::service(name = "greeter")]
//! impl Greeter {
//!     /// Greets `name`.
//!     pub async fn say_hello(&self, name: String) -> micro::Result<String> {
//!         Ok(format!("Hello, {name}!"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro::Result<()> {
//! let service = micro::Service::new("greeter").handle(Greeter).start().await?;
//! let greeter = GreeterClient::new(service.client());
//! assert_eq!(greeter.say_hello("Ada".into()).await?, "Hello, Ada!");
//! # service.stop().await;
//! # Ok(())
//! # }
//! ```

mod internals;
mod service;

use proc_macro::TokenStream;

/// Serves the `pub` methods of an inherent `impl` block as a micro service.
///
/// # Arguments
///
/// All optional, as in `#[micro::service(name = "greeter", workers = 4)]`:
///
/// - `name = "..."`: the service name clients call; default: the type name in
///   lower case.
/// - `version = "..."`: the version registered; default: `latest`.
/// - `workers = N`: how many actors serve the one mailbox, each with its own
///   clone of the value, so the type must be `Clone`; default: 1.
/// - `mailbox = N`: how many requests may wait in the mailbox; default: the
///   runtime's.
///
/// # Endpoints
///
/// Every `pub` method, in any `pub(...)` form, is an endpoint unless it is
/// marked `#[micro(skip)]`; private methods, constants and types stay ordinary
/// members of the block. An endpoint has this shape:
///
/// ```text
/// pub async fn name(&self or &mut self, [ctx: &micro::Context,] [req: Request]) -> Result<Reply, E>
/// ```
///
/// `Request` and `Reply` are owned serde types (`micro::Message`), and
/// `E: Into<micro::Error>`, so `micro::Result<Reply>` is the usual return type.
/// A request of `_: ()` is the same as none. On the wire, the endpoint is
/// `Type.Method` in CamelCase: `say_hello` on `Greeter` is `Greeter.SayHello`.
///
/// # Generated items
///
/// - `impl micro::Handler for Greeter`: the routing table, `Greeter::DEF`, and
///   the dispatch from the actor to the methods.
/// - `GreeterClient`, a typed client: `new(client)`, `with_service(client,
///   name)` for another service name, `client()`, and one method per endpoint,
///   which carries the handler's docs, takes its request, and returns a
///   `micro::Call` to configure and `.await`. The client has the widest
///   visibility of the endpoints: `pub(crate)` handlers keep it in the crate.
///
/// # Compile errors
///
/// All mistakes are reported in one build, each on the token at fault: a
/// handler that is not `async`, lacks `&self`, takes `self` by value, is
/// generic or takes more than one request; a request or reply type that is not
/// serde, borrows, or names `Self`; a return type that is not a `Result`; a
/// method named `new`, `with_service` or `client`, which the client already
/// has; two methods with the same wire name; the attribute on a trait impl, a
/// generic impl or something other than an impl; unknown or repeated
/// arguments, and `workers = 0`.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let service::Expansion { mut tokens, result } = service::expand(args.into(), input.into());
    if let Err(error) = result {
        tokens.extend(error.into_compile_error());
    }
    tokens.into()
}
