//! `Service`: handlers, a listener and a registration, started and stopped together.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::Broker;
use crate::client::Client;
use crate::config::Options;
use crate::handler::{Handler, HandlerDef};
use crate::middleware::{BoxLayer, BoxService, Request};
use crate::registry::{self, Registry};
use crate::runtime::Runtime;
use crate::server::{
    self, Debug, HandlerStats, Mounted, Plan, Probe, Router, ServerLimits, Shutdown, Started,
};
use crate::transport::{Listener, Transport};
use crate::wire::DEFAULT_MAX_FRAME;
use crate::{BoxFuture, Error, Payload};

/// Requests a handled type's mailbox holds before callers get `overloaded`, unless the type
/// or the builder says otherwise.
pub const DEFAULT_MAILBOX: usize = 1024;

/// Read turns (`&self` handlers) one actor runs at once, unless the type or the builder
/// says otherwise.
///
/// 64 hides a 10 ms wait at 6,400 calls/s per actor, about what a database connection pool
/// serves, while bounding what one actor holds at once (each read keeps its request and its
/// future until it finishes) and how many reads a write turn waits for. See the
/// [actors guide](crate::docs::actors).
pub const DEFAULT_READS: usize = 64;

/// How long a registration lives unless renewed (`MICRO_REGISTER_TTL`).
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(30);

/// How often the registration is renewed (`MICRO_REGISTER_INTERVAL`).
pub const DEFAULT_REGISTER_INTERVAL: Duration = Duration::from_secs(10);

/// On shutdown, how long a service keeps serving after deregistering, so that callers'
/// caches catch up (`MICRO_SERVER_DRAIN`).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(1);

/// On shutdown, the longest wait for in-flight calls (`MICRO_SERVER_SHUTDOWN_TIMEOUT`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Registration attempts at start-up before giving up.
const REGISTER_ATTEMPTS: u32 = 5;

type Mount = Box<dyn FnOnce(Limits) -> Started + Send>;

/// The builder's defaults for handled types that do not set their own.
#[derive(Clone, Copy)]
struct Limits {
    mailbox: usize,
    reads: usize,
}
type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), Error>> + Send>;

