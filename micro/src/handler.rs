//! The contract between `#[micro::service]` and the runtime.

use std::future::Future;
use std::pin::Pin;

use crate::{Context, Error, Payload};

/// A boxed, `Send` future, as trait objects in micro return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A serde type that can be a request, a reply or an event.
///
/// Implemented for every `Serialize + DeserializeOwned + Send + 'static` type: derive
/// serde's traits and you are done.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Ping { seq: u64 }
///
/// fn takes<M: micro::Message>(_: M) {}
/// takes(Ping { seq: 1 });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel as a micro request, reply or event",
    label = "needs `serde::Serialize + serde::Deserialize`, `Send` and `'static`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the type, or use a type that has them"
)]
pub trait Message: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> Message for T {}

/// A service implementation, as `#[micro::service]` generates it for an `impl` block.
///
/// You do not implement this by hand: put `#[micro::service]` on the block. The service
/// value is moved into a mailbox actor, which calls [`dispatch`](Self::dispatch) for each
/// request in arrival order.
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Default)]
/// struct Counter { n: u64 }
///
/// #[micro::service(name = "counter")]
/// impl Counter {
///     pub async fn add(&mut self, by: u64) -> micro::Result<u64> {
///         self.n += by;
///         Ok(self.n)
///     }
/// }
///
/// use micro::Handler;
/// assert_eq!(Counter::DEF.endpoints[0].name, "Counter.Add");
/// assert_eq!(Counter::DEF.service, "counter");
/// ```
pub trait Handler: Send + Sized + 'static {
    /// What the block declares: names, endpoints and their types.
    const DEF: &'static HandlerDef;

    /// Runs endpoint number `endpoint` (an index into [`HandlerDef::endpoints`]).
    fn dispatch<'a>(
        &'a mut self,
        ctx: &'a Context,
        endpoint: usize,
        req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>>;

    /// A copy of the state for another worker, when the block declares `workers = N` with
    /// `N > 1` (which requires `Clone`).
    fn replicate(&self) -> Option<Self>;
}

/// The static description of a `#[micro::service]` block.
#[derive(Debug)]
pub struct HandlerDef {
    /// The Rust type name, such as `Greeter`.
    pub type_name: &'static str,
    /// The service name from `name = "..."`, else the type name in lower case.
    pub service: &'static str,
    /// The version from `version = "..."`, else `latest`.
    pub version: &'static str,
    /// Actors to run over the shared mailbox (`workers = N`, default 1).
    pub workers: usize,
    /// Mailbox capacity (`mailbox = N`); 0 means the server's default.
    pub mailbox: usize,
    /// The endpoints, in declaration order.
    pub endpoints: &'static [EndpointDef],
}

/// One endpoint of a [`HandlerDef`].
#[derive(Debug)]
pub struct EndpointDef {
    /// The wire name, `Type.Method` in CamelCase: `Greeter.SayHello`.
    pub name: &'static str,
    /// The Rust method name: `say_hello`.
    pub method: &'static str,
    /// The request type as written (`()` when the handler takes none).
    pub request: &'static str,
    /// The response type as written.
    pub response: &'static str,
    /// For a `#[micro::subscribe]` handler, the topic it receives; empty for a call.
    pub topic: &'static str,
    /// For a subscriber in a queue group, the group; empty otherwise.
    pub queue: &'static str,
    /// Whether the call is safe to send twice (`#[micro(idempotent)]`). When a connection
    /// fails after the request was sent, the client cannot know whether the handler ran;
    /// it resends an idempotent call to another node, so the handler may run twice. Only
    /// mark handlers whose repeat is harmless, such as reads. The generated client makes
    /// its calls [`idempotent`](crate::Call::idempotent), and the registry lists the
    /// endpoint with the metadata `idempotent = "true"`.
    pub idempotent: bool,
    /// The handler's doc comment, trimmed; empty when it has none. The registry lists it as
    /// the endpoint's `description` metadata.
    pub doc: &'static str,
    /// Describes the request and response types, with their fields; called once per
    /// registration, so that a service pays for tracing its types only when it starts.
    pub describe: fn() -> crate::registry::Description,
}
