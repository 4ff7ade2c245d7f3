use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, mpsc};

use super::{Action, Event, Registry, RegistryError, Service, Watcher, group};
use crate::BoxFuture;

/// The JetStream key-value bucket holding the registry.
pub const BUCKET: &str = "micro_registry";

/// How often a watcher looks for entries whose TTL ran out (the bucket itself cannot
/// expire single keys on every server version).
const SWEEP: Duration = Duration::from_millis(500);

/// Entries expired for longer than this are deleted by readers.
const GC_AFTER: Duration = Duration::from_secs(60);

/// A registry in a NATS JetStream key-value bucket (`MICRO_REGISTRY=nats`,
/// `MICRO_REGISTRY_ADDRESS=nats://host:port`, cargo feature `nats`).
///
/// Each node is one key, `<service>.<node id>` (names escaped to the key alphabet), in the
/// bucket `micro_registry`; the value is the go-micro JSON of the service with that one node
/// and the time its registration expires. Readers ignore expired entries, so a node whose
/// process dies disappears when its TTL runs out, on any JetStream server. Watchers follow
/// the bucket and report expiries as deletions.
///
/// ```no_run
/// use micro::registry::{NatsRegistry, Registry};
///
/// # async fn f() -> Result<(), micro::registry::RegistryError> {
/// let registry = NatsRegistry::new("nats://127.0.0.1:4222");
/// println!("{} services", registry.list_services().await?.len());
/// # Ok(()) }
/// ```
pub struct NatsRegistry {
    address: String,
    store: OnceCell<kv::Store>,
}

impl std::fmt::Debug for NatsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRegistry")
            .field("address", &self.address)
            .field("connected", &self.store.initialized())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    service: Service,
    expires_at_ms: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(format!("nats {what}: {e}"))
}

/// Escapes a name into the key alphabet, keeping it one key token (no `.`).
fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() { "=".to_owned() } else { out }
}

fn key(service: &str, node: &str) -> String {
    format!("{}.{}", token(service), token(node))
}

/// A live entry, or `None` for garbage or an expired one.
fn live(value: &[u8], now: u64) -> Option<Service> {
    let entry: Entry = serde_json::from_slice(value).ok()?;
    match entry.expires_at_ms {
        Some(at) if at <= now => None,
        _ => Some(entry.service),
    }
}

impl NatsRegistry {
    /// A registry on the NATS server at `address` (`nats://host:port`, several separated
    /// by commas). It connects, and creates the bucket, on first use.
    ///
    /// See the [type-level example](Self).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            store: OnceCell::new(),
        }
    }

    async fn store(&self) -> Result<&kv::Store, RegistryError> {
        self.store
            .get_or_try_init(|| async {
                let addrs: Vec<&str> = self.address.split(',').map(str::trim).collect();
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    .connect(addrs)
                    .await
                    .map_err(|e| unavailable(&self.address, e))?;
                let js = jetstream::new(client);
                // The bucket's stream, made directly: the key-value helper asks the server
                // for account details that older servers (Debian's 2.9) answer differently.
                js.get_or_create_stream(jetstream::stream::Config {
                    name: format!("KV_{BUCKET}"),
                    subjects: vec![format!("$KV.{BUCKET}.>")],
                    max_messages_per_subject: 1,
                    // A safety net only: expiry is per entry.
                    max_age: Duration::from_secs(24 * 3600),
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable("create bucket", e))?;
                js.get_key_value(BUCKET)
                    .await
                    .map_err(|e| unavailable("open bucket", e))
            })
            .await
    }

    /// Every live entry whose key starts with `prefix`, deleting long-expired ones.
    async fn entries(&self, prefix: &str) -> Result<Vec<Service>, RegistryError> {
        let store = self.store().await?;
        let mut keys = store.keys().await.map_err(|e| unavailable("keys", e))?;
        let now = now_ms();
        let mut found = Vec::new();
        while let Some(k) = keys.next().await {
            let Ok(k) = k else { continue };
            if !k.starts_with(prefix) {
                continue;
            }
            let Ok(Some(value)) = store.get(k.clone()).await else {
                continue;
            };
            match live(&value, now) {
                Some(s) => found.push(s),
                None => {
                    let long_gone = serde_json::from_slice::<Entry>(&value)
                        .ok()
                        .and_then(|e| e.expires_at_ms)
                        .is_some_and(|at| at + (GC_AFTER.as_millis() as u64) < now);
                    if long_gone {
                        let _ = store.delete(&k).await;
                    }
                }
            }
        }
        Ok(found)
    }
}