/// A service: a name, the values whose handlers it serves, and where it listens.
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Default)]
/// struct Greeter;
///
/// #[micro::service(name = "greeter")]
/// impl Greeter {
///     pub async fn hello(&self, name: String) -> micro::Result<String> {
///         Ok(format!("Hello, {name}!"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory())
///     .version("1.0.0")
///     .address("127.0.0.1:0")
///     .handle(Greeter)
///     .start()
///     .await?;
/// let greeter = GreeterClient::new(service.client());
/// assert_eq!(greeter.hello("Ada".into()).await?, "Hello, Ada!");
/// service.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// Every setting here can be overridden by a `MICRO_*` variable or a flag: see
/// [`config`](crate::config).
#[must_use]
pub struct Service {
    name: String,
    version: Option<String>,
    address: String,
    advertise: Option<String>,
    metadata: HashMap<String, String>,
    runtime: Option<Runtime>,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    listener: Option<Box<dyn Listener>>,
    ttl: Duration,
    interval: Option<Duration>,
    drain: Duration,
    shutdown_timeout: Duration,
    mailbox: Option<usize>,
    reads: Option<usize>,
    max_frame: usize,
    layers: Vec<BoxLayer>,
    limits: ServerLimits,
    options: Option<Options>,
    mounts: Vec<(&'static HandlerDef, Mount)>,
    hooks: Hooks,
    register: bool,
    renamed: bool,
    checks: Vec<(String, crate::metrics::Check)>,
}

#[derive(Default)]
struct Hooks {
    before_start: Vec<Hook>,
    after_start: Vec<Hook>,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("address", &self.address)
            .field("transport", &self.transport)
            .field("registry", &self.registry)
            .field(
                "handlers",
                &self
                    .mounts
                    .iter()
                    .map(|m| m.0.type_name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn hook<F, Fut>(f: F) -> Hook
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    Box::new(move || Box::pin(f()))
}

async fn run_hooks(which: &str, hooks: Vec<Hook>) -> Result<(), Error> {
    for h in hooks {
        if let Err(e) = h().await {
            tracing::warn!("{which} hook failed: {e}");
            return Err(e);
        }
    }
    Ok(())
}

fn take_hooks(hooks: &std::sync::Mutex<Vec<Hook>>) -> Vec<Hook> {
    std::mem::take(&mut *hooks.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Service {
    /// A service named `name`, listening on `127.0.0.1` on a free port over TCP, in a
    /// runtime made from the environment when it starts (see [`runtime`](Self::runtime)).
    ///
    /// `name` must be the name its handled types declare (`#[micro::service(name = ...)]`,
    /// else the type name in lower case), which is what their generated clients call: a
    /// service that would register under another name fails to start, unless
    /// [`rename`](Self::rename) says it is on purpose.
    ///
    /// See the [type-level example](Self).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
            address: "127.0.0.1:0".to_owned(),
            advertise: None,
            metadata: HashMap::new(),
            runtime: None,
            transport: None,
            registry: None,
            broker: None,
            listener: None,
            ttl: DEFAULT_REGISTER_TTL,
            interval: None,
            drain: DEFAULT_DRAIN,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            mailbox: None,
            reads: None,
            max_frame: DEFAULT_MAX_FRAME,
            layers: Vec::new(),
            limits: ServerLimits::default(),
            options: None,
            mounts: Vec::new(),
            hooks: Hooks::default(),
            checks: Vec::new(),
            register: true,
            renamed: false,
        }
    }

    /// The runtime to serve in: its settings, registry, broker and transport, and its
    /// in-process table, so that its clients call this service without the network
    /// (default: a runtime made from `MICRO_*` variables by [`start`](Self::start), and
    /// from variables and flags by [`run`](Self::run)). [`Runtime::service`] does the same.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let runtime = micro::Runtime::in_memory();
    /// let service = micro::Service::new("greeter").runtime(runtime.clone()).handle(Greeter).start().await?;
    /// assert_eq!(GreeterClient::new(runtime.client()).hello("hi".into()).await?, "hi");
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Serves the handled types under this service's name even where their attribute
    /// declares another: their generated clients then need `with_service` to reach it.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let runtime = micro::Runtime::in_memory();
    /// let service = runtime.service("greeter-canary").rename().handle(Greeter).start().await?;
    /// let canary = GreeterClient::with_service(runtime.client(), "greeter-canary");
    /// assert_eq!(canary.hello("hi".into()).await?, "hi");
    ///
    /// // Without `rename`, the mismatch is an error, not a service nobody's client calls:
    /// let err = runtime.service("greeter-canary").handle(Greeter).start().await.unwrap_err();
    /// assert!(err.detail.contains("declares `greeter`"), "{err}");
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn rename(mut self) -> Self {
        self.renamed = true;
        self
    }

    /// The broker that delivers events to `#[micro::subscribe]` handlers and carries what
    /// [`Client::publish`] sends from its handlers (default: the runtime's), whatever
    /// `MICRO_BROKER` says.
    ///
    /// ```
    /// let service = micro::Service::new("x")
    ///     .broker(std::sync::Arc::new(micro::broker::MemoryBroker::new()));
    /// # drop(service);
    /// ```
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Serves on a listener bound by the program (a socket handed over by a supervisor, or
    /// bound early to learn the port) instead of binding [`address`](Self::address).
    ///
    /// # Errors
    /// When the listener cannot be put in non-blocking mode.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = socket.local_addr()?.port();
    /// let service = micro::Service::new("greeter")
    ///     .runtime(micro::Runtime::in_memory())
    ///     .listener(socket)?
    ///     .handle(Greeter)
    ///     .start()
    ///     .await?;
    /// assert!(service.address().ends_with(&format!(":{port}")));
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn listener(mut self, listener: std::net::TcpListener) -> std::io::Result<Self> {
        self.listener = Some(crate::transport::Tcp::from_std(listener)?);
        Ok(self)
    }

    /// Serves without announcing itself in the registry (for internal listeners).
    pub(crate) fn unregistered(mut self) -> Self {
        self.register = false;
        self
    }

    /// The version registered for this service's node (default: the version its handled
    /// types declare, `#[micro::service(version = ...)]`, else `latest`).
    ///
    /// See the [type-level example](Self).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Where to listen, in the transport's address syntax (port 0: any free port; the bound
    /// address is what gets registered).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// The address to register when it differs from the bound one (behind NAT, in a
    /// container, or when listening on `0.0.0.0`).
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// A metadata entry registered with this node (as go-micro's server metadata), which
    /// callers can filter on with [`Call::node_metadata`](crate::Call::node_metadata).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The transport to listen on (default: the runtime's, TCP unless `MICRO_TRANSPORT` says
    /// otherwise), whatever `MICRO_TRANSPORT` says.
    ///
    /// ```
    /// let service = micro::Service::new("x").transport(std::sync::Arc::new(micro::transport::Tcp));
    /// # drop(service);
    /// ```
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The registry to announce the service in, and that its handlers' client looks other
    /// services up in (default: the runtime's), whatever `MICRO_REGISTRY` says.
    ///
    /// ```
    /// let service = micro::Service::new("x")
    ///     .registry(std::sync::Arc::new(micro::registry::MemoryRegistry::new()));
    /// # drop(service);
    /// ```
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// How long the registration lives unless renewed (default 30 s).
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How often to renew the registration (default: 10 s, or a third of a shorter TTL).
    pub fn register_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// On shutdown, how long to keep serving after deregistering (default 1 s).
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// On shutdown, the longest wait for in-flight calls (default 15 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Mailbox capacity for handled types that do not set `mailbox = N` themselves
    /// (default [`DEFAULT_MAILBOX`]).
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = Some(capacity);
        self
    }

    /// What peers may hold on this service: connections, calls in flight, queued reply
    /// bytes, idle and frame-read time (default: [`ServerLimits::default`]). `MICRO_SERVER_*`
    /// variables override single limits.
    ///
    /// ```
    /// let service = micro::Service::new("greeter")
    ///     .limits(micro::ServerLimits::default().max_connections(100));
    /// # drop(service);
    /// ```
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Read turns one actor runs at once, for handled types that do not set `reads = N`
    /// themselves (default [`DEFAULT_READS`]; at least 1).
    ///
    /// `&self` handlers of one actor run together up to this limit; more wait in the
    /// mailbox. `reads(1)` runs one request at a time, as a plain mailbox actor does.
    ///
    /// ```
    /// let service = micro::Service::new("catalog").reads(256);
    /// # drop(service);
    /// ```
    pub fn reads(mut self, limit: usize) -> Self {
        self.reads = Some(limit);
        self
    }

    /// The largest frame accepted or sent (default 4 MiB). A connection that sends a larger
    /// one is closed.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Wraps every request in a [`tower::Layer`] before it takes a mailbox slot; the first
    /// added is outermost. A layer that turns requests away (authentication, limits) costs
    /// the handler nothing. See [`middleware`](crate::middleware).
    ///
    /// ```
    /// let service = micro::Service::new("x")
    ///     .layer(tower::limit::ConcurrencyLimitLayer::new(100));
    /// # drop(service);
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

    /// Uses these settings instead of the runtime's (or, without a runtime, instead of
    /// reading `MICRO_*` variables at start; flags are only ever read by [`run`](Self::run)).
    ///
    /// ```
    /// let opts = micro::config::Options::resolve(|_: &str| None, &[]).unwrap();
    /// let service = micro::Service::new("x").options(opts);
    /// # drop(service);
    /// ```
    pub fn options(mut self, options: Options) -> Self {
        self.options = Some(options);
        self
    }

    /// Runs `hook` before listening; an error aborts the start.
    pub fn before_start<F, Fut>(mut self, hook_fn: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.before_start.push(hook(hook_fn));
        self
    }

    /// Runs `hook` once the service is registered; an error stops it again.
    pub fn after_start<F, Fut>(mut self, hook_fn: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.after_start.push(hook(hook_fn));
        self
    }

    /// Runs `hook` when stopping, before deregistering.
    pub fn before_stop<F, Fut>(mut self, hook_fn: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.before_stop.push(hook(hook_fn));
        self
    }

    /// Runs `hook` once the service has stopped.
    pub fn after_stop<F, Fut>(mut self, hook_fn: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.after_stop.push(hook(hook_fn));
        self
    }

    /// Serves the handlers of `value`, a type with `#[micro::service]` on an `impl` block,
    /// with the number of workers its attribute declares (default 1). Several values may
    /// share one service, as long as their endpoint names differ.
    pub fn handle<H: Handler>(mut self, value: H) -> Self {
        let workers = H::DEF.workers;
        self.mounts.push((
            H::DEF,
            Box::new(move |limits| server::mount(value, plan::<H>(workers, limits))),
        ));
        self
    }

    /// Serves the handlers of a value that `factory` makes, and makes again whenever a
    /// `&mut self` handler panics, as the state it left may be half-updated. Each worker
    /// (`workers = N` on the attribute) gets its own value from `factory`, so the type need
    /// not be `Clone` for that.
    ///
    /// The rebuilds are counted in [`HandlerStats::restarts`]. For a type whose
    /// `Default` will do, `on_panic = "rebuild"` on the attribute is the same with `handle`.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// struct Ledger { entries: Vec<u64>, limit: usize }
    ///
    /// #[micro::service(name = "ledger")]
    /// impl Ledger {
    ///     pub async fn add(&mut self, n: u64) -> micro::Result<usize> {
    ///         self.entries.push(n);
    ///         assert!(self.entries.len() <= self.limit, "ledger full");
    ///         Ok(self.entries.len())
    ///     }
    /// }
    ///
    /// let limit = 100;
    /// let service = micro::Service::new("ledger")
    ///     .handle_factory(move || Ledger { entries: Vec::new(), limit });
    /// # drop(service);
    /// ```
    pub fn handle_factory<H, F>(mut self, factory: F) -> Self
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let factory: server::Factory<H> = Arc::new(factory);
        self.mounts.push((
            H::DEF,
            Box::new(move |limits| {
                let value = factory();
                let mut plan = plan::<H>(H::DEF.workers, limits);
                plan.factory = Some(factory);
                server::mount(value, plan)
            }),
        ));
        self
    }

    /// Serves the handlers of `value` with `workers` actors over one shared mailbox, each
    /// with its own clone of `value`.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// #[derive(Clone, Default)]
    /// struct Hasher;
    ///
    /// #[micro::service(name = "hasher")]
    /// impl Hasher {
    ///     pub async fn len(&self, s: String) -> micro::Result<usize> { Ok(s.len()) }
    /// }
    ///
    /// let service = micro::Service::new("hasher").handle_workers(Hasher, 4);
    /// # drop(service);
    /// ```
    pub fn handle_workers<H: Handler + Clone>(mut self, value: H, workers: usize) -> Self {
        self.mounts.push((
            H::DEF,
            Box::new(move |limits| {
                let mut plan = plan::<H>(workers, limits);
                plan.replicate = Some(H::clone);
                server::mount(value, plan)
            }),
        ));
        self
    }

    /// The runtime to serve in, with this service's own settings and objects applied: the
    /// builder's values, overridden by the settings; objects given in code always kept.
    fn configure(&mut self) -> Result<Runtime, Error> {
        let base = match self.runtime.take() {
            Some(runtime) => runtime,
            None => match &self.options {
                Some(opts) => Runtime::new(opts.clone()),
                None => Runtime::from_env()?,
            },
        };
        let opts = self
            .options
            .take()
            .unwrap_or_else(|| base.options().clone());
        self.apply(&opts);
        // Outermost, before the layers given in code: a refused caller reaches none of them.
        if let Some(auth) = crate::auth::from_options(&opts)? {
            self.layers.insert(0, crate::middleware::boxed(auth));
        }
        Ok(base.derive(
            Some(opts),
            self.registry.take(),
            self.broker.take(),
            self.transport.take(),
        ))
    }

    fn apply(&mut self, opts: &Options) {
        if let Some(v) = &opts.server_name {
            if *v != self.name {
                // Renaming through the environment is deliberate; say what it means.
                tracing::info!(
                    "serving {} as {v} (MICRO_SERVER_NAME): generated clients reach it with with_service",
                    self.name
                );
                self.renamed = true;
            }
            self.name = v.clone();
        }
        if let Some(v) = &opts.server_version {
            self.version = Some(v.clone());
        }
        if let Some(v) = &opts.server_address {
            self.address = v.clone();
        }
        if let Some(v) = &opts.server_advertise {
            self.advertise = Some(v.clone());
        }
        for (k, v) in &opts.server_metadata {
            self.metadata.insert(k.clone(), v.clone());
        }
        if let Some(v) = opts.server_drain {
            self.drain = v;
        }
        if let Some(v) = opts.server_shutdown_timeout {
            self.shutdown_timeout = v;
        }
        self.limits.apply(opts);
        if let Some(v) = opts.register_ttl {
            self.ttl = v;
        }
        if let Some(v) = opts.register_interval {
            self.interval = Some(v);
        }
        for (given, setting, variable) in [
            (
                self.registry.as_ref().map(|r| r.name()),
                &opts.registry,
                "MICRO_REGISTRY",
            ),
            (
                self.broker.as_ref().map(|b| b.name()),
                &opts.broker,
                "MICRO_BROKER",
            ),
            (
                self.transport.as_ref().map(|t| t.name()),
                &opts.transport,
                "MICRO_TRANSPORT",
            ),
        ] {
            if let (Some(given), Some(named)) = (given, setting) {
                if given != named {
                    tracing::warn!(
                        service = %self.name,
                        "{variable} (or its flag) names `{named}`, but a {given} object was passed in code: using the {given} one"
                    );
                }
            }
        }
    }

    /// The handled types must be served under the name their clients call, unless renamed
    /// on purpose; the version they declare is the default.
    fn check_names(&mut self) -> Result<(), Error> {
        if !self.renamed {
            // Only types with calls have a client that could miss; subscribers have none.
            let mismatch = self.mounts.iter().find(|(def, _)| {
                def.service != self.name && def.endpoints.iter().any(|e| e.topic.is_empty())
            });
            if let Some((def, _)) = mismatch {
                return Err(Error::bad_request(
                    "micro.server",
                    format_args!(
                        "service `{}` serves {}, whose #[micro::service] declares `{}`: its generated client calls `{}`, which nothing would register. Name the service `{}`, or call .rename() to serve it as `{}` on purpose (callers then use {}Client::with_service)",
                        self.name,
                        def.type_name,
                        def.service,
                        def.service,
                        def.service,
                        self.name,
                        def.type_name
                    ),
                ));
            }
        }
        if self.version.is_none() {
            let declared = self
                .mounts
                .iter()
                .map(|(def, _)| def.version)
                .find(|v| *v != "latest");
            self.version = Some(declared.unwrap_or("latest").to_owned());
        }
        Ok(())
    }

    /// Adds a readiness check, as go-micro's `health.RegisterCheck`: while it returns
    /// `Err(reason)`, `/health/ready` answers 503 with the reason (see
    /// [`metrics`](crate::metrics)). Checks run on each readiness probe, so keep them quick.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// let connected = Arc::new(AtomicBool::new(true));
    /// let seen = connected.clone();
    /// let service = micro::Service::new("greeter").health_check("database", move || {
    ///     if seen.load(Ordering::Relaxed) { Ok(()) } else { Err("not connected".into()) }
    /// });
    /// # drop(service);
    /// ```
    pub fn health_check<F>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.checks.push((name.into(), Arc::new(check)));
        self
    }

