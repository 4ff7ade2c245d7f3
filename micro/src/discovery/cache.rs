//! The client's view of the registry: lookups cached, kept current by a watch, coalesced
//! when concurrent, and kept serving while the registry is unreachable.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::registry::{Action, Event, Registry, RegistryError, Service};

/// How long an answer is trusted when no watch keeps it current.
const UNWATCHED_TTL: Duration = Duration::from_secs(1);
/// How long an answer kept current by the watch is trusted before it is read again anyway
/// (a watch can miss events across a registry reconnect).
const WATCHED_TTL: Duration = Duration::from_secs(30);
/// Services whose answers are kept at once. Callers choose the names they look up (a
/// gateway passes on whatever a request names), so the table is pruned past this size.
#[cfg(not(test))]
const MAX_ENTRIES: usize = 4096;
#[cfg(test)]
const MAX_ENTRIES: usize = 64;

const IDLE: u8 = 0;
const STARTING: u8 = 1;
const WATCHING: u8 = 2;

#[derive(Debug)]
pub(crate) struct Cache {
    registry: Arc<dyn Registry>,
    entries: DashMap<Arc<str>, (Instant, Arc<[Service]>)>,
    fetching: DashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>,
    watch: AtomicU8,
    stop: CancellationToken,
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cache {
    pub(crate) fn new(registry: Arc<dyn Registry>) -> Self {
        Self {
            registry,
            entries: DashMap::new(),
            fetching: DashMap::new(),
            watch: AtomicU8::new(IDLE),
            stop: CancellationToken::new(),
        }
    }

    fn ttl(&self) -> Duration {
        if self.watch.load(Ordering::Acquire) == WATCHING {
            WATCHED_TTL
        } else {
            UNWATCHED_TTL
        }
    }

    fn fresh(&self, service: &str) -> Option<Arc<[Service]>> {
        let ttl = self.ttl();
        self.entries
            .get(service)
            .filter(|e| e.0.elapsed() < ttl)
            .map(|e| e.1.clone())
    }

    /// The versions of `service` with their nodes.
    ///
    /// # Errors
    /// `not_found` when no node serves it; the registry's error when it is unreachable and
    /// nothing was known before.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        service: &Arc<str>,
    ) -> Result<Arc<[Service]>, Error> {
        self.start_watch();
        if let Some(services) = self.fresh(service) {
            return Ok(services);
        }
        // One registry read per service at a time: the others wait for its answer.
        let lock = self.fetching.entry(service.clone()).or_default().clone();
        let turn = lock.lock().await;
        if let Some(services) = self.fresh(service) {
            return Ok(services);
        }
        match self.registry.get_service(service).await {
            Ok(versions) => {
                let services: Arc<[Service]> = versions.into();
                self.prune();
                self.entries
                    .insert(service.clone(), (Instant::now(), services.clone()));
                Ok(services)
            }
            Err(RegistryError::NotFound(_)) => {
                self.entries.remove(service);
                // Names that serve nothing leave nothing behind.
                drop(turn);
                drop(lock);
                self.fetching
                    .remove_if(service, |_, lock| Arc::strong_count(lock) == 1);
                Err(Error::not_found(
                    "micro.client",
                    format_args!("service {service} not found"),
                ))
            }
            // The registry is unreachable: keep serving what we knew, and say so.
            Err(e) => match self.entries.get(service).map(|e| (e.0, e.1.clone())) {
                Some((at, services)) => {
                    tracing::warn!(
                        %service,
                        "registry unreachable ({e}); using nodes last seen {:?} ago",
                        at.elapsed()
                    );
                    Ok(services)
                }
                None => Err(e.into()),
            },
        }
    }