impl Registry for NatsRegistry {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            super::validate(service)?;
            let store = self.store().await?;
            let expires_at_ms = ttl.map(|t| now_ms() + t.as_millis() as u64);
            for node in &service.nodes {
                let entry = Entry {
                    service: Service {
                        nodes: vec![node.clone()],
                        ..service.clone()
                    },
                    expires_at_ms,
                };
                let value = serde_json::to_vec(&entry)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                store
                    .put(key(&service.name, &node.id), value.into())
                    .await
                    .map_err(|e| unavailable("put", e))?;
            }
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let store = self.store().await?;
            for node in &service.nodes {
                store
                    .delete(key(&service.name, &node.id))
                    .await
                    .map_err(|e| unavailable("delete", e))?;
            }
            Ok(())
        })
    }

    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let found = group(
                self.entries(&format!("{}.", token(name)))
                    .await?
                    .into_iter()
                    .filter(|s| s.name == name),
            );
            if found.is_empty() {
                return Err(RegistryError::NotFound(name.to_owned()));
            }
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move { Ok(group(self.entries("").await?)) })
    }

    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let store = self.store().await?.clone();
            let subject = match service {
                Some(name) => format!("{}.>", token(name)),
                None => ">".to_owned(),
            };
            // Known entries, to tell creates from updates and to notice expiries.
            let mut known: HashMap<String, (Service, Option<u64>)> = HashMap::new();
            let prefix = service
                .map(|n| format!("{}.", token(n)))
                .unwrap_or_default();
            for s in self.entries(&prefix).await? {
                let k = key(&s.name, &s.nodes[0].id);
                let raw = store.get(k.clone()).await.ok().flatten();
                let expires = raw
                    .and_then(|v| serde_json::from_slice::<Entry>(&v).ok())
                    .and_then(|e| e.expires_at_ms);
                known.insert(k, (s, expires));
            }
            let mut updates = store
                .watch(&subject)
                .await
                .map_err(|e| unavailable("watch", e))?;
            let (tx, rx) = mpsc::channel(1024);
            let filter = service.map(str::to_owned);
            tokio::spawn(async move {
                let mut sweep = tokio::time::interval(SWEEP);
                loop {
                    let mut events = Vec::new();
                    tokio::select! {
                        _ = tx.closed() => break,
                        _ = sweep.tick() => {
                            let now = now_ms();
                            known.retain(|_, (s, expires)| {
                                let alive = expires.is_none_or(|at| at > now);
                                if !alive {
                                    events.push(Event { action: Action::Delete, service: s.clone() });
                                }
                                alive
                            });
                        }
                        update = updates.next() => {
                            let Some(Ok(entry)) = update else {
                                tracing::warn!("nats registry watch ended");
                                break;
                            };
                            match entry.operation {
                                kv::Operation::Put => {
                                    let Ok(e) = serde_json::from_slice::<Entry>(&entry.value) else { continue };
                                    if e.expires_at_ms.is_some_and(|at| at <= now_ms()) {
                                        continue;
                                    }
                                    let action = match known.get(&entry.key) {
                                        None => Some(Action::Create),
                                        // A renewal that changes nothing but the expiry is no event.
                                        Some((old, _)) if *old == e.service => None,
                                        Some(_) => Some(Action::Update),
                                    };
                                    known.insert(entry.key.clone(), (e.service.clone(), e.expires_at_ms));
                                    if let Some(action) = action {
                                        events.push(Event { action, service: e.service });
                                    }
                                }
                                kv::Operation::Delete | kv::Operation::Purge => {
                                    if let Some((s, _)) = known.remove(&entry.key) {
                                        events.push(Event { action: Action::Delete, service: s });
                                    }
                                }
                            }
                        }
                    }
                    for event in events {
                        if filter.as_deref().is_some_and(|f| f != event.service.name) {
                            continue;
                        }
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(Watcher::new(rx))
        })
    }
}