    /// Listens, starts the actors, registers, and returns the running service.
    ///
    /// Settings from the runtime (`MICRO_*` variables) override the builder's (see
    /// [`config`](crate::config)).
    ///
    /// # Errors
    /// When a setting is invalid, there is nothing to serve, a handled type declares another
    /// service name (see [`new`](Self::new)), two handled types declare the same endpoint,
    /// the address cannot be bound, a `before_start` or `after_start` hook fails, or the
    /// registry refuses the registration after retries.
    pub async fn start(mut self) -> Result<RunningService, Error> {
        let runtime = self.configure()?;
        run_hooks("before_start", std::mem::take(&mut self.hooks.before_start)).await?;
        self.launch(runtime).await
    }

    async fn launch(mut self, runtime: Runtime) -> Result<RunningService, Error> {
        let started_at = std::time::Instant::now();
        if self.mounts.is_empty() {
            return Err(Error::bad_request(
                "micro.server",
                format_args!(
                    "service {} has no handlers: add one with .handle(value)",
                    self.name
                ),
            ));
        }
        self.check_names()?;
        let version = self.version.clone().unwrap_or_else(|| "latest".to_owned());
        let interval = self
            .interval
            .unwrap_or(DEFAULT_REGISTER_INTERVAL.min(self.ttl / 3));
        if interval >= self.ttl {
            return Err(Error::bad_request(
                "micro.config",
                format_args!(
                    "register interval {interval:?} must be shorter than the TTL {:?}",
                    self.ttl
                ),
            ));
        }
        let registry = runtime.registry().clone();
        let transport = runtime.transport().clone();
        #[cfg(feature = "prometheus")]
        let mut metrics_bound = None;
        #[cfg(feature = "prometheus")]
        if let Some(address) = runtime.options().metrics_address.clone() {
            let observe = runtime.observe().clone();
            match observe.serve(&address, runtime.hosted().clone()).await {
                Ok((bound, started)) => {
                    if started {
                        tracing::info!(service = %self.name, "metrics and health on http://{bound}");
                    }
                    metrics_bound = Some(bound);
                }
                Err(e) => {
                    return Err(Error::internal(
                        "micro.server",
                        format_args!("cannot listen on {address} for metrics: {e}"),
                    ));
                }
            }
        }
        let listener = match self.listener.take() {
            Some(listener) => listener,
            None => transport.listen(&self.address).await.map_err(|e| {
                Error::internal(
                    "micro.server",
                    format_args!(
                        "cannot listen on {} over {}: {e}",
                        self.address,
                        transport.name()
                    ),
                )
            })?,
        };
        let bound = listener.local_addr();
        let address = match &self.advertise {
            Some(a) => a.clone(),
            None => {
                let interface = runtime.options().server_interface.as_deref();
                advertised(&bound, interface).map_err(|e| Error::bad_request("micro.config", e))?
            }
        };
        let node_id = format!("{}-{:016x}", self.name, fastrand::u64(..));
        // Where dashboards find this node's metrics: the advertised host, the bound port.
        #[cfg(feature = "prometheus")]
        if let Some(bound) = metrics_bound {
            let at = if bound.ip().is_unspecified() {
                let host = address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(h, _)| h);
                format!("{host}:{}", bound.port())
            } else {
                bound.to_string()
            };
            self.metadata.insert("metrics".to_owned(), at);
        }

