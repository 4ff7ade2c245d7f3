//! The client side: finding a node and making calls.
//!
//! Most code calls services through the typed clients that `#[micro::service]` generates,
//! each built on a [`Client`]. A `Client` holds the registry and selector used to find nodes,
//! the pooled connections to them, and call defaults. It is cheap to clone and meant to be
//! shared.
//!
//! A call to a service hosted in this same process skips the network: the typed request goes
//! straight into the handler's mailbox, unencoded. Turn that off with
//! [`ClientBuilder::fast_path`] (or address a node explicitly with [`Call::node`]) to exercise
//! the full wire path, as tests of the wire do.
//!
//! For a call over the network, the client:
//!
//! 1. looks the service up in the registry, reusing the answer for a second, and keeping the
//!    last answer (with a warning) while the registry is unreachable;
//! 2. keeps the nodes whose record lists the endpoint and that pass the call's filters
//!    ([`Call::version`], [`Call::node_metadata`]);
//! 3. leaves out nodes ejected after a refused or lost connection or a timed-out attempt
//!    (10 s, doubling on each repeat up to 5 minutes, ended by a success;
//!    [`ClientBuilder::ejection`]), unless no other node remains;
//! 4. lets the [selector](crate::selector) pick one (random by default; least outstanding
//!    requests sends fewer calls to slow nodes);
//! 5. on failure, retries on another node (up to [`ClientBuilder::retries`], default 1,
//!    with jittered backoff inside the call's deadline) what provably did not run: refused
//!    connections, a connection closing before the request was sent, `overloaded` rejections.
//!    A call that may have run (the connection broke after sending) is retried only when it
//!    is [idempotent](Call::idempotent).
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
//! let service = micro::Service::new("adder").handle(Adder).start().await?;
//!
//! let adder = AdderClient::new(micro::Client::new());
//! assert_eq!(adder.add((2, 3)).timeout(Duration::from_secs(1)).await?, 5);
//!
//! // The same call through the network and JSON, as a tool would make it:
//! let wire = micro::Client::builder().fast_path(false).build();
//! let sum = wire
//!     .call_json("adder", "Adder.Add", serde_json::json!([40, 2]))
//!     .await?;
//! assert_eq!(sum, 42);
//! # service.stop().await; Ok(()) }
//! ```

pub(crate) mod cache;
mod call;
mod conn;
mod pool;

pub use call::Call;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::codec::ContentType;
use crate::middleware::{Chain, Middleware, Request};
use crate::registry::{self, Node, Registry};
use crate::selector::{Random, Selector};
use crate::server::{HEADER_ALLOWANCE, local};
use crate::transport::{Memory, Tcp, Transport};
use crate::wire::{DEFAULT_MAX_FRAME, Frame, Outgoing};

use crate::{Context, Error, Message, Payload, TRACE_ID};

/// Calls services. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Option<Arc<dyn Broker>>,
    selector: Arc<dyn Selector>,
    pool: pool::Pool,
    cache: Arc<cache::Cache>,
    ejected: dashmap::DashMap<String, Ejection>,
    ejection: Duration,
    retries: u32,
    timeout: Duration,
    content_type: ContentType,
    fast_path: bool,
    max_frame: usize,
    middleware: Chain,
}

/// Builds a [`Client`].
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
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    registry: Arc<dyn Registry>,
    broker: Option<Arc<dyn Broker>>,
    ejection: Duration,
    selector: Arc<dyn Selector>,
    retries: u32,
    timeout: Duration,
    content_type: ContentType,
    fast_path: bool,
    per_node: usize,
    max_frame: usize,
    middleware: Chain,
}

/// The request timeout when none is set: 5 seconds, as go-micro.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of a call that provably did not run, when none is set: 1, as go-micro.
pub const DEFAULT_RETRIES: u32 = 1;

/// The `MICRO_*` variables of this process apply: `MICRO_CLIENT_REQUEST_TIMEOUT`,
/// `MICRO_CLIENT_RETRIES`, `MICRO_CLIENT_POOL_SIZE`, and the registry settings.
impl Default for ClientBuilder {
    fn default() -> Self {
        Self::from_options(None)
    }
}

