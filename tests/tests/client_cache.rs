//! The client's registry cache: concurrent lookups coalesce, the watch keeps it current.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use micro::BoxFuture;
use micro::registry::{MemoryRegistry, Registry, RegistryError, Service, Watcher};

/// A memory registry that counts `get_service` calls.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryRegistry,
    lookups: AtomicUsize,
    /// Watches that are open: events from now on reach them.
    watching: AtomicUsize,
}

impl Registry for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn register<'a>(
        &'a self,
        s: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.register(s, ttl)
    }
    fn deregister<'a>(&'a self, s: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.deregister(s)
    }
    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            // Slow enough that concurrent callers overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.get_service(name).await
        })
    }
    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        self.inner.list_services()
    }
    fn watch<'a>(&'a self, s: Option<&'a str>) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let watcher = self.inner.watch(s).await;
            self.watching.fetch_add(1, Ordering::SeqCst);
            watcher
        })
    }
}

struct Pid(u32);

#[micro::service(name = "cached")]
impl Pid {
    pub async fn who(&self) -> micro::Result<u32> {
        Ok(self.0)
    }
}

async fn start(registry: &Arc<Counting>, id: u32) -> micro::RunningService {
    micro::Service::new("cached")
        .options(micro::config::Options::default())
        .registry(registry.clone())
        .drain(Duration::ZERO)
        .handle(Pid(id))
        .start()
        .await
        .unwrap()
}

fn client(registry: &Arc<Counting>) -> PidClient {
    PidClient::new(
        micro::Client::builder()
            .registry(registry.clone())
            .fast_path(false)
            .selector(micro::selector::RoundRobin::default())
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_of_one_service_are_one_registry_read() {
    let registry = Arc::new(Counting::default());
    let service = start(&registry, 1).await;
    let client = client(&registry);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.who().await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), 1);
    }
    assert_eq!(registry.lookups.load(Ordering::SeqCst), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_appears_later_gets_calls_through_the_watch_without_a_new_lookup() {
    let registry = Arc::new(Counting::default());
    let first = start(&registry, 1).await;
    let client = client(&registry);
    assert_eq!(client.who().await.unwrap(), 1);
    // The client's watch is open before the second node registers.
    tests::wait_until("the client's watch", Duration::from_secs(10), || {
        registry.watching.load(Ordering::SeqCst) > 0
    })
    .await;

    let second = start(&registry, 2).await;
    let begin = Instant::now();
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        seen.insert(client.who().await.unwrap());
        assert!(
            begin.elapsed() < Duration::from_secs(5),
            "the new node never got a call"
        );
    }
    assert_eq!(
        registry.lookups.load(Ordering::SeqCst),
        1,
        "the cache was refreshed by reading, not by the watch"
    );
    second.stop().await;
    first.stop().await;
}
