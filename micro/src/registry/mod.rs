//! Service discovery: who serves what, where.
//!
//! A [`Registry`] stores [`Service`] records: a name and version, the endpoints with their
//! request and response types, and the [`Node`]s (processes) serving it. Nodes register
//! with a TTL and re-register before it runs out; a node that stops re-registering
//! disappears. The records have go-micro's shape and serialize to the same JSON, so tools
//! can read either.
//!
//! | backend | scope |
//! |---------|-------|
//! | [`MemoryRegistry`] | one process (the default for now) |
//! | [`LocalRegistry`] | processes of one user on one machine, through files in a directory |
//! | `MdnsRegistry` (feature `mdns`) | processes on one network link, by multicast DNS; no server |
//!
//! ```
//! use micro::registry::{MemoryRegistry, Node, Registry, Service};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), micro::registry::RegistryError> {
//! let registry = MemoryRegistry::new();
//! let service = Service {
//!     name: "greeter".into(),
//!     version: "1.0.0".into(),
//!     nodes: vec![Node { id: "greeter-1".into(), address: "127.0.0.1:9000".into(), ..Default::default() }],
//!     ..Default::default()
//! };
//! registry.register(&service, None).await?;
//! let found = registry.get_service("greeter").await?;
//! assert_eq!(found[0].nodes[0].address, "127.0.0.1:9000");
//! # Ok(()) }
//! ```

#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
mod etcd;
pub(crate) mod local;
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
mod mdns;
mod memory;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
mod nats;
mod value;

#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use etcd::{EtcdRegistry, PREFIX as ETCD_PREFIX};
pub use local::LocalRegistry;
#[cfg(feature = "mdns")]
#[cfg_attr(docsrs, doc(cfg(feature = "mdns")))]
pub use mdns::{MdnsRegistry, SERVICE_TYPE as MDNS_SERVICE_TYPE};
pub use memory::MemoryRegistry;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use nats::{BUCKET as NATS_BUCKET, NatsRegistry};
pub use value::Description;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::BoxFuture;

/// A service: one name and version, its endpoints and the nodes serving it.
///
/// Serializes like go-micro's `registry.Service`:
///
/// ```
/// let s = micro::registry::Service { name: "greeter".into(), ..Default::default() };
/// assert_eq!(
///     serde_json::to_string(&s).unwrap(),
///     r#"{"name":"greeter","version":"","metadata":{},"endpoints":[],"nodes":[]}"#,
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service name, such as `greeter` or `shippy.consignment`.
    pub name: String,
    /// The version nodes of this record run.
    #[serde(default)]
    pub version: String,
    /// Free-form service metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// The endpoints the service answers.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The processes serving it.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// One process serving a [`Service`].
///
/// ```
/// let n = micro::registry::Node { id: "a".into(), address: "127.0.0.1:1".into(), ..Default::default() };
/// assert_eq!(serde_json::to_string(&n).unwrap(), r#"{"id":"a","address":"127.0.0.1:1","metadata":{}}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique id: the service name and a random suffix.
    pub id: String,
    /// Where to dial it, in its transport's address syntax.
    pub address: String,
    /// Node metadata; micro records `transport`, `protocol` and `server` here.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// An endpoint of a [`Service`], such as `Greeter.SayHello`.
///
/// ```
/// let e = micro::registry::Endpoint { name: "Greeter.SayHello".into(), ..Default::default() };
/// assert!(serde_json::to_string(&e).unwrap().contains(r#""request":null"#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The wire name.
    pub name: String,
    /// The request type.
    #[serde(default)]
    pub request: Option<Value>,
    /// The response type.
    #[serde(default)]
    pub response: Option<Value>,
    /// Endpoint metadata (`subscriber`, `idempotent`, …).
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// A type description, as go-micro's `registry.Value`: a name, a type and, for a struct,
/// one value per field. [`Value::of`] describes a serde type; [`Value::json_schema`] turns a
/// description into a JSON Schema. See [`Description`] for what each Rust type becomes.
///
/// ```
/// let v = micro::registry::Value::named("HelloRequest");
/// assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"name":"HelloRequest","type":"HelloRequest","values":[]}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// Field or type name.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Nested fields, where known.
    #[serde(default)]
    pub values: Vec<Value>,
}

impl Value {
    /// A value whose name and type are both `type_name`, with no known fields.
    ///
    /// See the [type-level example](Self).
    pub fn named(type_name: &str) -> Self {
        Self {
            name: type_name.to_owned(),
            type_name: type_name.to_owned(),
            values: Vec::new(),
        }
    }
}

/// What happened to a service, as seen by a [`Watcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// A node appeared.
    Create,
    /// A node re-registered or changed.
    Update,
    /// A node left or expired.
    Delete,
}

/// One registry change: the action and the service with the node(s) it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The service, with only the nodes concerned.
    pub service: Service,
}

