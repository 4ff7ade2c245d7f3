//! The runtime: what the services and clients of a program share, as one value.
//!
//! A [`Runtime`] owns the resolved settings (builder < `MICRO_*` variables < `--flags`, read
//! once, when it is made), the registry, the broker, the transport services listen on, the
//! table of services hosted by this runtime (for the in-process fast path) and the registry
//! cache its clients share. Nothing of it is process-wide: a test makes as many runtimes as
//! it likes, and two runtimes never see each other's in-process services.
//!
//! ```
//! use std::sync::Arc;
//! use micro::prelude::*;
//! use micro::registry::MemoryRegistry;
//!
//! #[derive(Default)]
//! struct Greeter;
//!
//! #[micro::service(name = "greeter")]
//! impl Greeter {
//!     pub async fn hello(&self, name: String) -> micro::Result<String> {
//!         Ok(format!("Hello, {name}!"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
//! // Settings from MICRO_* variables, but this registry whatever they say.
//! let runtime = micro::Runtime::builder()
//!     .registry(Arc::new(MemoryRegistry::new()))
//!     .from_env()?;
//! let service = runtime.service("greeter").handle(Greeter).start().await?;
//! let greeter = GreeterClient::new(runtime.client());
//! assert_eq!(greeter.hello("Ada".into()).await?, "Hello, Ada!");
//! service.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Precedence
//!
//! One rule, everywhere: **values** (names, addresses, durations) given to a builder are
//! defaults that a `MICRO_*` variable overrides, and a `--flag` overrides both; **objects**
//! given in code (a registry, a broker, a transport) are always used as given. When a
//! variable or flag names a different backend than the object passed in code, the object
//! wins and a warning says which setting was ignored.

use std::fmt;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;

use crate::broker::Broker;
use crate::client::{Client, ClientBuilder};
use crate::config::{ConfigError, Options};
use crate::discovery::Cache;
use crate::registry::Registry;
use crate::server::Router;
use crate::service::Service;
use crate::transport::{Memory, Tcp, Transport};

/// What the services and clients of a program share. See the [module docs](self).
///
/// Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Shared>,
}

struct Shared {
    options: Options,
    registry: Arc<dyn Registry>,
    /// Made on first use: most clients never publish, and the embedded broker starts a
    /// listener of its own.
    broker: OnceLock<Arc<dyn Broker>>,
    transport: Arc<dyn Transport>,
    memory: Memory,
    hosted: Hosted,
    cache: Arc<Cache>,
    client: OnceLock<Client>,
    observe: Arc<crate::metrics::Observe>,
}

