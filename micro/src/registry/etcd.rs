use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use tokio::sync::{OnceCell, mpsc};

use super::{Action, Event, Node, Registry, RegistryError, Service, Watcher, group};
use crate::BoxFuture;

/// The key prefix of every entry: `/micro/registry/<service>/<node id>`.
pub const PREFIX: &str = "/micro/registry/";

/// A registry in etcd (`MICRO_REGISTRY=etcd`, `MICRO_REGISTRY_ADDRESS=host:port[,…]`,
/// cargo feature `etcd`).
///
/// Each node is one key, `/micro/registry/<service>/<node id>`, whose value is the service
/// record with that one node, as go-micro's JSON. The key is bound to a lease of the
/// registration's TTL; each re-registration keeps the lease alive (and grants a new one if
/// etcd lost it, as after a restart), so a node whose process dies disappears when its TTL
/// runs out. [`watch`](Registry::watch) follows the prefix and re-establishes itself after
/// connection failures.
///
/// ```no_run
/// use micro::registry::{EtcdRegistry, Registry};
///
/// # async fn f() -> Result<(), micro::registry::RegistryError> {
/// let registry = EtcdRegistry::new("127.0.0.1:2379");
/// for service in registry.list_services().await? {
///     println!("{} {}", service.name, service.version);
/// }
/// # Ok(()) }
/// ```
pub struct EtcdRegistry {
    endpoints: Vec<String>,
    client: OnceCell<Client>,
    /// node key → (lease id, value) of what this process registered.
    leases: Mutex<HashMap<String, (i64, String)>>,
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("endpoints", &self.endpoints)
            .field("connected", &self.client.initialized())
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(format!("etcd {what}: {e}"))
}

/// A path component for a name: `/` would split it.
fn component(name: &str) -> String {
    name.replace('/', "-")
}

fn node_key(service: &str, node: &str) -> String {
    format!("{PREFIX}{}/{}", component(service), component(node))
}

fn parse(value: &[u8]) -> Option<Service> {
    serde_json::from_slice(value).ok()
}

impl EtcdRegistry {
    /// A registry for the etcd cluster at `endpoints` (`host:port`, several separated by
    /// commas). It connects on first use.
    ///
    /// See the [type-level example](Self).
    pub fn new(endpoints: &str) -> Self {
        Self {
            endpoints: endpoints
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
            client: OnceCell::new(),
            leases: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self) -> Result<Client, RegistryError> {
        self.client
            .get_or_try_init(|| async {
                // HTTP/2 pings on an idle connection too: a watch that receives nothing cannot
                // otherwise tell a quiet etcd from a silently dropped path (a partition, a
                // vanished host), and the cache would stay in watched mode, stale.
                let opts = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(5))
                    .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
                    .with_keep_alive_while_idle(true);
                Client::connect(&self.endpoints, Some(opts))
                    .await
                    .map_err(|e| unavailable(&self.endpoints.join(","), e))
            })
            .await
            .cloned()
    }

    /// Keeps `lease` alive once; `false` when etcd no longer knows it.
    async fn keep_alive(client: &mut Client, lease: i64) -> bool {
        let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await else {
            return false;
        };
        if keeper.keep_alive().await.is_err() {
            return false;
        }
        matches!(stream.message().await, Ok(Some(r)) if r.ttl() > 0)
    }

    async fn register_node(
        &self,
        service: &Service,
        node: &Node,
        ttl: Option<Duration>,
    ) -> Result<(), RegistryError> {
        let mut client = self.client().await?;
        let key = node_key(&service.name, &node.id);
        let record = Service {
            nodes: vec![node.clone()],
            ..service.clone()
        };
        let value =
            serde_json::to_string(&record).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let known = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((lease, old)) = known {
            if old == value && Self::keep_alive(&mut client, lease).await {
                return Ok(());
            }
        }
        let mut opts = PutOptions::new();
        let mut lease = 0;
        if let Some(ttl) = ttl {
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            lease = client
                .lease_grant(secs, None)
                .await
                .map_err(|e| unavailable("lease grant", e))?
                .id();
            opts = opts.with_lease(lease);
        }
        client
            .put(key.clone(), value.clone(), Some(opts))
            .await
            .map_err(|e| unavailable("put", e))?;
        let previous = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (lease, value));
        // The key now rides the new lease; the old one has nothing left to keep.
        if let Some((old, _)) = previous.filter(|(old, _)| *old != 0 && *old != lease) {
            let _ = client.lease_revoke(old).await;
        }
        Ok(())
    }
}

