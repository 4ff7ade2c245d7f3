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
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;

use crate::broker::Broker;
use crate::client::{Client, ClientBuilder, WeakClient};
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
    /// The client `client()` hands out, while anyone holds it: a strong one would be a cycle.
    client: Mutex<WeakClient>,
    /// Dials nodes registered with `transport=tls`.
    tls: Option<Arc<dyn Transport>>,
    /// Attached to every call this runtime's clients make.
    token: Option<Arc<str>>,
    /// The TLS settings made from `MICRO_TLS_*` or given to the builder, for reloading.
    tls_settings: TlsSettings,
    observe: Arc<crate::metrics::Observe>,
}

#[cfg(feature = "tls")]
type TlsSettings = Option<crate::transport::Tls>;
#[cfg(not(feature = "tls"))]
type TlsSettings = NoTls;

/// What a build without TLS keeps of TLS settings: nothing.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
struct NoTls;

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

    /// The runtime's client: the same one (its connections and settings) for every caller
    /// while any of them holds it; it shares the runtime's registry cache and calls the
    /// runtime's services in-process.
    ///
    /// See the [module docs](self).
    pub fn client(&self) -> Client {
        let mut shared = self.inner.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = shared.upgrade() {
            return client;
        }
        let client = ClientBuilder::with_runtime(self.clone()).build();
        *shared = client.downgrade();
        client
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

    /// The bearer token this runtime's clients attach to their calls (`MICRO_AUTH_TOKEN`, or
    /// [`RuntimeBuilder::token`]).
    ///
    /// ```
    /// let runtime = micro::Runtime::builder().token("eyJ…").build(Default::default());
    /// assert_eq!(runtime.token(), Some("eyJ…"));
    /// ```
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// Reads the TLS certificate, key and CA files again (`MICRO_TLS_*`, or the settings
    /// given to [`RuntimeBuilder::tls`]): connections made afterwards use them.
    /// [`Service::run`] does this on SIGHUP. `Ok(false)` when the runtime has no TLS
    /// settings.
    ///
    /// # Errors
    /// When a file cannot be read or is not usable; the settings in use stay as they were.
    ///
    /// ```
    /// let runtime = micro::Runtime::new(Default::default());
    /// assert!(!runtime.reload_tls()?);
    /// # Ok::<(), micro::transport::TlsError>(())
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn reload_tls(&self) -> Result<bool, crate::transport::TlsError> {
        match &self.inner.tls_settings {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// The transport that dials a node: the one its registry record names.
    pub(crate) fn transport_named(&self, name: Option<&str>) -> Arc<dyn Transport> {
        match name {
            Some("memory") => Arc::new(self.inner.memory.clone()),
            Some(name) if name == self.inner.transport.name() => self.inner.transport.clone(),
            Some("tls") => self.inner.tls.clone().unwrap_or_else(|| {
                Arc::new(crate::transport::Unusable {
                    name: "tls",
                    why: Arc::from(NO_TLS),
                })
            }),
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
                client: Mutex::default(),
                tls: self.inner.tls.clone(),
                token: self.inner.token.clone(),
                tls_settings: self.inner.tls_settings.clone(),
                observe: self.inner.observe.clone(),
            }),
        }
    }
}

#[cfg(feature = "tls")]
const NO_TLS: &str = "the node serves tls, and this client has no tls settings: give it the CA that signs the node's certificate (MICRO_TLS_CA, or RuntimeBuilder::tls)";
#[cfg(not(feature = "tls"))]
const NO_TLS: &str =
    "the node serves tls, and this program was built without micro's `tls` feature";

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
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::Tls>,
    token: Option<String>,
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("registry", &self.registry.as_ref().map(|r| r.name()))
            .field("broker", &self.broker.as_ref().map(|b| b.name()))
            .field("transport", &self.transport.as_ref().map(|t| t.name()))
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
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

    /// The TLS settings clients use to dial nodes registered with `transport=tls`, whatever
    /// the `MICRO_TLS_*` variables say. To serve TLS, pass the same value to
    /// [`transport`](Self::transport) too.
    ///
    /// ```
    /// let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let tls = micro::transport::Tls::builder().ca_pem(ca.cert.pem()).build()?;
    /// let runtime = micro::Runtime::builder().tls(tls).build(Default::default());
    /// # drop(runtime);
    /// # Ok::<(), micro::transport::TlsError>(())
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: crate::transport::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A bearer token for this runtime's clients to attach to every call
    /// (`Authorization: Bearer …`), unless `MICRO_AUTH_TOKEN` gives another. Services of the
    /// runtime attach it to the calls their handlers make through
    /// [`Context::client`](crate::Context::client).
    ///
    /// See [`Runtime::token`] for an example.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
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
        let (tls, tls_settings) = tls_from(&self, &options);
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
                Some("tls") => tls.clone().unwrap_or_else(|| {
                    Arc::new(crate::transport::Unusable {
                        name: "tls",
                        why: Arc::from(
                            "MICRO_TRANSPORT=tls needs a certificate and its key (MICRO_TLS_CERT, MICRO_TLS_KEY)",
                        ),
                    })
                }),
                _ => Arc::new(Tcp),
            },
        };
        let token = options
            .auth_token
            .clone()
            .or(self.token)
            .map(|t| Arc::<str>::from(t.as_str()));
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
                client: Mutex::default(),
                tls,
                tls_settings,
                token,
            }),
        }
    }
}

/// The TLS transport for dialing `transport=tls` nodes (the one given in code, else one
/// made from the `MICRO_TLS_*` settings) and the settings to reload. Settings that fail to
/// load give a transport that fails with the reason on every use, so the error reaches
/// whoever uses it.
#[cfg(feature = "tls")]
fn tls_from(
    builder: &RuntimeBuilder,
    options: &Options,
) -> (Option<Arc<dyn Transport>>, TlsSettings) {
    let settings = match &builder.tls {
        Some(tls) => Ok(Some(tls.clone())),
        None => crate::transport::Tls::from_options(options),
    };
    match settings {
        Ok(Some(tls)) => (Some(Arc::new(tls.clone())), Some(tls)),
        Ok(None) => (None, None),
        Err(e) => {
            tracing::error!("tls settings unusable: {e}");
            let unusable = crate::transport::Unusable {
                name: "tls",
                why: Arc::from(e.to_string()),
            };
            (Some(Arc::new(unusable)), None)
        }
    }
}

#[cfg(not(feature = "tls"))]
fn tls_from(_: &RuntimeBuilder, _: &Options) -> (Option<Arc<dyn Transport>>, TlsSettings) {
    (None, NoTls)
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
