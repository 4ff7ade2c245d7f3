//! The client side: finding a node and making calls.
//!
//! Most code calls services through the typed clients that `#[micro::service]` generates,
//! each built on a [`Client`]. A `Client` comes from a [`Runtime`] (whose registry cache,
//! connections and in-process services it shares) and holds call defaults. It is cheap to
//! clone and meant to be shared. Inside a handler, use the running service's own client,
//! [`Context::client`]: it follows the service's configuration, deadline and trace.
//!
//! A client is a stack of [`tower`] services, each one concern:
//!
//! ```text
//! trace → deadline → your layers (ClientBuilder::layer) → retry policy → balance → node
//! ```
//!
//! 0. **trace**: a `call` span around the whole call, whose W3C context goes out as the
//!    `traceparent` metadata (see [`telemetry`](crate::telemetry));
//! 1. **deadline**: the call's timeout ([`Call::timeout`], else the client's, 5 s), never
//!    past the deadline of the call being served when made from inside a handler;
//! 2. **your layers**: any [`tower::Layer`], such as a concurrency limit;
//! 3. **retry policy**: retries, on another node when there is one (up to
//!    [`ClientBuilder::retries`], default 1, with jittered backoff inside the deadline and
//!    within a retry budget of about a fifth of the calls, so that retries cannot double the
//!    load of an overloaded service), what provably did not run: the connection was refused,
//!    the request was never written, or the service turned it away before running it (a
//!    full mailbox, shutting down: the reply says so with a flag). A handler's own error is
//!    never retried, whatever its code; a call that may have run (the connection broke
//!    after sending) is retried only when it is [idempotent](Call::idempotent);
//! 4. **balance**: looks the service up in the registry through the runtime's cache (kept
//!    current by a watch, and serving the last answer while the registry is unreachable),
//!    keeps the nodes whose record lists the endpoint and that pass the call's filters
//!    ([`Call::version`], [`Call::node_metadata`]), leaves out nodes ejected after a
//!    refused or lost connection or a timed-out attempt (10 s, doubling on each repeat up
//!    to 5 minutes, ended by a success; [`ClientBuilder::ejection`]) unless no other node
//!    remains, and lets the [selector](crate::selector) pick one;
//! 5. **node**: a node served by this same runtime is called in-process, with no socket
//!    and no encoding (turn that off with [`ClientBuilder::fast_path`]); any other over a
//!    pooled, multiplexed connection.
//!
//! ```
//! use std::time::Duration;
//! use micro::prelude::*;
//!
//! #[derive(Default)]
//! struct Adder;
//!
//! #[micro::service(name = "adder")]
//! impl Adder {
//!     pub async fn add(&self, (a, b): (i64, i64)) -> micro::Result<i64> {
//!         Ok(a + b)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
//! let runtime = micro::Runtime::from_env()?;
//! let service = runtime.service("adder").handle(Adder).start().await?;
//!
//! let adder = AdderClient::new(runtime.client());
//! assert_eq!(adder.add((2, 3)).timeout(Duration::from_secs(1)).await?, 5);
//!
//! // The same call through the network and JSON, as a tool would make it:
//! let wire = runtime.client_builder().fast_path(false).build();
//! let sum = wire
//!     .call_json("adder", "Adder.Add", serde_json::json!([40, 2]))
//!     .await?;
//! assert_eq!(sum, 42);
//! # service.stop().await; Ok(()) }
//! ```

mod balance;
mod budget;
mod call;
mod conn;
mod deadline;
mod pool;
mod retry;
mod stream;
mod trace;

pub use crate::discovery::DEFAULT_EJECTION;
pub use call::Call;
pub use stream::StreamCall;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryFutureExt;
use futures_util::future::Either;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::Instrument;

use crate::broker::Broker;
use crate::codec::ContentType;
use crate::middleware::{BoxLayer, BoxService, Request};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::selector::{Random, Selector};
use crate::telemetry::{TraceParent, trace as spans};
use crate::wire::DEFAULT_MAX_FRAME;
use crate::{Context, Error, Message, Payload};