/// The services this runtime (and the runtimes derived from it) serve, by node id: a call
/// whose selected node is one of these skips the network.
pub(crate) type Hosted = Arc<DashMap<String, Arc<Router>>>;

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("registry", &self.inner.registry.name())
            .field("transport", &self.inner.transport.name())
            .field("hosted", &self.inner.hosted.len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime configured by this process's `MICRO_*` variables (flags are not read: see
    /// [`from_process`](Self::from_process)).
    ///
    /// # Errors
    /// When a variable holds a value that does not parse, naming it.
    ///
    /// ```
    /// let runtime = micro::Runtime::from_env()?;
    /// assert!(["local", "memory"].contains(&runtime.registry().name()));
    /// # Ok::<(), micro::config::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Runtime, ConfigError> {
        Self::builder().from_env()
    }

    /// A runtime configured by this process's `MICRO_*` variables and command-line flags,
    /// as [`Service::run`] makes it.
    ///
    /// # Errors
    /// When a variable or flag holds a value that does not parse, naming it.
    ///
    /// ```
    /// let runtime = micro::Runtime::from_process()?;
    /// # drop(runtime);
    /// # Ok::<(), micro::config::ConfigError>(())
    /// ```
    pub fn from_process() -> Result<Runtime, ConfigError> {
        Self::builder().from_process()
    }

    /// A runtime from these settings alone, reading no variable and no flag.
    ///
    /// ```
    /// use micro::config::Options;
    /// let opts = Options::resolve(|_: &str| None, &["app".into(), "--registry=memory".into()])?;
    /// let runtime = micro::Runtime::new(opts);
    /// assert_eq!(runtime.registry().name(), "memory");
    /// # Ok::<(), micro::config::ConfigError>(())
    /// ```
    pub fn new(options: Options) -> Runtime {
        Self::builder().build(options)
    }

    /// A runtime wholly inside this process, reading no variable: a memory registry and a
    /// memory broker of its own. For tests and examples.
    ///
    /// ```
    /// let runtime = micro::Runtime::in_memory();
    /// assert_eq!((runtime.registry().name(), runtime.broker().name()), ("memory", "memory"));
    /// ```
    pub fn in_memory() -> Runtime {
        Self::builder()
            .registry(Arc::new(crate::registry::MemoryRegistry::new()))
            .broker(Arc::new(crate::broker::MemoryBroker::new()))
            .build(Options::default())
    }

    /// Starts a runtime with objects of your own (registry, broker, transport).
    ///
    /// See the [module docs](self).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The settings this runtime was made with.
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert_eq!(runtime.options().registry, None);
    /// ```
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Where services register and clients look them up.
    ///
    /// See [`Runtime::new`] for an example.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// What [`Client::publish`] sends through and `#[micro::subscribe]` handlers receive from.
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert_eq!(runtime.broker().name(), "embedded");
    /// ```
    pub fn broker(&self) -> &Arc<dyn Broker> {
        self.inner.broker.get_or_init(|| {
            crate::broker::from_options_with(&self.inner.options, self.inner.registry.clone())
        })
    }

    /// What services listen on (default TCP).
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert_eq!(runtime.transport().name(), "tcp");
    /// ```
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The in-process network of this runtime's `memory:` addresses.
    ///
    /// ```
    /// use micro::transport::Transport;
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert_eq!(runtime.memory().name(), "memory");
    /// ```
    pub fn memory(&self) -> &Memory {
        &self.inner.memory
    }

    /// A service served by this runtime: it registers in this runtime's registry, and its
    /// handlers' [`Context::client`](crate::Context::client) is a client of this runtime.
    ///
    /// See the [module docs](self).
    pub fn service(&self, name: impl Into<String>) -> Service {
        Service::new(name).runtime(self.clone())
    }

    /// The runtime's client: shares the registry cache and the connections of every other
    /// client taken from this runtime, and calls services of this runtime in-process.
    ///
    /// See the [module docs](self).
    pub fn client(&self) -> Client {
        self.inner
            .client
            .get_or_init(|| ClientBuilder::with_runtime(self.clone()).build())
            .clone()
    }

    /// A builder for a client of this runtime with settings of its own (timeout, retries,
    /// selector, layers…).
    ///
    /// ```
    /// use std::time::Duration;
    /// let runtime = micro::Runtime::new(Default::default());
    /// let client = runtime.client_builder().timeout(Duration::from_secs(1)).build();
    /// # drop(client);
    /// ```
    pub fn client_builder(&self) -> ClientBuilder {
        ClientBuilder::with_runtime(self.clone())
    }

    pub(crate) fn hosted(&self) -> &Hosted {
        &self.inner.hosted
    }

    /// Metrics and readiness, shared by the runtimes derived from this one.
    pub(crate) fn observe(&self) -> &Arc<crate::metrics::Observe> {
        &self.inner.observe
    }

    pub(crate) fn cache(&self) -> &Arc<Cache> {
        &self.inner.cache
    }

    /// The transport that dials a node: the one its registry record names.
    pub(crate) fn transport_named(&self, name: Option<&str>) -> Arc<dyn Transport> {
        match name {
            Some("memory") => Arc::new(self.inner.memory.clone()),
            Some(name) if name == self.inner.transport.name() => self.inner.transport.clone(),
            _ => Arc::new(Tcp),
        }
    }

    /// The transport that dials an address given by hand (`memory:…` or `host:port`).
    pub(crate) fn transport_for_address(&self, address: &str) -> Arc<dyn Transport> {
        if address.starts_with("memory:") {
            Arc::new(self.inner.memory.clone())
        } else if self.inner.transport.name() != "memory" {
            self.inner.transport.clone()
        } else {
            Arc::new(Tcp)
        }
    }

    /// A runtime like this one (settings, in-process table, memory network) with other
    /// objects where given: how a service given its own registry or broker still shares
    /// the in-process fast path with the runtime it came from.
    pub(crate) fn derive(
        &self,
        options: Option<Options>,
        registry: Option<Arc<dyn Registry>>,
        broker: Option<Arc<dyn Broker>>,
        transport: Option<Arc<dyn Transport>>,
    ) -> Runtime {
        if options.is_none() && registry.is_none() && broker.is_none() && transport.is_none() {
            return self.clone();
        }
        let options = options.unwrap_or_else(|| self.inner.options.clone());
        let same_registry = registry.is_none();
        let registry = registry.unwrap_or_else(|| self.inner.registry.clone());
        let cache = if same_registry {
            self.inner.cache.clone()
        } else {
            Arc::new(Cache::new(registry.clone()))
        };
        let broker_cell = OnceLock::new();
        match broker {
            Some(b) => {
                let _ = broker_cell.set(b);
            }
            None if same_registry => {
                if let Some(b) = self.inner.broker.get() {
                    let _ = broker_cell.set(b.clone());
                }
            }
            None => {}
        }
        Runtime {
            inner: Arc::new(Shared {
                options,
                registry,
                broker: broker_cell,
                transport: transport.unwrap_or_else(|| self.inner.transport.clone()),
                memory: self.inner.memory.clone(),
                hosted: self.inner.hosted.clone(),
                cache,
                client: OnceLock::new(),
                observe: self.inner.observe.clone(),
            }),
        }
    }
}