impl Registry for EtcdRegistry {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            super::validate(service)?;
            for node in &service.nodes {
                self.register_node(service, node, ttl).await?;
            }
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            for node in &service.nodes {
                let key = node_key(&service.name, &node.id);
                client
                    .delete(key.clone(), None)
                    .await
                    .map_err(|e| unavailable("delete", e))?;
                let lease = self
                    .leases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                if let Some((lease, _)) = lease.filter(|(l, _)| *l != 0) {
                    let _ = client.lease_revoke(lease).await;
                }
            }
            Ok(())
        })
    }

    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let prefix = format!("{PREFIX}{}/", component(name));
            let resp = client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| unavailable("get", e))?;
            let found = group(
                resp.kvs()
                    .iter()
                    .filter_map(|kv| parse(kv.value()))
                    .filter(|s| s.name == name),
            );
            if found.is_empty() {
                return Err(RegistryError::NotFound(name.to_owned()));
            }
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let resp = client
                .get(PREFIX, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| unavailable("get", e))?;
            Ok(group(resp.kvs().iter().filter_map(|kv| parse(kv.value()))))
        })
    }

    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let prefix = match service {
                Some(name) => format!("{PREFIX}{}/", component(name)),
                None => PREFIX.to_owned(),
            };
            let opts = || WatchOptions::new().with_prefix().with_prev_key();
            // The first watch is made here, so that failures are reported to the caller and
            // no event after this call returns is missed.
            let (mut watcher, mut stream) = client
                .watch(prefix.clone(), Some(opts()))
                .await
                .map_err(|e| unavailable("watch", e))?;
            let (tx, rx) = mpsc::channel(1024);
            let filter = service.map(str::to_owned);
            tokio::spawn(async move {
                let mut backoff = Duration::from_millis(100);
                // The revision to resume from after a reconnect, so that what changed while
                // the watch was down is still delivered (0: from now on).
                let mut next: i64 = 0;
                loop {
                    let message = tokio::select! {
                        _ = tx.closed() => break,
                        m = stream.message() => m,
                    };
                    let failure = match message {
                        Ok(Some(resp)) if resp.compact_revision() > 0 => {
                            tracing::warn!(
                                "etcd compacted past revision {next} of {prefix}; watching from now, events in between are lost"
                            );
                            next = 0;
                            None
                        }
                        Ok(Some(resp)) => {
                            backoff = Duration::from_millis(100);
                            if resp.created() && next == 0 {
                                if let Some(header) = resp.header() {
                                    next = header.revision() + 1;
                                }
                            }
                            for ev in resp.events() {
                                if let Some(kv) = ev.kv() {
                                    next = next.max(kv.mod_revision() + 1);
                                }
                                let Some(event) = convert(ev) else { continue };
                                if filter.as_deref().is_some_and(|f| f != event.service.name) {
                                    continue;
                                }
                                if tx.send(event).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        Ok(None) => None,
                        Err(e) => Some(e),
                    };
                    if let Some(e) = failure {
                        tracing::warn!("etcd watch on {prefix} failed: {e}; re-watching");
                    }
                    // Re-establish, with backoff, until etcd answers again.
                    loop {
                        tokio::select! {
                            _ = tx.closed() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        let resume = if next > 0 {
                            opts().with_start_revision(next)
                        } else {
                            opts()
                        };
                        if let Ok(w) = client.watch(prefix.clone(), Some(resume)).await {
                            (watcher, stream) = w;
                            break;
                        }
                    }
                }
                let _ = watcher.cancel().await;
            });
            Ok(Watcher::new(rx))
        })
    }
}

fn convert(ev: &etcd_client::Event) -> Option<Event> {
    match ev.event_type() {
        EventType::Put => {
            let kv = ev.kv()?;
            let action = if kv.create_revision() == kv.mod_revision() {
                Action::Create
            } else {
                Action::Update
            };
            Some(Event {
                action,
                service: parse(kv.value())?,
            })
        }
        EventType::Delete => {
            if let Some(service) = ev.prev_kv().and_then(|kv| parse(kv.value())) {
                return Some(Event {
                    action: Action::Delete,
                    service,
                });
            }
            // No previous value (compacted): rebuild what the key says.
            let key = ev.kv()?.key_str().ok()?;
            let (name, id) = key.strip_prefix(PREFIX)?.split_once('/')?;
            Some(Event {
                action: Action::Delete,
                service: Service {
                    name: name.to_owned(),
                    nodes: vec![Node {
                        id: id.to_owned(),
                        ..Node::default()
                    }],
                    ..Service::default()
                },
            })
        }
    }
}