/// Calls services. See the [module docs](self).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    stack: Stack,
    balance: balance::Balance,
    broker: Option<Arc<dyn Broker>>,
    timeout: Duration,
    content_type: ContentType,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry().name())
            .field("timeout", &self.inner.timeout)
            .field("content_type", &self.inner.content_type)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
///
/// Values set here are defaults that `MICRO_CLIENT_*` variables and flags override (see
/// [`config`](crate::config)); objects (a registry, a broker, a selector, layers) are used
/// as given.
///
/// ```
/// use std::time::Duration;
/// let client = micro::Client::builder()
///     .timeout(Duration::from_secs(2))
///     .selector(micro::selector::RoundRobin::default())
///     .connections_per_node(2)
///     .build();
/// # drop(client);
/// ```
#[must_use]
pub struct ClientBuilder {
    runtime: Option<Runtime>,
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    ejection: Duration,
    selector: Arc<dyn Selector>,
    retries: u32,
    timeout: Duration,
    content_type: ContentType,
    fast_path: bool,
    per_node: usize,
    max_frame: usize,
    layers: Vec<BoxLayer>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("runtime", &self.runtime)
            .field("selector", &self.selector)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// The request timeout when none is set: 5 seconds, as go-micro.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of a call that provably did not run, when none is set: 1, as go-micro.
pub const DEFAULT_RETRIES: u32 = 1;

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            runtime: None,
            registry: None,
            broker: None,
            ejection: DEFAULT_EJECTION,
            selector: Arc::new(Random),
            retries: DEFAULT_RETRIES,
            timeout: DEFAULT_TIMEOUT,
            content_type: ContentType::Bincode,
            fast_path: true,
            per_node: 1,
            max_frame: DEFAULT_MAX_FRAME,
            layers: Vec::new(),
        }
    }
}

impl ClientBuilder {
    /// A builder for a client of `runtime`.
    pub(crate) fn with_runtime(runtime: Runtime) -> Self {
        Self {
            runtime: Some(runtime),
            ..Self::default()
        }
    }

    /// The runtime whose registry cache, connections and in-process services the client
    /// shares (default: one made from this process's `MICRO_*` variables).
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// let client = micro::Client::builder().runtime(runtime.clone()).build();
    /// assert!(std::sync::Arc::ptr_eq(client.registry(), runtime.registry()));
    /// ```
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// How many times to retry a call that provably did not run: the node refused the
    /// connection, the request was never written, or the service turned it away before
    /// running it (default 1). Each retry picks a node again, within the call's deadline. A
    /// call that may have run (the connection failed after the request was sent) is retried
    /// only when it is [`idempotent`](crate::Call::idempotent).
    ///
    /// See the [type-level example](Self).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Where to find services (default: the runtime's registry). The client then keeps a
    /// registry cache of its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let registry: Arc<dyn micro::registry::Registry> = Arc::new(micro::registry::MemoryRegistry::new());
    /// let client = micro::Client::builder().registry(registry.clone()).build();
    /// assert!(Arc::ptr_eq(client.registry(), &registry));
    /// ```
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The broker [`Client::publish`] sends through (default: the runtime's).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let client = micro::Client::builder().broker(Arc::new(micro::broker::MemoryBroker::new())).build();
    /// assert_eq!(client.broker().name(), "memory");
    /// ```
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// How long a node stays out of selection after a connection failure or timeout
    /// (default 10 s); doubled on each repeat up to 5 minutes, ended early by a success.
    ///
    /// See the [type-level example](Self).
    pub fn ejection(mut self, base: Duration) -> Self {
        self.ejection = base;
        self
    }

    /// How to choose among a service's nodes (default: [`Random`]).
    ///
    /// See the [type-level example](Self).
    pub fn selector(mut self, selector: impl Selector) -> Self {
        self.selector = Arc::new(selector);
        self
    }

    /// How long a call waits for its reply unless it sets its own (default 5 s;
    /// `MICRO_CLIENT_REQUEST_TIMEOUT` overrides it).
    ///
    /// See the [type-level example](Self).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The codec requests are sent in (default bincode).
    ///
    /// See the [type-level example](Self).
    pub fn content_type(mut self, content_type: ContentType) -> Self {
        self.content_type = content_type;
        self
    }

    /// Whether calls to services of the same runtime skip the network (default `true`).
    ///
    /// See the [type-level example](Self).
    pub fn fast_path(mut self, enabled: bool) -> Self {
        self.fast_path = enabled;
        self
    }

    /// Connections kept open to each node; calls spread over them (default 1, which already
    /// carries any number of concurrent calls; `MICRO_CLIENT_POOL_SIZE` overrides it).
    ///
    /// See the [type-level example](Self).
    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.per_node = n.max(1);
        self
    }