impl ClientBuilder {
    /// Defaults overridden by `opts` (or by this process's `MICRO_*` variables when `None`).
    pub(crate) fn from_options(opts: Option<&crate::config::Options>) -> Self {
        let opts = opts.unwrap_or_else(|| crate::config::process_env());
        Self {
            registry: crate::registry::default_registry(),
            broker: None,
            ejection: DEFAULT_EJECTION,
            selector: Arc::new(Random),
            retries: opts.client_retries.unwrap_or(DEFAULT_RETRIES),
            timeout: opts.client_request_timeout.unwrap_or(DEFAULT_TIMEOUT),
            content_type: ContentType::Bincode,
            fast_path: true,
            per_node: opts.client_pool_size.unwrap_or(1),
            max_frame: DEFAULT_MAX_FRAME,
            middleware: Chain::default(),
        }
    }

    /// How many times to retry a call that provably did not run: the node refused the
    /// connection, the connection was closing before the request was sent, or the service
    /// rejected it as overloaded before it was queued (default 1). Each retry picks a node
    /// again, within the call's deadline. A call that may have run (the connection failed
    /// after the request was sent) is retried only when it is
    /// [`idempotent`](crate::Call::idempotent).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Where to find services (default: [`default_registry`](crate::registry::default_registry)).
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// The broker [`Client::publish`] sends through (default: the
    /// [default broker](crate::broker::default_broker)).
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// How long a node stays out of selection after a connection failure or timeout
    /// (default 10 s); doubled on each repeat up to 5 minutes, ended early by a success.
    pub fn ejection(mut self, base: Duration) -> Self {
        self.ejection = base;
        self
    }

    /// How to choose among a service's nodes (default: [`Random`]).
    pub fn selector(mut self, selector: impl Selector) -> Self {
        self.selector = Arc::new(selector);
        self
    }

    /// How long a call waits for its reply unless it sets its own (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The codec requests are sent in (default bincode).
    pub fn content_type(mut self, content_type: ContentType) -> Self {
        self.content_type = content_type;
        self
    }

    /// Whether calls to services in this process skip the network (default `true`).
    pub fn fast_path(mut self, enabled: bool) -> Self {
        self.fast_path = enabled;
        self
    }

    /// Connections kept open to each node; calls spread over them (default 1, which already
    /// carries any number of concurrent calls).
    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.per_node = n.max(1);
        self
    }

    /// The largest frame sent or accepted (default 4 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Adds a middleware around every call; the first added runs first.
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                broker: self.broker,
                selector: self.selector,
                pool: pool::Pool::new(self.per_node, self.max_frame),
                cache: Arc::new(cache::Cache::new(self.registry)),
                ejected: dashmap::DashMap::new(),
                ejection: self.ejection,
                retries: self.retries,
                timeout: self.timeout,
                content_type: self.content_type,
                fast_path: self.fast_path,
                max_frame: self.max_frame,
                middleware: self.middleware,
            }),
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-call settings, set on a [`Call`] before awaiting it.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: crate::Metadata,
    pub(crate) node: Option<String>,
    pub(crate) content_type: Option<ContentType>,
    pub(crate) idempotent: bool,
    pub(crate) version: Option<String>,
    pub(crate) node_metadata: Vec<(String, String)>,
}

impl Client {
    /// A client with the default registry, random selection and a 5 s timeout.
    ///
    /// See the [module docs](self).
    pub fn new() -> Self {
        ClientBuilder::default().build()
    }

    /// A builder to configure a client.
    ///
    /// See [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The registry this client looks services up in.
    ///
    /// ```
    /// assert!(["local", "memory"].contains(&micro::Client::new().registry().name()));
    /// ```
    pub fn registry(&self) -> &Arc<dyn Registry> {
        self.inner.cache.registry()
    }