        let limits = Limits {
            mailbox: self.mailbox.unwrap_or(DEFAULT_MAILBOX),
            reads: self.reads.unwrap_or(DEFAULT_READS),
        };
        let mut mounted = Vec::new();
        let mut actors = Vec::new();
        let mut routes = HashMap::new();
        let mut endpoints = Vec::new();
        let mut add_routes = |started: Started| -> Result<Arc<Mounted>, Error> {
            for route in started.routes {
                let mut metadata = HashMap::new();
                if !route.def.topic.is_empty() {
                    metadata.insert("subscriber".to_owned(), "true".to_owned());
                    metadata.insert("topic".to_owned(), route.def.topic.to_owned());
                    if !route.def.queue.is_empty() {
                        metadata.insert("queue".to_owned(), route.def.queue.to_owned());
                    }
                }
                if route.def.idempotent {
                    metadata.insert("idempotent".to_owned(), "true".to_owned());
                }
                if route.def.stream != crate::StreamKind::Unary {
                    metadata.insert("stream".to_owned(), route.def.stream.as_str().to_owned());
                }
                if !route.def.doc.is_empty() {
                    metadata.insert("description".to_owned(), route.def.doc.to_owned());
                }
                let types = (route.def.describe)();
                endpoints.push(registry::Endpoint {
                    name: route.def.name.to_owned(),
                    request: Some(types.request),
                    response: Some(types.response),
                    metadata,
                });
                if let Some(first) = routes.insert(route.def.name, route) {
                    return Err(Error::bad_request(
                        "micro.server",
                        format_args!(
                            "endpoint {} is declared twice in service {}",
                            first.def.name, self.name
                        ),
                    ));
                }
            }
            actors.extend(started.actors);
            Ok(started.mounted)
        };
        for (_, mount) in self.mounts {
            mounted.push(add_routes(mount(limits))?);
        }
        let probe = Arc::new(Probe {
            service: self.name.clone(),
            version: version.clone(),
            node: node_id.clone(),
            started: started_at,
            handlers: mounted.clone(),
        });
        add_routes(server::mount(
            Debug(probe.clone()),
            plan::<Debug>(1, limits),
        ))?;
        let client = runtime.client();
        let router = Router::new(
            self.name.as_str().into(),
            routes,
            self.max_frame,
            client.clone(),
            &self.layers,
        );
        runtime.hosted().insert(node_id.clone(), router.clone());
        let health =
            runtime
                .observe()
                .health
                .add(&node_id, &self.name, std::mem::take(&mut self.checks));