    /// The largest frame sent or accepted (default 4 MiB).
    ///
    /// See the [type-level example](Self).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Wraps every call in a [`tower::Layer`]; the first added is outermost. Layers run
    /// inside the call's deadline and outside retries and node selection: they see each
    /// call once, with its final outcome. See [`middleware`](crate::middleware).
    ///
    /// ```
    /// let client = micro::Client::builder()
    ///     .layer(tower::limit::ConcurrencyLimitLayer::new(32))
    ///     .build();
    /// # drop(client);
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<BoxService> + Send + Sync + 'static,
        L::Service: tower::Service<Request, Response = Payload, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(crate::middleware::boxed(layer));
        self
    }

    /// Builds the client.
    ///
    /// See the [type-level example](Self).
    pub fn build(self) -> Client {
        let base = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::from_env().unwrap_or_else(|e| {
                tracing::error!("ignoring the MICRO_* environment: {e}");
                Runtime::new(Default::default())
            }),
        };
        let runtime = base.derive(None, self.registry, None, None);
        let opts = runtime.options();
        let timeout = opts.client_request_timeout.unwrap_or(self.timeout);
        let retries = opts.client_retries.unwrap_or(self.retries);
        let per_node = opts.client_pool_size.unwrap_or(self.per_node);
        let balance = balance::Balance::new(balance::Settings {
            runtime: runtime.clone(),
            selector: self.selector,
            ejection: self.ejection,
            content_type: self.content_type,
            fast_path: self.fast_path,
            per_node,
            max_frame: self.max_frame,
        });
        let budget = Arc::new(budget::Budget::new(Instant::now()));
        let retrying =
            tower::retry::Retry::new(retry::Policy::new(retries, budget), balance.clone());
        let mut layers = self.layers;
        if let Some(token) = runtime.token() {
            // Outermost, so the caller's own layers see the token too.
            layers.insert(
                0,
                crate::middleware::boxed(crate::auth::TokenLayer::new(token)),
            );
        }
        let stack = if layers.is_empty() {
            Stack::Plain(retrying)
        } else {
            let retrying = retrying.map_err(|failure: balance::Failure| failure.error);
            Stack::Layered(crate::middleware::apply(&layers, BoxService::new(retrying)))
        };
        Client {
            inner: Arc::new(Inner {
                runtime,
                stack,
                balance,
                broker: self.broker,
                timeout,
                content_type: self.content_type,
            }),
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// A client that does not keep its runtime alive: how a runtime remembers the client it
/// hands out without a cycle (the client holds the runtime).
#[derive(Debug, Default)]
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    pub(crate) fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

/// The layers below the call's trace and deadline.
enum Stack {
    /// No layers: the retry policy over balance, by type, so that a call clones a few
    /// `Arc`s instead of a boxed stack and its future is part of the call's.
    Plain(tower::retry::Retry<retry::Policy, balance::Balance>),
    /// The caller's layers over the retry policy, type-erased.
    Layered(BoxService),
}

impl Stack {
    fn call(&self, request: Request) -> impl Future<Output = Result<Payload, Error>> + 'static {
        match self {
            Stack::Plain(retrying) => Either::Left(
                retrying
                    .clone()
                    .oneshot(request)
                    .map_err(|failure: balance::Failure| failure.error),
            ),
            Stack::Layered(stack) => Either::Right(stack.clone().oneshot(request)),
        }
    }
}

