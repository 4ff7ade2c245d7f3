//! The `#[micro::service]` and `#[micro::subscribe]` attributes of
//! [micro](https://docs.rs/micro).
//!
//! Depend on `micro`, which re-exports the macros as `micro::service` and
//! `micro::subscribe`; this crate is an implementation detail and moves in
//! lockstep with it.
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
mod subscribe;

use proc_macro::TokenStream;

/// What a macro emits: the best expansion it could build, and every error
/// found on the way.
struct Expansion {
    tokens: proc_macro2::TokenStream,
    result: syn::Result<()>,
}

impl Expansion {
    fn into_tokens(self) -> TokenStream {
        let Expansion { mut tokens, result } = self;
        if let Err(error) = result {
            tokens.extend(error.into_compile_error());
        }
        tokens.into()
    }
}

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
/// - `reads = N`: how many `&self` handlers one actor runs at once; default:
///   the runtime's (`micro::DEFAULT_READS`, 64). `reads = 1` runs one request
///   at a time.
/// - `on_panic = "keep"` or `"rebuild"`: what happens to the value after a
///   `&mut self` handler panics. `"keep"` (the default) keeps it as the
///   handler left it; `"rebuild"` replaces it with `Default::default()`, so the
///   type must be `Default`, and counts a restart in the stats.
///
/// # Turns
///
/// The actor takes requests in arrival order. A `&self` handler is a read
/// turn: it runs beside the other reads in flight, interleaved on the actor's
/// task, so one that waits on I/O does not hold up the others. A `&mut self`
/// handler is a write turn: it waits until the reads in flight finish, then
/// runs alone, and no read that arrived after it starts before it ends. A
/// block with `&self` handlers must therefore be `Sync`. See the actors guide
/// in `micro::docs`.
///
/// # Endpoints
///
/// Every `pub` method, in any `pub(...)` form, is an endpoint unless it is
/// marked `#[micro(skip)]`; private methods, constants and types stay ordinary
/// members of the block. A method marked
/// [`#[micro::subscribe(topic = "...")]`](macro@subscribe), `pub` or not,
/// receives events instead. An endpoint has this shape:
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
/// # Idempotent endpoints
///
/// When a connection fails after the request was sent, the client cannot know
/// whether the handler ran, so by default it fails the call instead of sending
/// it again: only what provably did not run is retried. Mark an endpoint
/// `#[micro(idempotent)]` when running it twice is harmless, as for a read; the
/// generated client method then calls `.idempotent()` on its `micro::Call`, so
/// that such a call is sent again to another node. The routing table records
/// the mark, and the registry lists the endpoint with the metadata
/// `idempotent = "true"`.
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Default)]
/// struct Accounts { balance: u64 }
///
/// #[micro::service(name = "accounts")]
/// impl Accounts {
///     /// Only reads: safe to send twice.
///     #[micro(idempotent)]
///     pub async fn balance(&self) -> micro::Result<u64> {
///         Ok(self.balance)
///     }
///
///     /// Not marked: a repeat would deposit twice.
///     pub async fn deposit(&mut self, amount: u64) -> micro::Result<u64> {
///         self.balance += amount;
///         Ok(self.balance)
///     }
/// }
///
/// use micro::Handler;
/// assert!(Accounts::DEF.endpoints[0].idempotent);
/// assert!(!Accounts::DEF.endpoints[1].idempotent);
/// ```
///
/// Any call can still opt in on its own, say when it carries an idempotency
/// key: `accounts.deposit(10).idempotent().await`.
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
///   Subscribers get no client method, and a block of subscribers only gets
///   no client.
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
/// arguments, `workers = 0`, `reads = 0` and an `on_panic` policy other than
/// `"keep"` or `"rebuild"`; a type that is not `Sync` with `&self` handlers
/// (on the first `self`), or not `Default` with `on_panic = "rebuild"` (on the
/// policy); `#[micro(idempotent)]` on a subscriber, a
/// skipped or private method, or with a value.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    service::expand(args.into(), input.into()).into_tokens()
}