        let shutdown = Shutdown::default();
        let stop_accepting = CancellationToken::new();
        let connections = TaskTracker::new();
        let accept = server::spawn_accept_loop(
            listener,
            router.clone(),
            self.limits,
            shutdown.clone(),
            stop_accepting.clone(),
            connections.clone(),
        );

        let node = registry::Node {
            id: node_id,
            address: address.clone(),
            // As go-micro: the server's metadata describes the node, next to micro's own.
            metadata: self
                .metadata
                .into_iter()
                .chain([
                    ("transport".to_owned(), transport.name().to_owned()),
                    ("protocol".to_owned(), "micro".to_owned()),
                    ("server".to_owned(), "micro".to_owned()),
                    ("registry".to_owned(), registry.name().to_owned()),
                ])
                .collect(),
        };
        let record = registry::Service {
            name: self.name.clone(),
            version,
            metadata: HashMap::new(),
            endpoints,
            nodes: vec![node],
        };
        let subscriber_routes: Vec<&'static crate::EndpointDef> = router
            .routes
            .values()
            .filter(|r| !r.def.topic.is_empty())
            .map(|r| r.def)
            .collect();
        let weak_router = Arc::downgrade(&router);
        let heartbeat_stop = CancellationToken::new();
        let mut running = RunningService {
            runtime,
            client,
            registry,
            record,
            router: Some(router),
            probe,
            stop_accepting,
            shutdown,
            connections,
            accept: Some(accept),
            actors,
            heartbeat: None,
            heartbeat_stop,
            drain: self.drain,
            shutdown_timeout: self.shutdown_timeout,
            hooks_before_stop: std::mem::take(&mut self.hooks.before_stop).into(),
            hooks_after_stop: std::mem::take(&mut self.hooks.after_stop).into(),
            subscriptions: Vec::new(),
            registered: self.register,
            health,
        };
        for def in subscriber_routes {
            let broker = running.runtime.broker().clone();
            let handler = Arc::new(RouteHandler {
                router: weak_router.clone(),
                endpoint: def.name,
                timeout: running.client.timeout(),
                observe: running.runtime.observe().clone(),
            });
            let mut opts = crate::broker::SubscribeOptions::default();
            if !def.queue.is_empty() {
                opts = opts.queue(def.queue);
            } else {
                // Stable across restarts, so a durable broker resumes where this endpoint
                // stopped; brokers that keep nothing ignore it.
                opts = opts.durable(format!("{}-{}", running.record.name, def.name));
            }
            match broker.subscribe(def.topic, opts, handler).await {
                Ok(sub) => running.subscriptions.push(sub),
                Err(e) => {
                    running.stop().await;
                    return Err(Error::unavailable(
                        "micro.broker",
                        format_args!("cannot subscribe {} to {}: {e}", def.name, def.topic),
                    ));
                }
            }
        }
        if !running.registered {
            return Ok(running);
        }
        tracing::info!(service = %running.record.name, %address, "listening on {bound}");
        if let Err(e) = running.register_with_retries(self.ttl).await {
            running.stop().await;
            return Err(e);
        }
        tracing::info!(
            service = %running.record.name,
            node = %running.record.nodes[0].id,
            registry = running.registry.name(),
            "registered; renewing every {interval:?} (ttl {:?})",
            self.ttl
        );
        running.heartbeat = Some(running.spawn_heartbeat(self.ttl, interval));
        if let Err(e) = run_hooks("after_start", std::mem::take(&mut self.hooks.after_start)).await
        {
            running.stop().await;
            return Err(e);
        }
        Ok(running)
    }

