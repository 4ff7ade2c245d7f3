//! The actor owns the service value: `&mut self` handlers run one at a time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tests::{Counter, counter_client, start_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_callers_lose_no_update() {
    for wire in [false, true] {
        let name = format!("state-8-{wire}");
        let service = start_counter(&name, Counter::new()).await;
        let client = counter_client(&name, wire);
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        client.add(1).await.unwrap();
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.unwrap();
        }
        assert_eq!(client.get().await.unwrap(), 400, "wire = {wire}");
        service.stop().await;
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Each clone gets its own id, so a reply tells which worker served it.
struct Worker {
    id: u64,
}

impl Clone for Worker {
    fn clone(&self) -> Self {
        Worker {
            id: NEXT_ID.fetch_add(1, Ordering::SeqCst),
        }
    }
}

#[micro::service(name = "workers", workers = 4)]
impl Worker {
    pub async fn who(&self) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(self.id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_4_spreads_calls_over_4_actors() {
    let first = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let service = tests::service("workers")
        .handle(Worker { id: first })
        .start()
        .await
        .unwrap();
    assert_eq!(service.stats()[0].workers, 4);
    let client = WorkerClient::new(service.client());
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.who().await.unwrap() })
        })
        .collect();
    let mut ids = HashSet::new();
    for c in calls {
        ids.insert(c.await.unwrap());
    }
    assert_eq!(ids.len(), 4, "served by {ids:?}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_workers_on_the_builder_clones_the_state() {
    let name = "workers-builder";
    let counter = Counter::new();
    let runs = counter.runs.clone();
    let service = tests::service(name)
        .handle_workers(counter, 3)
        .start()
        .await
        .unwrap();
    assert_eq!(service.stats()[0].workers, 3);
    let client = counter_client(name, false);
    for _ in 0..30 {
        client.add(1).await.unwrap();
    }
    // Each worker counts on its own copy; the shared `runs` counter sees them all.
    assert_eq!(runs.load(Ordering::SeqCst), 30);
    service.stop().await;
}