/// Receives the events published on a topic, in a service or on its own.
///
/// # Arguments
///
/// - `topic = "..."`, required: the topic to receive, as publishers name it
///   in `client.publish(topic, &event)`.
/// - `queue = "..."`: a queue group. Each event goes to one member of the
///   group instead of to every subscriber, so that the instances of a service
///   share the work.
///
/// # In a service
///
/// On a method of a [`#[micro::service]`](macro@service) block, the method
/// receives the events in the service's actor, in turn with its calls: a
/// `&self` subscriber runs beside the other reads, a `&mut self` one alone,
/// so it needs no lock. A free subscriber (below) has no state and receives
/// its events one at a time. The service macro reads the attribute by name,
/// so the short `#[subscribe(...)]` works there too, without an import. The
/// method has this shape:
///
/// ```text
/// async fn name(&self or &mut self, [ctx: &micro::Context,] event: Event) -> Result<(), E>
/// ```
///
/// `Event` is an owned serde type (`micro::Message`) and `E:
/// Into<micro::Error>`. `Ok(())` acknowledges the event; an error, a panic or
/// a timeout leaves it unacknowledged, which the broker reports to the
/// publisher. The method need not be `pub`, and it gets no method on the
/// typed client. It is an endpoint all the same, `Type.Method` on the wire,
/// registered with the metadata `subscriber = true`, `topic` and `queue`.
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Created { id: String }
///
/// #[derive(Default)]
/// struct Stats { created: u64 }
///
/// #[micro::service(name = "stats")]
/// impl Stats {
///     #[micro::subscribe(topic = "consignment.created", queue = "stats")]
///     async fn on_created(&mut self, _event: Created) -> micro::Result<()> {
///         self.created += 1;
///         Ok(())
///     }
///
///     /// How many consignments were created.
///     pub async fn created(&self) -> micro::Result<u64> {
///         Ok(self.created)
///     }
/// }
/// ```
///
/// # On a function
///
/// On a free `async fn`, of the same shape without `self`, the attribute
/// turns the function into a handler of its own: a unit struct of the same
/// name, which a service serves like any other handler type. Its endpoint is
/// the function name in CamelCase followed by `.Handle`
/// (`CountCreated.Handle`), and `count_created::call(event)` still runs the
/// body directly, as tests like to.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use micro::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Created { id: String }
///
/// static CREATED: AtomicU64 = AtomicU64::new(0);
///
/// /// Counts the consignments created.
/// #[micro::subscribe(topic = "consignment.created", queue = "counter")]
/// async fn count_created(event: Created) -> micro::Result<()> {
///     let _ = event.id;
///     CREATED.fetch_add(1, Ordering::Relaxed);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro::Result<()> {
/// let broker = Arc::new(micro::broker::MemoryBroker::new());
/// let service = micro::Service::new("counter")
///     .broker(broker.clone())
///     .handle(count_created)
///     .start()
///     .await?;
/// let client = micro::Client::builder().broker(broker).build();
/// client.publish("consignment.created", &Created { id: "c1".into() }).await?;
/// assert_eq!(CREATED.load(Ordering::Relaxed), 1);
///
/// count_created::call(Created { id: "c2".into() }).await?;
/// assert_eq!(CREATED.load(Ordering::Relaxed), 2);
/// # service.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// # Compile errors
///
/// All mistakes are reported in one build, each on the token at fault: a
/// missing or empty `topic`, unknown or repeated arguments, values that are
/// not string literals; a subscriber that is not `async`, is generic, takes
/// no event or more than one, returns anything but `Result<(), E>`, or has an
/// event type that is not serde; the attribute on something other than a
/// function, on a method outside a `#[micro::service]` block, or next to
/// `#[micro(skip)]` or `#[micro(idempotent)]`, as idempotence applies to
/// calls. One mistake the macro cannot name: on an associated
/// function without `self` in a plain impl block, which it cannot tell from a
/// free function, rustc reports that a struct is not supported in impls; move
/// the function out of the block, or put the block under `#[micro::service]`
/// and give the function `&self`.
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, input: TokenStream) -> TokenStream {
    subscribe::expand(args.into(), input.into()).into_tokens()
}
