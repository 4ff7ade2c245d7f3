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
/// value is moved into a mailbox actor, which takes requests in arrival order and runs them
/// in turns: each `&mut self` handler alone through [`dispatch`](Self::dispatch), the `&self`
/// handlers interleaved with each other through [`reads`](Self::reads). See the
/// [actors guide](crate::docs::actors).
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

    /// Runs endpoint number `endpoint` (an index into [`HandlerDef::endpoints`]) as a write
    /// turn: the actor calls it for endpoints whose [`EndpointDef::turn`] is
    /// [`Turn::Write`], with no other handler of this value running.
    fn dispatch<'a>(
        &'a mut self,
        ctx: &'a Context,
        endpoint: usize,
        req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>>;

    /// The `&self` handlers, which run as read turns, or `None` when the block has none.
    ///
    /// The default has none: every endpoint is a write turn.
    fn reads(&self) -> Option<&dyn Reads> {
        None
    }

    /// A copy of the state for another worker, when the block declares `workers = N` with
    /// `N > 1` (which requires `Clone`).
    fn replicate(&self) -> Option<Self>;

    /// A fresh state to replace one that a panicking write turn may have left half-updated,
    /// when the block declares `on_panic = "rebuild"` (which requires `Default`); `None`
    /// keeps the state as the handler left it.
    ///
    /// The default keeps it.
    fn rebuild() -> Option<Self> {
        None
    }
}

/// The `&self` handlers of a [`Handler`], which an actor runs as read turns: several at once,
/// interleaved on the actor's task, each borrowing the state it cannot change.
///
/// `#[micro::service]` implements it for blocks with `&self` handlers; they need the type to
/// be `Sync`, as they always did, since their futures hold `&self` across awaits.
///
/// ```
/// use micro::prelude::*;
/// use micro::{Handler, Turn};
///
/// #[derive(Default)]
/// struct Counter { n: u64 }
///
/// #[micro::service(name = "counter")]
/// impl Counter {
///     pub async fn get(&self) -> micro::Result<u64> { Ok(self.n) }
///     pub async fn add(&mut self, by: u64) -> micro::Result<u64> { self.n += by; Ok(self.n) }
/// }
///
/// assert_eq!(Counter::DEF.endpoints[0].turn, Turn::Read);
/// assert_eq!(Counter::DEF.endpoints[1].turn, Turn::Write);
/// assert!(Counter::default().reads().is_some());
/// ```
pub trait Reads: Sync {
    /// Runs endpoint number `endpoint`, whose [`EndpointDef::turn`] is [`Turn::Read`].
    fn dispatch_read<'a>(
        &'a self,
        ctx: &'a Context,
        endpoint: usize,
        req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>>;
}

/// How an endpoint takes the service value, which decides how its calls share the actor.
///
/// ```
/// assert_ne!(micro::Turn::Read, micro::Turn::Write);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Turn {
    /// `&self`: runs beside other reads, interleaved on the actor's task.
    Read,
    /// `&mut self`: waits for the reads in flight, then runs alone.
    Write,
}

/// Whether an endpoint's requests or replies are streams, from its handler's signature.
///
/// The registry lists a streaming endpoint with the metadata `stream` set to `server`,
/// `client` or `bidi`, so that tools know how to call it.
///
/// ```
/// assert_eq!(micro::StreamKind::Server.as_str(), "server");
/// assert_eq!(micro::StreamKind::Unary.as_str(), "");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StreamKind {
    /// One request, one reply.
    #[default]
    Unary,
    /// One request, a stream of replies: the handler returns a `Streaming`.
    Server,
    /// A stream of requests, one reply: the handler takes a `Streaming`.
    Client,
    /// A stream each way: the handler takes and returns a `Streaming`.
    Bidi,
}

impl StreamKind {
    /// The registry's name for it; empty for [`Unary`](Self::Unary).
    ///
    /// See the [type-level example](Self).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "",
            Self::Server => "server",
            Self::Client => "client",
            Self::Bidi => "bidi",
        }
    }

    /// The kind the registry's name stands for; [`Unary`](Self::Unary) for anything else.
    ///
    /// ```
    /// assert_eq!(micro::StreamKind::parse("bidi"), micro::StreamKind::Bidi);
    /// ```
    pub fn parse(name: &str) -> Self {
        match name {
            "server" => Self::Server,
            "client" => Self::Client,
            "bidi" => Self::Bidi,
            _ => Self::Unary,
        }
    }
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
    /// Read turns one actor runs at once (`reads = N`); 0 means the server's default.
    pub reads: usize,
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
    /// Whether the handler takes `&self` (a read turn) or `&mut self` (a write turn).
    pub turn: Turn,
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
    /// Whether requests or replies stream; for a stream, `request` and `response` name the
    /// item types.
    pub stream: StreamKind,
    /// The handler's doc comment, trimmed; empty when it has none. The registry lists it as
    /// the endpoint's `description` metadata.
    pub doc: &'static str,
    /// Describes the request and response types, with their fields; called once per
    /// registration, so that a service pays for tracing its types only when it starts.
    pub describe: fn() -> crate::registry::Description,
}