    /// The default timeout of calls made through this client.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The broker this client publishes through.
    ///
    /// ```
    /// assert!(!micro::Client::new().broker().name().is_empty());
    /// ```
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.inner
            .broker
            .clone()
            .unwrap_or_else(crate::broker::default_broker)
    }

    /// Publishes `event` on `topic`, encoded with the client's codec (bincode unless set),
    /// through the client's broker. Set metadata headers on the returned [`Publish`] before
    /// awaiting it.
    ///
    /// ```
    /// use micro::broker::MemoryBroker;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let client = micro::Client::builder()
    ///     .broker(std::sync::Arc::new(MemoryBroker::new()))
    ///     .build();
    /// client.publish("consignment.created", &("c1", 550)).metadata("user", "ada").await?;
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
            topic: topic.to_owned(),
            body,
            content_type,
            metadata: crate::Metadata::new(),
        }
    }

    /// A typed call to `endpoint` of `service`; the generated clients are built on this.
    ///
    /// See the [module docs](self).
    pub fn call<Req: Message, Resp: Message>(
        &self,
        service: Arc<str>,
        endpoint: &'static str,
        req: Req,
    ) -> Call<Req, Resp> {
        Call::new(self.clone(), service, Cow::Borrowed(endpoint), req)
    }

    /// A call with a JSON request and reply, for tools that know no Rust types.
    ///
    /// See the [module docs](self).
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

    /// Runs a call through the middleware, under its deadline.
    pub(crate) async fn invoke(
        &self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        payload: Payload,
        mut opts: CallOptions,
    ) -> Result<Payload, Error> {
        let timeout = opts.timeout.unwrap_or(self.inner.timeout);
        let mut deadline = Instant::now() + timeout;
        if let Some(parent) = Context::current() {
            if let Some(d) = parent.deadline() {
                deadline = deadline.min(d);
            }
            if let Some(trace) = parent.trace_id() {
                opts.metadata
                    .entry(TRACE_ID.to_owned())
                    .or_insert_with(|| trace.to_owned());
            }
        }
        let request = Request {
            service,
            endpoint,
            metadata: std::mem::take(&mut opts.metadata),
            deadline: Some(deadline),
            payload,
        };
        // Kept for the timeout message only; formatted if it is needed.
        let (service, endpoint) = (request.service.clone(), request.endpoint.clone());
        let call = async {
            if self.inner.middleware.is_empty() {
                self.dispatch(request, &opts).await
            } else {
                let opts = &opts;
                self.inner
                    .middleware
                    .run(request, Box::new(move |r| Box::pin(self.dispatch(r, opts))))
                    .await
            }
        };
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(
                "micro.client",
                format_args!("call to {service} {endpoint} timed out after {timeout:?}"),
            )),
        }
    }

    /// Delivers a request: into a mailbox of this process, or over a connection to a node,
    /// retrying what provably did not run (and, for idempotent calls, what may have).
    async fn dispatch(&self, request: Request, opts: &CallOptions) -> Result<Payload, Error> {
        if opts.node.is_none() && self.inner.fast_path {
            if let Some(router) = local::find(&request.service) {
                return router.call_local(request).await;
            }
        }
        let content_type = opts.content_type.unwrap_or(self.inner.content_type);
        let body = request.payload.to_bytes(content_type).map_err(|e| {
            Error::bad_request(
                "micro.client",
                format_args!("cannot encode the request as {content_type}: {e}"),
            )
        })?;
        if body.len() + HEADER_ALLOWANCE > self.inner.max_frame {
            return Err(Error::bad_request(
                "micro.client",
                format_args!(
                    "request of {} bytes exceeds the {}-byte frame limit",
                    body.len(),
                    self.inner.max_frame
                ),
            ));
        }
        let mut backoff = Duration::from_millis(5);
        let mut tried: Vec<String> = Vec::new();
        for attempt in 0.. {
            let node = match &opts.node {
                Some(address) => Node {
                    address: address.clone(),
                    ..Node::default()
                },
                None => {
                    self.pick(&request.service, &request.endpoint, opts, &tried)
                        .await?
                }
            };
            let timeout_ms = request.deadline.map_or(0, |d| {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                u32::try_from(ms).unwrap_or(u32::MAX).max(1)
            });
            let mut guard = Attempt {
                client: self,
                node: &node,
                service: &request.service,
                deadline: request.deadline,
                settled: opts.node.is_some(),
            };
            let outcome = self
                .attempt(&node, opts, |id| Outgoing::Request {
                    id,
                    content_type,
                    timeout_ms,
                    service: request.service.clone(),
                    endpoint: request.endpoint.clone(),
                    metadata: request.metadata.clone(),
                    body: body.clone(),
                })
                .await;
            let (error, fault) = match outcome {
                Ok(payload) => {
                    guard.settle(None);
                    return Ok(payload);
                }
                Err(failure) => failure,
            };
            guard.settle(Some((&error, fault)));
            let retry = match fault {
                Fault::Refused | Fault::Rejected => true,
                Fault::Lost => opts.idempotent,
                Fault::Answered => false,
            };
            if !retry || attempt >= self.inner.retries {
                return Err(error);
            }
            tracing::debug!(
                service = %request.service,
                node = %node.address,
                "retry {} after: {error}",
                attempt + 1
            );
            tried.push(node_key(&node).to_owned());
            let jitter = Duration::from_micros(fastrand::u64(..=backoff.as_micros() as u64));
            tokio::time::sleep(backoff + jitter).await;
            backoff *= 2;
        }
        unreachable!("the loop returns")
    }

    /// One attempt on one node.
    async fn attempt(
        &self,
        node: &Node,
        opts: &CallOptions,
        request: impl FnOnce(u64) -> Outgoing,
    ) -> Result<Payload, (Error, Fault)> {
        let transport = match &opts.node {
            Some(address) => transport_for_address(address),
            None => transport_for_node(node),
        };
        let conn = self
            .inner
            .pool
            .get(transport, &node.address)
            .await
            .map_err(|e| (e, Fault::Refused))?;
        let frame = conn.call(request).await.map_err(|f| match f {
            Failure::NotRun(e) => (e, Fault::Refused),
            Failure::Final(e) => (e, Fault::Lost),
        })?;
        match frame {
            Frame::Reply {
                content_type, body, ..
            } => Ok(Payload::encoded(content_type, body)),
            // Rejected before it was queued: the handler did not run.
            Frame::Error { error, .. } if error.is_overloaded() => Err((error, Fault::Rejected)),
            Frame::Error { error, .. } => Err((error, Fault::Answered)),
            _ => Err((
                Error::internal("micro.client", "unexpected frame"),
                Fault::Lost,
            )),
        }
    }

    /// Chooses a node of `service` for `endpoint`: registry (cached), filters, outlier
    /// ejection, then the selector. `tried` nodes are avoided when others remain.
    async fn pick(
        &self,
        service: &Arc<str>,
        endpoint: &str,
        opts: &CallOptions,
        tried: &[String],
    ) -> Result<Node, Error> {
        let services = self.inner.cache.lookup(service).await?;
        let serving: Vec<&registry::Service> = services
            .iter()
            // Records that list endpoints must list this one (a rolling deploy may add it).
            .filter(|s| s.endpoints.is_empty() || s.endpoints.iter().any(|e| e.name == endpoint))
            .collect();
        if serving.is_empty() {
            return Err(Error::not_found(
                "micro.client",
                format_args!("unknown endpoint {endpoint} on service {service}"),
            ));
        }
        let candidates: Vec<Node> = serving
            .into_iter()
            .filter(|s| opts.version.as_deref().is_none_or(|v| s.version == v))
            .flat_map(|s| s.nodes.iter())
            .filter(|n| {
                opts.node_metadata
                    .iter()
                    .all(|(k, v)| n.metadata.get(k) == Some(v))
            })
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Err(Error::unavailable(
                "micro.client",
                format_args!("service {service} has no node matching the call's filters"),
            ));
        }
        let now = Instant::now();
        let healthy: Vec<Node> = candidates
            .iter()
            .filter(|n| !tried.iter().any(|t| t == node_key(n)))
            .filter(|n| {
                self.inner
                    .ejected
                    .get(node_key(n))
                    .is_none_or(|e| e.until <= now)
            })
            .cloned()
            .collect();
        // Every node ejected or tried: better one more attempt on one of them than none.
        let pool = if healthy.is_empty() {
            candidates
        } else {
            healthy
        };
        let index = self.inner.selector.select(service, &pool).ok_or_else(|| {
            Error::unavailable(
                "micro.client",
                format_args!("service {service} has no nodes"),
            )
        })?;
        Ok(pool[index].clone())
    }

    /// Takes a node out of selection after a connection failure or timeout, for longer on
    /// each repeat.
    fn eject(&self, service: &str, node: &Node, why: &Error) {
        let mut entry = self
            .inner
            .ejected
            .entry(node_key(node).to_owned())
            .or_insert(Ejection {
                until: Instant::now(),
                strikes: 0,
            });
        entry.strikes += 1;
        let factor = 1u32 << (entry.strikes - 1).min(10);
        let backoff = self.inner.ejection.saturating_mul(factor).min(MAX_EJECTION);
        entry.until = Instant::now() + backoff;
        tracing::info!(%service, node = %node.address, "ejected for {backoff:?}: {why}");
        // The registry may know better by now.
        self.forget(service);
    }

    /// Marks the cached nodes of `service` as old, so the next call asks the registry (they
    /// stay as a fallback while the registry is unreachable).
    fn forget(&self, service: &str) {
        self.inner.cache.expire(service);
    }
}