/// What a call asks of the client beyond its request: set through [`Call`]'s methods.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: crate::Metadata,
    pub(crate) node: Option<String>,
    pub(crate) content_type: Option<ContentType>,
    pub(crate) idempotent: bool,
    pub(crate) version: Option<String>,
    pub(crate) node_metadata: Vec<(String, String)>,
    /// For a streaming call, which directions stream (the open frame's flags); 0 otherwise.
    pub(crate) stream: u16,
    /// For a streaming call, when the whole stream must end.
    pub(crate) stream_deadline: Option<Instant>,
    /// When the client took the call: the instant its retry budget counts it at.
    pub(crate) started: Option<Instant>,
}

impl Client {
    /// A client of a runtime made from this process's `MICRO_*` variables.
    ///
    /// Each call of `new` makes a runtime of its own (a registry cache, connections): make
    /// one client and clone it, or take [`Runtime::client`] or a running service's
    /// [`client`](crate::RunningService::client), which share theirs.
    ///
    /// See [`Call`] for an example.
    pub fn new() -> Self {
        ClientBuilder::default().build()
    }

    /// Starts a client with settings of its own.
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// The runtime this client belongs to.
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert!(std::sync::Arc::ptr_eq(runtime.client().runtime().registry(), runtime.registry()));
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The registry this client looks services up in.
    ///
    /// See [`ClientBuilder::registry`] for an example.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        self.inner.runtime.registry()
    }

    /// The default timeout of this client's calls.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The broker [`publish`](Self::publish) sends through.
    ///
    /// See [`ClientBuilder::broker`] for an example.
    pub fn broker(&self) -> Arc<dyn Broker> {
        match &self.inner.broker {
            Some(broker) => broker.clone(),
            None => self.inner.runtime.broker().clone(),
        }
    }

    /// Opens the connections to every node of `service` now, instead of on the first call
    /// to each; returns how many nodes are connected.
    ///
    /// # Errors
    /// When the service cannot be looked up, or no node accepts a connection.
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// let nodes = client.connect("greeter").await?;
    /// assert!(nodes > 0);
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, service: &str) -> Result<usize, Error> {
        self.inner.balance.connect(service).await
    }

    /// Publishes `event` on `topic` through the client's broker; add metadata to the returned
    /// [`Publish`], then `.await` it.
    ///
    /// See the [`broker`](crate::broker) module for what delivery guarantees.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let client = micro::Client::builder()
    ///     .broker(std::sync::Arc::new(micro::broker::MemoryBroker::new()))
    ///     .build();
    /// client.publish("user.joined", &"ada").metadata("source", "docs").await?;
    /// # Ok(()) }
    /// ```
    pub fn publish<T: serde::Serialize + ?Sized>(&self, topic: &str, event: &T) -> Publish {
        let content_type = self.inner.content_type;
        let body = content_type.encode(event).map_err(|e| {
            Error::bad_request(
                "micro.client",
                format_args!("cannot encode the event for {topic} as {content_type}: {e}"),
            )
        });
        Publish {
            broker: self.broker(),
            observe: self.inner.runtime.observe().clone(),
            topic: topic.to_owned(),
            body,
            content_type,
            metadata: crate::Metadata::new(),
        }
    }

    /// Starts a call to `endpoint` of `service`, typed by hand (generated clients do this for
    /// you).
    ///
    /// See [`Call`] for an example.
    pub fn call<Req: Message, Resp: Message>(
        &self,
        service: Arc<str>,
        endpoint: &'static str,
        req: Req,
    ) -> Call<Req, Resp> {
        Call::new(self.clone(), service, Cow::Borrowed(endpoint), req)
    }

    /// Starts a call with a JSON request and reply, sent as JSON: how tools call services
    /// whose Rust types they do not have.
    ///
    /// See the [module docs](self) for an example.
    pub fn call_json(
        &self,
        service: &str,
        endpoint: &str,
        req: serde_json::Value,
    ) -> Call<serde_json::Value, serde_json::Value> {
        Call::new(
            self.clone(),
            service.into(),
            Cow::Owned(endpoint.to_owned()),
            req,
        )
        .content_type(ContentType::Json)
    }

    /// Runs a call through the stack, under its deadline. Call it from the task that awaits
    /// it: the call being served there gives it its parent deadline and trace.
    ///
    /// Not an `async fn`: one would keep its arguments beside the request made of them.
    pub(crate) fn invoke(
        &self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        payload: Payload,
        mut opts: CallOptions,
    ) -> impl Future<Output = Result<Payload, Error>> + '_ {
        let inner = &*self.inner;
        let timeout = opts.timeout.unwrap_or(inner.timeout);
        let started = Instant::now();
        let Some(mut deadline) = started.checked_add(timeout) else {
            return Either::Left(std::future::ready(Err(Error::bad_request(
                "micro.client",
                format_args!("timeout {timeout:?} is too long: it ends past what a clock can hold"),
            ))));
        };
        let current = Context::current();
        if let Some(d) = current.as_ref().and_then(Context::deadline) {
            deadline = deadline.min(d);
        }
        let mut request = Request::new(
            service,
            endpoint,
            std::mem::take(&mut opts.metadata),
            stream::call_deadline(&opts, deadline),
            payload,
        );
        if opts.content_type.is_none() {
            opts.content_type = Some(inner.content_type);
        }
        opts.timeout = Some(timeout);
        opts.started = Some(started);
        request.options = Arc::new(opts);
        // trace → deadline → stack, as one future: the call's own.
        let observe = inner.runtime.observe();
        let traced = trace::Traced::start(observe, current.as_ref(), &mut request);
        let deadline = deadline::Deadline::of(&request);
        Either::Right(traced.run(
            observe,
            started,
            deadline::within(deadline, inner.stack.call(request)),
        ))
    }
}

