use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Action, Event, Node, Registry, RegistryError, Service, Watcher};
use crate::BoxFuture;

/// A registry inside one process.
///
/// Nodes registered with a TTL expire when it runs out; expiry is noticed on the next
/// read or write, and watchers then get a [`Delete`](Action::Delete) event.
///
/// ```
/// use std::time::Duration;
/// use micro::registry::{MemoryRegistry, Node, Registry, Service};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = MemoryRegistry::new();
/// let s = Service { name: "x".into(), nodes: vec![Node::default()], ..Default::default() };
/// registry.register(&s, Some(Duration::from_millis(1))).await.unwrap();
/// tokio::time::sleep(Duration::from_millis(5)).await;
/// assert!(registry.get_service("x").await.is_err());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// name → version → record (nodes kept separately with their expiry)
    services: HashMap<String, HashMap<String, Record>>,
    watchers: Vec<(Option<String>, mpsc::Sender<Event>)>,
}

#[derive(Debug)]
struct Record {
    service: Service,
    nodes: HashMap<String, (Node, Option<Instant>)>,
}

impl MemoryRegistry {
    /// An empty registry.
    ///
    /// See the [type-level example](Self).
    pub fn new() -> Self {
        Self::default()
    }
}

impl State {
    fn expire(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for versions in self.services.values_mut() {
            for record in versions.values_mut() {
                record.nodes.retain(|_, (node, expiry)| {
                    let live = expiry.is_none_or(|e| e > now);
                    if !live {
                        gone.push(Service {
                            nodes: vec![node.clone()],
                            ..record.service.clone()
                        });
                    }
                    live
                });
            }
            versions.retain(|_, r| !r.nodes.is_empty());
        }
        self.services.retain(|_, v| !v.is_empty());
        for service in gone {
            self.notify(Action::Delete, service);
        }
    }

    fn notify(&mut self, action: Action, service: Service) {
        self.watchers.retain(|(filter, tx)| {
            if filter.as_deref().is_some_and(|f| f != service.name) {
                return !tx.is_closed();
            }
            // A watcher that does not keep up loses events rather than stalling registration.
            !matches!(
                tx.try_send(Event {
                    action,
                    service: service.clone()
                }),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }

    fn snapshot(record: &Record) -> Service {
        let mut nodes: Vec<Node> = record.nodes.values().map(|(n, _)| n.clone()).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Service {
            nodes,
            ..record.service.clone()
        }
    }
}

impl Registry for MemoryRegistry {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            super::validate(service)?;
            let now = Instant::now();
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.expire(now);
            let record = state
                .services
                .entry(service.name.clone())
                .or_default()
                .entry(service.version.clone())
                .or_insert_with(|| Record {
                    service: Service {
                        nodes: Vec::new(),
                        ..service.clone()
                    },
                    nodes: HashMap::new(),
                });
            record.service = Service {
                nodes: Vec::new(),
                ..service.clone()
            };
            let mut events = Vec::new();
            for node in &service.nodes {
                let expiry = ttl.map(|t| now + t);
                let action = match record.nodes.insert(node.id.clone(), (node.clone(), expiry)) {
                    None => Action::Create,
                    Some(_) => Action::Update,
                };
                events.push((
                    action,
                    Service {
                        nodes: vec![node.clone()],
                        ..record.service.clone()
                    },
                ));
            }
            for (action, s) in events {
                state.notify(action, s);
            }
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut events = Vec::new();
            if let Some(versions) = state.services.get_mut(&service.name) {
                if let Some(record) = versions.get_mut(&service.version) {
                    for node in &service.nodes {
                        if let Some((node, _)) = record.nodes.remove(&node.id) {
                            events.push(Service {
                                nodes: vec![node],
                                ..record.service.clone()
                            });
                        }
                    }
                    if record.nodes.is_empty() {
                        versions.remove(&service.version);
                    }
                }
                if versions.is_empty() {
                    state.services.remove(&service.name);
                }
            }
            for s in events {
                state.notify(Action::Delete, s);
            }
            Ok(())
        })
    }

    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.expire(Instant::now());
            let versions = state
                .services
                .get(name)
                .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
            let mut found: Vec<Service> = versions.values().map(State::snapshot).collect();
            found.sort_by(|a, b| a.version.cmp(&b.version));
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.expire(Instant::now());
            let mut all: Vec<Service> = state
                .services
                .values()
                .flat_map(|v| v.values().map(State::snapshot))
                .collect();
            all.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
            Ok(all)
        })
    }

    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(1024);
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.watchers.push((service.map(str::to_owned), tx));
            Ok(Watcher::new(rx))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, version: &str, node: &str) -> Service {
        Service {
            name: name.into(),
            version: version.into(),
            nodes: vec![Node {
                id: node.into(),
                address: format!("{node}:1"),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn versions_and_nodes_are_kept_apart() {
        let r = MemoryRegistry::new();
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        r.register(&svc("a", "1", "n2"), None).await.unwrap();
        r.register(&svc("a", "2", "n3"), None).await.unwrap();
        let found = r.get_service("a").await.unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].nodes.len(), 2);
        assert_eq!(found[1].nodes[0].id, "n3");
        r.deregister(&svc("a", "1", "n1")).await.unwrap();
        assert_eq!(r.get_service("a").await.unwrap()[0].nodes.len(), 1);
        assert_eq!(r.list_services().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn watch_sees_create_update_delete_and_expiry() {
        let r = MemoryRegistry::new();
        let mut w = r.watch(Some("a")).await.unwrap();
        let mut all = r.watch(None).await.unwrap();
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        r.register(&svc("a", "1", "n1"), Some(Duration::from_millis(1)))
            .await
            .unwrap();
        r.register(&svc("b", "1", "m1"), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            r.get_service("a").await,
            Err(RegistryError::NotFound(_))
        ));
        let actions: Vec<_> = [w.next().await, w.next().await, w.next().await]
            .into_iter()
            .map(|e| e.unwrap().action)
            .collect();
        assert_eq!(actions, [Action::Create, Action::Update, Action::Delete]);
        assert_eq!(all.next().await.unwrap().service.name, "a");
        assert_eq!(all.next().await.unwrap().service.name, "a");
        assert_eq!(all.next().await.unwrap().service.name, "b");
    }

    #[tokio::test]
    async fn invalid_records_are_refused() {
        let r = MemoryRegistry::new();
        assert!(matches!(
            r.register(&Service::default(), None).await,
            Err(RegistryError::Invalid(_))
        ));
        let no_nodes = Service {
            name: "a".into(),
            ..Default::default()
        };
        assert!(matches!(
            r.register(&no_nodes, None).await,
            Err(RegistryError::Invalid(_))
        ));
    }
}