    /// Reads flags and variables, starts, serves until Ctrl-C or SIGTERM, then stops cleanly:
    /// deregister, keep serving for the drain period, stop accepting, let in-flight calls
    /// finish (up to the shutdown timeout). `--help` prints the settings and returns. On
    /// SIGHUP, the TLS certificate, key and CA files are read again (feature `tls`).
    ///
    /// Unless the program installed a `tracing` subscriber, it installs micro's (see
    /// [`telemetry`](crate::telemetry)): log lines on stderr, chosen by `RUST_LOG` (default
    /// `info`), as text or, with `MICRO_LOG_FORMAT=json`, JSON.
    ///
    /// # Errors
    /// As [`start`](Self::start), and for flags that do not parse. A `main` that returns the
    /// error prints it as one readable line, such as
    /// ``Error: micro.config: invalid MICRO_REGISTRY `zk`: expected one of local, memory (400 Bad Request)``.
    ///
    /// ```no_run
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// #[tokio::main]
    /// async fn main() -> micro::Result<()> {
    ///     micro::Service::new("greeter").handle(Greeter).run().await
    /// }
    /// ```
    pub async fn run(mut self) -> Result<(), Error> {
        if self.runtime.is_none() && self.options.is_none() {
            let options = Options::from_process()?;
            if options.help {
                print!("{}", crate::config::help());
                return Ok(());
            }
            // Before the runtime, whose construction may already have something to say.
            crate::telemetry::log::init(options.log_format.unwrap_or_default(), Some(&self.name));
            self.runtime = Some(Runtime::new(options));
        } else {
            let format = match (&self.runtime, &self.options) {
                (Some(runtime), _) => runtime.options().log_format,
                (None, Some(options)) => options.log_format,
                (None, None) => None,
            };
            crate::telemetry::log::init(format.unwrap_or_default(), Some(&self.name));
        }
        let signal = shutdown_signal();
        let running = self.start().await?;
        let signal = tokio::select! {
            signal = signal => signal,
            never = reload_on_hangup(running.runtime.clone()) => match never {},
        };
        tracing::info!(service = %running.record.name, "{signal}: shutting down");
        running.stop().await;
        #[cfg(feature = "otel")]
        crate::telemetry::otel::shutdown();
        Ok(())
    }
}

/// The address to register for a bound one: a wildcard is not dialable, so an address of
/// one of this host's interfaces is registered instead (see [`crate::addr`]). Addresses that
/// are not IP socket addresses (other transports) are registered as they are.
fn advertised(bound: &str, interface: Option<&str>) -> Result<String, crate::addr::AddrError> {
    match bound.parse::<std::net::SocketAddr>() {
        Ok(ip) => crate::addr::advertised(ip, interface).map(|a| a.to_string()),
        Err(_) => Ok(bound.to_owned()),
    }
}