/// Builds a [`Runtime`]: objects of your own, then the settings.
///
/// ```
/// use std::sync::Arc;
/// use micro::broker::MemoryBroker;
/// use micro::registry::MemoryRegistry;
///
/// let runtime = micro::Runtime::builder()
///     .registry(Arc::new(MemoryRegistry::new()))
///     .broker(Arc::new(MemoryBroker::new()))
///     .build(Default::default());
/// assert_eq!(runtime.broker().name(), "memory");
/// ```
#[derive(Default)]
#[must_use]
pub struct RuntimeBuilder {
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    transport: Option<Arc<dyn Transport>>,
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("registry", &self.registry.as_ref().map(|r| r.name()))
            .field("broker", &self.broker.as_ref().map(|b| b.name()))
            .field("transport", &self.transport.as_ref().map(|t| t.name()))
            .finish()
    }
}

impl RuntimeBuilder {
    /// This registry, whatever `MICRO_REGISTRY` says.
    ///
    /// See the [type-level example](Self).
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// This broker, whatever `MICRO_BROKER` says.
    ///
    /// See the [type-level example](Self).
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// This transport for services to listen on, whatever `MICRO_TRANSPORT` says.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let runtime = micro::Runtime::builder()
    ///     .transport(Arc::new(micro::transport::Tcp))
    ///     .build(Default::default());
    /// assert_eq!(runtime.transport().name(), "tcp");
    /// ```
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Finishes with the `MICRO_*` variables of this process.
    ///
    /// # Errors
    /// When a variable holds a value that does not parse, naming it.
    ///
    /// See the [module docs](self).
    pub fn from_env(self) -> Result<Runtime, ConfigError> {
        Ok(self.build(Options::from_env()?))
    }

    /// Finishes with the `MICRO_*` variables and command-line flags of this process.
    ///
    /// # Errors
    /// When a variable or flag holds a value that does not parse, naming it.
    ///
    /// ```
    /// let runtime = micro::Runtime::builder().from_process()?;
    /// # drop(runtime);
    /// # Ok::<(), micro::config::ConfigError>(())
    /// ```
    pub fn from_process(self) -> Result<Runtime, ConfigError> {
        Ok(self.build(Options::from_process()?))
    }

    /// Finishes with these settings, reading no variable and no flag.
    ///
    /// See the [type-level example](Self).
    pub fn build(self, options: Options) -> Runtime {
        let registry = match self.registry {
            Some(given) => {
                ignored(&options.registry, "MICRO_REGISTRY", given.name());
                given
            }
            None => crate::registry::from_options(&options),
        };
        let broker = OnceLock::new();
        if let Some(given) = self.broker {
            ignored(&options.broker, "MICRO_BROKER", given.name());
            let _ = broker.set(given);
        }
        let memory = Memory::new();
        let transport = match self.transport {
            Some(given) => {
                ignored(&options.transport, "MICRO_TRANSPORT", given.name());
                given
            }
            None => match options.transport.as_deref() {
                Some("memory") => Arc::new(memory.clone()) as Arc<dyn Transport>,
                _ => Arc::new(Tcp),
            },
        };
        Runtime {
            inner: Arc::new(Shared {
                cache: Arc::new(Cache::new(registry.clone())),
                observe: Arc::new(crate::metrics::Observe::new(&options)),
                options,
                registry,
                broker,
                transport,
                memory,
                hosted: Hosted::default(),
                client: OnceLock::new(),
            }),
        }
    }
}

/// Warns when a setting names another backend than the object passed in code.
fn ignored(setting: &Option<String>, variable: &str, given: &str) {
    if let Some(named) = setting {
        if named != given {
            tracing::warn!(
                "{variable} (or its flag) names `{named}`, but a {given} object was passed in code: using the {given} one"
            );
        }
    }
}