/// Ejection is per node id (a restarted process is a new node), or address when unknown.
fn node_key(node: &Node) -> &str {
    if node.id.is_empty() {
        &node.address
    } else {
        &node.id
    }
}

/// How long a node stays out of selection after its first failure; doubled on each repeat.
pub const DEFAULT_EJECTION: Duration = Duration::from_secs(10);
const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Ejection {
    until: Instant,
    strikes: u32,
}

/// What went wrong in an attempt, for retries and ejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Never reached the node (refused, or the connection was closing): not run.
    Refused,
    /// The node turned it away before queueing it (overloaded): not run.
    Rejected,
    /// The connection failed after the request was sent: it may have run.
    Lost,
    /// The node answered with an error.
    Answered,
}

/// Reports one attempt to the selector and the ejection table exactly once, including when
/// the call's future is dropped mid-attempt (its deadline passed: a timeout strike).
struct Attempt<'a> {
    client: &'a Client,
    node: &'a Node,
    service: &'a str,
    deadline: Option<Instant>,
    settled: bool,
}

impl Attempt<'_> {
    fn settle(&mut self, failure: Option<(&Error, Fault)>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let inner = &self.client.inner;
        match failure {
            None | Some((_, Fault::Answered | Fault::Rejected)) => {
                inner.selector.report(self.service, self.node, Ok(()));
                inner.ejected.remove(node_key(self.node));
            }
            Some((error, Fault::Refused | Fault::Lost)) => {
                // Out of selection before anyone hears of the failure.
                self.client.eject(self.service, self.node, error);
                inner.selector.report(self.service, self.node, Err(error));
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let timed_out = self.deadline.is_some_and(|d| d <= Instant::now());
        if timed_out {
            let error = Error::timeout("micro.client", "no reply before the deadline");
            self.settle(Some((&error, Fault::Lost)));
        } else {
            // Cancelled by the caller: not the node's fault.
            self.settled = true;
            self.client
                .inner
                .selector
                .report(self.service, self.node, Ok(()));
        }
    }
}

/// An event being published: add metadata, then `.await` it.
///
/// See [`Client::publish`].
#[must_use = "an event is published when the Publish is awaited"]
#[derive(Debug)]
pub struct Publish {
    broker: Arc<dyn Broker>,
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
            if let Some(trace) = Context::current().and_then(|c| c.trace_id().map(str::to_owned)) {
                headers.entry(TRACE_ID.to_owned()).or_insert(trace);
            }
            headers.insert(
                crate::broker::CONTENT_TYPE.to_owned(),
                self.content_type.mime().to_owned(),
            );
            let msg = crate::broker::Message {
                headers,
                body: self.body?,
            };
            self.broker
                .publish(&self.topic, msg)
                .await
                .map_err(Into::into)
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

fn transport_for_node(node: &Node) -> &'static dyn Transport {
    match node.metadata.get("transport").map(String::as_str) {
        Some("memory") => &Memory,
        _ => &Tcp,
    }
}

fn transport_for_address(address: &str) -> &'static dyn Transport {
    if address.starts_with("memory:") {
        &Memory
    } else {
        &Tcp
    }
}