/// `workers` actors for `H`, with its attribute's limits, else the builder's.
fn plan<H: Handler>(workers: usize, limits: Limits) -> Plan<H> {
    let or = |n, default| if n == 0 { default } else { n };
    Plan {
        workers,
        replicate: None,
        capacity: or(H::DEF.mailbox, limits.mailbox),
        reads: or(H::DEF.reads, limits.reads),
        factory: None,
    }
}

/// Reads the runtime's TLS files again on every SIGHUP, as servers conventionally do; never
/// returns.
async fn reload_on_hangup(runtime: Runtime) -> std::convert::Infallible {
    #[cfg(all(unix, feature = "tls"))]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            while hangup.recv().await.is_some() {
                match runtime.reload_tls() {
                    Ok(true) => tracing::info!("SIGHUP: tls certificates reloaded"),
                    Ok(false) => tracing::info!("SIGHUP: no tls settings to reload"),
                    Err(e) => tracing::error!("SIGHUP: tls certificates not reloaded: {e}"),
                }
            }
        }
    }
    let _ = runtime;
    std::future::pending().await
}

/// Listens for SIGINT and SIGTERM from the moment it is called, not from the first poll, so
/// a signal that arrives while the service starts is not lost (nor fatal).
fn shutdown_signal() -> impl Future<Output = &'static str> {
    use futures_util::future::Either;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Either::Left(async move {
                tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                }
            });
        }
    }
    Either::Right(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

/// A started [`Service`]. Stop it with [`stop`](Self::stop), which deregisters and lets
/// calls in flight finish; dropping it stops every task it started at once (its
/// registration then lapses after its TTL).
pub struct RunningService {
    runtime: Runtime,
    client: Client,
    registry: Arc<dyn Registry>,
    record: registry::Service,
    router: Option<Arc<Router>>,
    probe: Arc<Probe>,
    stop_accepting: CancellationToken,
    shutdown: Shutdown,
    connections: TaskTracker,
    accept: Option<JoinHandle<()>>,
    actors: Vec<JoinHandle<()>>,
    heartbeat: Option<JoinHandle<()>>,
    heartbeat_stop: CancellationToken,
    drain: Duration,
    shutdown_timeout: Duration,
    // Behind a lock only so that the service is `Sync`; nothing contends for it.
    hooks_before_stop: std::sync::Mutex<Vec<Hook>>,
    hooks_after_stop: std::sync::Mutex<Vec<Hook>>,
    subscriptions: Vec<crate::broker::Subscription>,
    registered: bool,
    health: Arc<crate::metrics::Entry>,
}

/// Feeds a subscriber endpoint's mailbox from the broker.
struct RouteHandler {
    router: std::sync::Weak<Router>,
    endpoint: &'static str,
    timeout: Duration,
    observe: Arc<crate::metrics::Observe>,
}

impl crate::broker::EventHandler for RouteHandler {
    fn handle(
        &self,
        topic: &str,
        mut msg: crate::broker::Message,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let router = self.router.upgrade();
        let (endpoint, timeout) = (self.endpoint, self.timeout);
        let service = router.as_ref().map_or("", |r| &*r.service);
        let span = crate::telemetry::trace::deliver_span(topic, service, endpoint);
        let parent = crate::telemetry::TraceParent::from_metadata(&msg.headers);
        if let Some(tp) = crate::telemetry::trace::link(&span, parent) {
            crate::telemetry::trace::inject(&mut msg.headers, &tp, None);
        }
        let outcome = span.clone();
        let delivery = async move {
            let router =
                router.ok_or_else(|| Error::unavailable("micro.server", "the service stopped"))?;
            let content_type = msg
                .headers
                .get(crate::broker::CONTENT_TYPE)
                .and_then(|m| crate::codec::ContentType::from_mime(m))
                .unwrap_or_default();
            let request = Request::new(
                router.service.clone(),
                endpoint.into(),
                msg.headers,
                Instant::now().checked_add(timeout),
                crate::Payload::encoded(content_type, msg.body),
            );
            match tokio::time::timeout(timeout, router.call_local(request)).await {
                // Name the subscriber: the publisher only knows its broker-level target.
                Ok(result) => result.map(drop).map_err(|(mut e, _)| {
                    e.detail = format!("{endpoint}: {}", e.detail);
                    e
                }),
                Err(_) => Err(Error::timeout(
                    &*router.service,
                    format_args!("{endpoint} did not finish within {timeout:?}"),
                )),
            }
        };
        let observe = self.observe.clone();
        let topic = topic.to_owned();
        Box::pin(
            async move {
                let result = delivery.await;
                observe.delivery(&topic, endpoint, result.is_ok());
                crate::telemetry::trace::record_outcome(&outcome, &result);
                result
            }
            .instrument(span),
        )
    }
}

impl fmt::Debug for RunningService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningService")
            .field("name", &self.record.name)
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl RunningService {
    /// The service name.
    ///
    /// See [`Service`] for an example.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The address registered for this node (the bound one, unless advertised otherwise).
    ///
    /// See [`Service`] for an example.
    pub fn address(&self) -> &str {
        &self.record.nodes[0].address
    }

    /// The registry record of this node.
    ///
    /// See [`Service`] for an example.
    pub fn record(&self) -> &registry::Service {
        &self.record
    }

    /// The service's own client: the one its handlers get through
    /// [`Context::client`](crate::Context::client), of the same runtime.
    ///
    /// See [`Service`] for an example.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The runtime the service serves in.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory()).handle(Greeter).start().await?;
    /// assert_eq!(service.runtime().registry().name(), "memory");
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Counters for each handled type, in the order they were added.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory()).handle(Greeter).start().await?;
    /// GreeterClient::new(service.client()).hello("x".into()).await?;
    /// let stats = &service.stats()[0];
    /// assert_eq!((stats.handler.as_str(), stats.calls, stats.queued), ("Greeter", 1, 0));
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn stats(&self) -> Vec<HandlerStats> {
        self.probe.stats().handlers
    }

    /// Whether the runtime running this service is ready, as `/health/ready` answers (see
    /// [`metrics`](crate::metrics)): `Err` with the reasons while a service of it drains or a
    /// [check](Service::health_check) fails.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let service = micro::Runtime::in_memory()
    ///     .service("greeter")
    ///     .handle(Greeter)
    ///     .health_check("disk", || Err("full".into()))
    ///     .start()
    ///     .await?;
    /// assert_eq!(service.readiness(), Err(vec!["greeter: disk: full".to_string()]));
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let failures = self.runtime.observe().health.readiness();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    async fn register_with_retries(&self, ttl: Duration) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=REGISTER_ATTEMPTS {
            match self.registry.register(&self.record, Some(ttl)).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt == REGISTER_ATTEMPTS => {
                    tracing::error!(service = %self.record.name, "registration failed, giving up: {e}");
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(
                        service = %self.record.name,
                        "registration attempt {attempt} failed: {e}; retrying in {backoff:?}"
                    );
                    tokio::time::sleep(backoff + Duration::from_millis(fastrand::u64(..50))).await;
                    backoff *= 2;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn spawn_heartbeat(&self, ttl: Duration, interval: Duration) -> JoinHandle<()> {
        let (registry, record, stop) = (
            self.registry.clone(),
            self.record.clone(),
            self.heartbeat_stop.clone(),
        );
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                if let Err(e) = registry.register(&record, Some(ttl)).await {
                    tracing::warn!(service = %record.name, "re-registration failed: {e}");
                }
            }
        })
    }

    /// Stops cleanly: deregisters, keeps serving for the drain period so callers' caches
    /// catch up, stops accepting connections, tells clients to go away, lets in-flight
    /// calls finish (up to the shutdown timeout), and ends the actors. Logged at each step.
    ///
    /// See [`Service`] for an example.
    pub async fn stop(mut self) {
        let name = self.record.name.clone();
        // Not ready from the first moment: balancers stop sending before we deregister.
        self.health
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        let hooks = take_hooks(&self.hooks_before_stop);
        let _ = run_hooks("before_stop", hooks).await;
        for sub in std::mem::take(&mut self.subscriptions) {
            sub.unsubscribe().await;
        }
        self.heartbeat_stop.cancel();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.await;
        }
        if self.registered {
            match self.registry.deregister(&self.record).await {
                Ok(()) => tracing::info!(service = %name, "deregistered"),
                Err(e) => tracing::warn!(service = %name, "deregistration failed: {e}"),
            }
        }
        if !self.drain.is_zero() && !self.connections.is_empty() {
            tracing::info!(service = %name, "draining for {:?}", self.drain);
            tokio::time::sleep(self.drain).await;
        }
        self.runtime.hosted().remove(&self.record.nodes[0].id);
        self.stop_accepting.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        let deadline = Instant::now()
            .checked_add(self.shutdown_timeout)
            .unwrap_or_else(far_future);
        tracing::info!(
            service = %name,
            "stopped accepting; waiting for {} connection(s)",
            self.connections.len()
        );
        self.shutdown.drain.cancel();
        self.connections.close();
        if tokio::time::timeout_at(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service = %name,
                "{} connection(s) still busy after {:?}; closing them",
                self.connections.len(),
                self.shutdown_timeout
            );
            self.shutdown.abort.cancel();
        }
        // With the router gone, mailboxes close once drained and the actors end.
        self.router = None;
        let actors = futures_util::future::join_all(std::mem::take(&mut self.actors));
        if tokio::time::timeout_at(deadline, actors).await.is_err() {
            tracing::warn!(service = %name, "handlers still running after {:?}; leaving them", self.shutdown_timeout);
        }
        tracing::info!(service = %name, "stopped");
        self.runtime
            .observe()
            .health
            .remove(&self.record.nodes[0].id);
        let hooks = take_hooks(&self.hooks_after_stop);
        let _ = run_hooks("after_stop", hooks).await;
    }
}

impl Drop for RunningService {
    /// Stops what `stop` did not: the accept loop, connections, heartbeat and actors end at
    /// once, and the service leaves the runtime's in-process table.
    fn drop(&mut self) {
        if let Some(node) = self.record.nodes.first() {
            self.runtime.hosted().remove(&node.id);
            self.runtime.observe().health.remove(&node.id);
        }
        self.heartbeat_stop.cancel();
        self.stop_accepting.cancel();
        self.shutdown.abort.cancel();
        for task in self
            .accept
            .take()
            .into_iter()
            .chain(self.heartbeat.take())
            .chain(std::mem::take(&mut self.actors))
        {
            task.abort();
        }
    }
}

/// A moment no wait reaches: for durations too long for the clock.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
