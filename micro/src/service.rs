//! `Service`: handlers, a listener and a registration, started and stopped together.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::client::Client;
use crate::handler::Handler;
use crate::middleware::{Chain, Middleware};
use crate::registry::{self, Registry};
use crate::server::HandlerStats;
use crate::server::{self, Mounted, Router, local};
use crate::transport::{Tcp, Transport};
use crate::wire::DEFAULT_MAX_FRAME;

/// Requests a handled type's mailbox holds before callers get `overloaded`, unless the type
/// or the builder says otherwise.
pub const DEFAULT_MAILBOX: usize = 1024;

/// How long a registration lives unless renewed; it is renewed every third of that.
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(60);

type Mount = Box<dyn FnOnce(usize, Chain) -> Mounted + Send>;

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
/// let service = micro::Service::new("greeter")
///     .version("1.0.0")
///     .address("127.0.0.1:0")
///     .handle(Greeter)
///     .start()
///     .await?;
/// let greeter = GreeterClient::new(service.client());
/// assert_eq!(greeter.hello("Ada".into()).await?, "Hello, Ada!");
/// service.stop().await;
/// # Ok(()) }
/// ```
#[must_use]
pub struct Service {
    name: String,
    version: String,
    address: String,
    metadata: HashMap<String, String>,
    transport: Arc<dyn Transport>,
    registry: Arc<dyn Registry>,
    ttl: Duration,
    mailbox: Option<usize>,
    max_frame: usize,
    middleware: Chain,
    mounts: Vec<(&'static str, Mount)>,
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
                &self.mounts.iter().map(|m| m.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name`, listening on `127.0.0.1` on a free port over TCP, registered
    /// in the [default registry](crate::registry::default_registry).
    ///
    /// See the [type-level example](Self).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "latest".to_owned(),
            address: "127.0.0.1:0".to_owned(),
            metadata: HashMap::new(),
            transport: Arc::new(Tcp),
            registry: registry::default_registry(),
            ttl: DEFAULT_REGISTER_TTL,
            mailbox: None,
            max_frame: DEFAULT_MAX_FRAME,
            middleware: Chain::default(),
            mounts: Vec::new(),
        }
    }

    /// The version registered for this service's node.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Where to listen, in the transport's address syntax (port 0: any free port; the bound
    /// address is what gets registered).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// A metadata entry registered with the service.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The transport to listen on (default [`Tcp`]).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// The registry to announce the service in.
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// How long the registration lives unless renewed (default 60 s; renewed every third).
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Mailbox capacity for handled types that do not set `mailbox = N` themselves
    /// (default [`DEFAULT_MAILBOX`]).
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = Some(capacity);
        self
    }

    /// The largest frame accepted or sent (default 4 MiB). A connection that sends a larger
    /// one is closed.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Adds a middleware around every handler call; the first added runs first.
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// Serves the handlers of `value`, a type with `#[micro::service]` on an `impl` block,
    /// with the number of workers its attribute declares (default 1).
    pub fn handle<H: Handler>(mut self, value: H) -> Self {
        let workers = H::DEF.workers;
        self.mounts.push((
            H::DEF.type_name,
            Box::new(move |mailbox, chain| {
                server::mount(value, workers, None, mailbox_for::<H>(mailbox), chain)
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
            H::DEF.type_name,
            Box::new(move |mailbox, chain| {
                server::mount(
                    value,
                    workers,
                    Some(H::clone),
                    mailbox_for::<H>(mailbox),
                    chain,
                )
            }),
        ));
        self
    }

    /// Listens, starts the actors, registers, and returns the running service.
    ///
    /// # Errors
    /// When there is nothing to serve, two handled types declare the same endpoint, the
    /// address cannot be bound, or the registry refuses the registration.
    pub async fn start(self) -> Result<RunningService, Error> {
        if self.mounts.is_empty() {
            return Err(Error::bad_request(
                "micro.server",
                format_args!(
                    "service {} has no handlers: add one with .handle(value)",
                    self.name
                ),
            ));
        }
        let mut listener = self.transport.listen(&self.address).await.map_err(|e| {
            Error::internal(
                "micro.server",
                format_args!(
                    "cannot listen on {} over {}: {e}",
                    self.address,
                    self.transport.name()
                ),
            )
        })?;
        let address = listener.local_addr();

        let default_mailbox = self.mailbox.unwrap_or(DEFAULT_MAILBOX);
        let mut mounted = Vec::new();
        let mut routes = HashMap::new();
        let mut endpoints = Vec::new();
        for (_, mount) in self.mounts {
            let m = mount(default_mailbox, self.middleware.clone());
            for route in &m.routes {
                if routes.insert(route.def.name, route.clone()).is_some() {
                    return Err(Error::bad_request(
                        "micro.server",
                        format_args!(
                            "endpoint {} is declared twice in service {}",
                            route.def.name, self.name
                        ),
                    ));
                }
                endpoints.push(registry::Endpoint {
                    name: route.def.name.to_owned(),
                    request: Some(registry::Value::named(route.def.request)),
                    response: Some(registry::Value::named(route.def.response)),
                    metadata: HashMap::new(),
                });
            }
            if m.def.service != self.name {
                tracing::debug!(
                    "{} declares service name {}, served here as {}",
                    m.def.type_name,
                    m.def.service,
                    self.name
                );
            }
            mounted.push(m);
        }
        let router = Arc::new(Router {
            service: self.name.as_str().into(),
            routes,
            max_frame: self.max_frame,
        });
        local::add(&router);

        let stop = CancellationToken::new();
        let accept = {
            let (router, stop) = (router.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        _ = stop.cancelled() => break,
                        accepted = listener.accept() => accepted,
                    };
                    match accepted {
                        Ok((io, peer)) => {
                            tokio::spawn(server::serve(io, peer, router.clone(), stop.clone()));
                        }
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        };

        let node = registry::Node {
            id: format!("{}-{:016x}", self.name, fastrand::u64(..)),
            address: address.clone(),
            metadata: HashMap::from([
                ("transport".to_owned(), self.transport.name().to_owned()),
                ("protocol".to_owned(), "micro".to_owned()),
                ("server".to_owned(), "micro".to_owned()),
                ("registry".to_owned(), self.registry.name().to_owned()),
            ]),
        };
        let record = registry::Service {
            name: self.name.clone(),
            version: self.version.clone(),
            metadata: self.metadata,
            endpoints,
            nodes: vec![node],
        };
        let running = RunningService {
            client: Client::builder().registry(self.registry.clone()).build(),
            registry: self.registry,
            record,
            router,
            stop,
            accept,
            mounted,
            heartbeat: None,
        };
        if let Err(e) = running
            .registry
            .register(&running.record, Some(self.ttl))
            .await
        {
            running.stop().await;
            return Err(e.into());
        }
        tracing::info!(
            service = %running.record.name,
            address = %address,
            "serving {} endpoint(s)",
            running.router.routes.len()
        );
        let heartbeat = {
            let (registry, record, stop, ttl) = (
                running.registry.clone(),
                running.record.clone(),
                running.stop.clone(),
                self.ttl,
            );
            tokio::spawn(async move {
                let mut every = tokio::time::interval(ttl / 3);
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
        };
        Ok(RunningService {
            heartbeat: Some(heartbeat),
            ..running
        })
    }

    /// Starts, serves until Ctrl-C or SIGTERM, then stops cleanly.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn run(self) -> Result<(), Error> {
        let running = self.start().await?;
        shutdown_signal().await;
        tracing::info!(service = %running.record.name, "shutting down");
        running.stop().await;
        Ok(())
    }
}

fn mailbox_for<H: Handler>(default: usize) -> usize {
    match H::DEF.mailbox {
        0 => default,
        n => n,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A started [`Service`]. Stop it with [`stop`](Self::stop); dropping it leaves it running
/// until the runtime ends.
pub struct RunningService {
    client: Client,
    registry: Arc<dyn Registry>,
    record: registry::Service,
    router: Arc<Router>,
    stop: CancellationToken,
    accept: JoinHandle<()>,
    mounted: Vec<Mounted>,
    heartbeat: Option<JoinHandle<()>>,
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

    /// The address the service listens on, as registered.
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

    /// A client using the same registry as this service.
    ///
    /// See [`Service`] for an example.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Counters for each handled type, in the order they were added.
    ///
    /// ```
    /// # use micro::prelude::*;
    /// # #[derive(Default)] struct Greeter;
    /// # #[micro::service(name = "greeter")]
    /// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let service = micro::Service::new("greeter").handle(Greeter).start().await?;
    /// GreeterClient::new(service.client()).hello("x".into()).await?;
    /// let stats = &service.stats()[0];
    /// assert_eq!((stats.handler.as_str(), stats.calls, stats.queued), ("Greeter", 1, 0));
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn stats(&self) -> Vec<HandlerStats> {
        self.mounted.iter().map(Mounted::snapshot).collect()
    }

    /// Deregisters, stops accepting, lets queued and running calls finish (up to 10 s), and
    /// ends the actors.
    ///
    /// See [`Service`] for an example.
    pub async fn stop(self) {
        if let Err(e) = self.registry.deregister(&self.record).await {
            tracing::warn!(service = %self.record.name, "deregistration failed: {e}");
        }
        local::remove(&self.router);
        self.stop.cancel();
        let _ = self.accept.await;
        if let Some(h) = self.heartbeat {
            let _ = h.await;
        }
        drop(self.router);
        let mut actors = Vec::new();
        for m in self.mounted {
            actors.extend(m.actors);
        }
        let all = futures_util::future::join_all(actors);
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!(service = %self.record.name, "calls still running after 10 s; leaving them");
        }
    }
}