    /// Keeps the table under [`MAX_ENTRIES`]: stale answers go first, then the rest (they are
    /// only a cache: the next lookup reads the registry again).
    fn prune(&self) {
        if self.entries.len() < MAX_ENTRIES {
            return;
        }
        let ttl = self.ttl();
        self.entries.retain(|_, e| e.0.elapsed() < ttl);
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.fetching.retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    /// Marks `service` as due for a fresh read (its answer stays as a fallback).
    pub(crate) fn expire(&self, service: &str) {
        if let Some(mut entry) = self.entries.get_mut(service) {
            entry.0 = Instant::now().checked_sub(WATCHED_TTL).unwrap_or(entry.0);
        }
    }

    /// Starts the watch that keeps cached answers current, once (again after it ended).
    fn start_watch(self: &Arc<Self>) {
        if self
            .watch
            .compare_exchange(IDLE, STARTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.watch.store(IDLE, Ordering::Release);
            return;
        };
        let (weak, stop, registry) = (
            Arc::downgrade(self),
            self.stop.clone(),
            self.registry.clone(),
        );
        runtime.spawn(async move {
            let watcher = tokio::select! {
                _ = stop.cancelled() => return,
                w = registry.watch(None) => w,
            };
            let mut watcher = match watcher {
                Ok(w) => w,
                Err(e) => {
                    tracing::debug!(
                        "registry watch unavailable ({e}); caching for {UNWATCHED_TTL:?}"
                    );
                    return retry_later(weak, stop).await;
                }
            };
            if let Some(cache) = weak.upgrade() {
                cache.watch.store(WATCHING, Ordering::Release);
            }
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = watcher.next() => e,
                };
                let Some(cache) = weak.upgrade() else { return };
                match event {
                    Some(event) => cache.apply(event),
                    None => {
                        tracing::debug!("registry watch ended; caching for {UNWATCHED_TTL:?}");
                        drop(cache);
                        return retry_later(weak, stop).await;
                    }
                }
            }
        });
    }

    /// Applies a registry event to a cached answer (services not cached are not tracked).
    fn apply(&self, event: Event) {
        let name: &str = &event.service.name;
        let Some(mut entry) = self.entries.get_mut(name) else {
            return;
        };
        let mut services: Vec<Service> = entry.1.to_vec();
        for node in &event.service.nodes {
            for s in &mut services {
                s.nodes.retain(|n| n.id != node.id);
            }
        }
        if matches!(event.action, Action::Create | Action::Update) {
            match services
                .iter_mut()
                .find(|s| s.version == event.service.version)
            {
                Some(s) => {
                    s.endpoints = event.service.endpoints.clone();
                    s.metadata = event.service.metadata.clone();
                    s.nodes.extend(event.service.nodes.iter().cloned());
                }
                None => services.push(event.service.clone()),
            }
        }
        services.retain(|s| !s.nodes.is_empty());
        entry.1 = services.into();
    }
}

/// After a failed or ended watch: stay on short-lived answers for a while, then let the next
/// lookup try to watch again.
async fn retry_later(weak: Weak<Cache>, stop: CancellationToken) {
    if let Some(cache) = weak.upgrade() {
        cache.watch.store(STARTING, Ordering::Release);
    }
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            if let Some(cache) = weak.upgrade() {
                cache.watch.store(IDLE, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{MemoryRegistry, Node};

    /// A gateway passes on whatever name a request holds: lookups of names that serve
    /// nothing, and of many that do, leave bounded tables behind.
    #[tokio::test]
    async fn lookups_of_many_names_leave_bounded_tables() {
        let registry = Arc::new(MemoryRegistry::new());
        let cache = Arc::new(Cache::new(registry.clone()));
        for i in 0..10_000 {
            let name: Arc<str> = format!("nobody-{i}").into();
            assert!(cache.lookup(&name).await.is_err());
        }
        assert_eq!((cache.entries.len(), cache.fetching.len()), (0, 0));
        for i in 0..MAX_ENTRIES + 100 {
            let service = Service {
                name: format!("svc-{i}"),
                nodes: vec![Node {
                    id: format!("n-{i}"),
                    address: "127.0.0.1:1".into(),
                    ..Node::default()
                }],
                ..Service::default()
            };
            registry.register(&service, None).await.unwrap();
            cache.lookup(&service.name.as_str().into()).await.unwrap();
        }
        assert!(
            cache.entries.len() <= MAX_ENTRIES,
            "{}",
            cache.entries.len()
        );
        assert!(
            cache.fetching.len() <= MAX_ENTRIES,
            "{}",
            cache.fetching.len()
        );
    }
}