/// A stream of registry [`Event`]s, from [`Registry::watch`].
///
/// ```
/// use micro::registry::{Action, MemoryRegistry, Node, Registry, Service};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), micro::registry::RegistryError> {
/// let registry = MemoryRegistry::new();
/// let mut watcher = registry.watch(Some("greeter")).await?;
/// let s = Service { name: "greeter".into(), nodes: vec![Node::default()], ..Default::default() };
/// registry.register(&s, None).await?;
/// assert_eq!(watcher.next().await.unwrap().action, Action::Create);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<Event>,
}

impl Watcher {
    /// A watcher fed by `rx`; registry backends build one this way.
    pub fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the registry closed the watch.
    ///
    /// # Cancel safety
    /// Cancel safe: no event is lost when the future is dropped.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

/// A registry failure.
///
/// ```
/// let err = micro::registry::RegistryError::NotFound("greeter".into());
/// assert_eq!(err.to_string(), "service greeter not found");
/// let as_micro: micro::Error = err.into();
/// assert_eq!(as_micro.code, 404);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// No node of this service is registered.
    NotFound(String),
    /// The registry could not be reached or answered with an error.
    Unavailable(String),
    /// The record is not acceptable (no name, no nodes…).
    Invalid(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(name) => write!(f, "service {name} not found"),
            Self::Unavailable(why) => write!(f, "registry unavailable: {why}"),
            Self::Invalid(why) => write!(f, "invalid registration: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<RegistryError> for crate::Error {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::NotFound(_) => Self::not_found("micro.registry", err),
            RegistryError::Unavailable(_) => Self::unavailable("micro.registry", err),
            RegistryError::Invalid(_) => Self::bad_request("micro.registry", err),
        }
    }
}

/// Service discovery. See the [module docs](self).
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// The backend's name, as `MICRO_REGISTRY` spells it.
    fn name(&self) -> &'static str;

    /// Adds or refreshes the nodes of `service`; they expire after `ttl` unless registered
    /// again (`None`: they stay until deregistered).
    ///
    /// # Errors
    /// When the record is invalid or the backend unreachable.
    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Removes the nodes of `service`.
    ///
    /// # Errors
    /// When the backend is unreachable.
    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Every version of the named service, each with its live nodes.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when no live node serves it.
    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>>;

    /// Every service with at least one live node.
    ///
    /// # Errors
    /// When the backend is unreachable.
    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>>;

    /// Events for one service (`Some(name)`) or all of them, from now on.
    ///
    /// # Errors
    /// When the backend is unreachable.
    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>>;
}

/// A new registry of the kind that `MICRO_REGISTRY` / `MICRO_REGISTRY_ADDRESS` settings
/// name, as a [`Runtime`](crate::Runtime) builds it (`local` when unset). Tools use it to
/// see what services see. Each call makes a new one: a `memory` registry is shared by what
/// shares its runtime, and no more.
///
/// ```
/// use micro::config::Options;
///
/// let opts = Options::resolve(|_: &str| None, &["tool".into(), "--registry=memory".into()]).unwrap();
/// assert_eq!(micro::registry::from_options(&opts).name(), "memory");
/// ```
pub fn from_options(opts: &crate::config::Options) -> Arc<dyn Registry> {
    match opts.registry.as_deref() {
        Some("memory") => Arc::new(MemoryRegistry::new()),
        #[cfg(feature = "nats")]
        Some("nats") => Arc::new(NatsRegistry::new(
            opts.registry_address
                .as_deref()
                .unwrap_or("nats://127.0.0.1:4222"),
        )),
        #[cfg(feature = "etcd")]
        Some("etcd") => Arc::new(EtcdRegistry::new(
            opts.registry_address.as_deref().unwrap_or("127.0.0.1:2379"),
        )),
        // An mDNS daemon answering for its nodes: share the runtime to share the daemon.
        #[cfg(feature = "mdns")]
        Some("mdns") => mdns::from_address(opts.registry_address.as_deref()),
        _ => match &opts.registry_address {
            Some(dir) => Arc::new(LocalRegistry::at(dir)),
            None => Arc::new(LocalRegistry::new()),
        },
    }
}

/// Refuses records no backend can store: no name, or no node.
pub(crate) fn validate(service: &Service) -> Result<(), RegistryError> {
    if service.name.is_empty() {
        return Err(RegistryError::Invalid("service has no name".into()));
    }
    if service.nodes.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "service {} has no nodes",
            service.name
        )));
    }
    Ok(())
}

/// Groups one-node records into services by (name, version), nodes sorted by id: how
/// backends that store one entry per node answer `get_service` and `list_services`.
#[cfg(any(feature = "etcd", feature = "mdns", feature = "nats"))]
pub(crate) fn group(records: impl IntoIterator<Item = Service>) -> Vec<Service> {
    let mut by: std::collections::BTreeMap<(String, String), Service> = Default::default();
    for record in records {
        let key = (record.name.clone(), record.version.clone());
        let entry = by.entry(key).or_insert_with(|| Service {
            nodes: Vec::new(),
            ..record.clone()
        });
        entry.nodes.extend(record.nodes);
    }
    by.into_values()
        .map(|mut s| {
            s.nodes.sort_by(|a, b| a.id.cmp(&b.id));
            s
        })
        .collect()
}