/// An event being published: add metadata, then `.await` it.
///
/// See [`Client::publish`].
#[must_use = "an event is published when the Publish is awaited"]
#[derive(Debug)]
pub struct Publish {
    broker: Arc<dyn Broker>,
    observe: Arc<crate::metrics::Observe>,
    topic: String,
    body: Result<bytes::Bytes, Error>,
    content_type: ContentType,
    metadata: crate::Metadata,
}

impl Publish {
    /// Adds a metadata header to the message.
    ///
    /// See [`Client::publish`].
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

impl std::future::IntoFuture for Publish {
    type Output = Result<(), Error>;
    type IntoFuture = crate::BoxFuture<'static, Result<(), Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut headers = self.metadata;
            let span = spans::publish_span(&self.topic);
            let current = Context::current();
            let parent = TraceParent::from_metadata(&headers)
                .or_else(|| current.as_ref().and_then(Context::trace));
            if let Some(tp) = spans::link(&span, parent) {
                let state = current.as_ref().and_then(|c| c.trace_state());
                spans::inject(&mut headers, &tp, state);
            }
            headers.insert(
                crate::broker::CONTENT_TYPE.to_owned(),
                self.content_type.mime().to_owned(),
            );
            let msg = crate::broker::Message {
                headers,
                body: self.body?,
            };
            let result = self
                .broker
                .publish(&self.topic, msg)
                .instrument(span.clone())
                .await
                .map_err(Into::into);
            if result.is_ok() {
                self.observe.publish(&self.topic);
            }
            spans::record_outcome(&span, &result);
            result
        })
    }
}

/// How a connection-level call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Provably not sent.
    NotRun(Error),
    /// Sent, or failed for good.
    Final(Error),
}
