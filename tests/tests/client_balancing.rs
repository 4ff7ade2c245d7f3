//! Least-outstanding balancing, filters, outlier ejection and idempotent retries, in one
//! process over real sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::registry::{Node, Service as Record};

use micro::selector::{LeastOutstanding, Random, Selector};

/// Answers with its tag after `delay`.
struct Tagged {
    tag: &'static str,
    delay: Duration,
}

#[micro::service(name = "tagged")]
impl Tagged {
    pub async fn tag(&self) -> micro::Result<String> {
        tokio::time::sleep(self.delay).await;
        Ok(self.tag.to_owned())
    }
}

async fn start(
    name: &str,
    tag: &'static str,
    delay_ms: u64,
    version: &str,
) -> micro::RunningService {
    tests::service(name)
        .version(version)
        .metadata("tag", tag)
        .handle(Tagged {
            tag,
            delay: Duration::from_millis(delay_ms),
        })
        .start()
        .await
        .unwrap()
}

/// Calls `total` times from `callers` concurrent tasks; counts replies per tag.
async fn load(client: TaggedClient, callers: usize, total: usize) -> HashMap<String, usize> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut tags = Vec::new();
                for _ in 0..total / callers {
                    tags.push(client.tag().await.unwrap());
                }
                tags
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for t in tasks {
        for tag in t.await.unwrap() {
            *counts.entry(tag).or_insert(0) += 1;
        }
    }
    counts
}

fn client_with(name: &str, selector: impl Selector) -> TaggedClient {
    TaggedClient::with_service(
        tests::client_builder()
            .fast_path(false)
            .selector(selector)
            .build(),
        name,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_sends_fewer_calls_to_a_slow_node_than_random() {
    let name = "balance-p2c";
    let slow = start(name, "slow", 20, "1").await;
    let fast = start(name, "fast", 0, "1").await;

    let random = load(client_with(name, Random), 8, 160).await;
    let p2c = load(client_with(name, LeastOutstanding::default()), 8, 160).await;
    let slow_random = random.get("slow").copied().unwrap_or(0);
    let slow_p2c = p2c.get("slow").copied().unwrap_or(0);
    assert_eq!(random.values().sum::<usize>(), 160);
    assert_eq!(p2c.values().sum::<usize>(), 160);
    assert!(
        slow_p2c * 2 < slow_random,
        "slow node got {slow_p2c} calls with least-outstanding, {slow_random} with random"
    );
    slow.stop().await;
    fast.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_metadata_filters_choose_the_nodes() {
    let name = "balance-filters";
    let v1 = start(name, "one", 0, "1.0.0").await;
    let v2 = start(name, "two", 0, "2.0.0").await;
    let client = tests::client_builder().fast_path(false).build();
    for _ in 0..10 {
        let tag: String = client
            .call::<(), String>(name.into(), "Tagged.Tag", ())
            .version("2.0.0")
            .await
            .unwrap();
        assert_eq!(tag, "two");
    }
    let err = client
        .call::<(), String>(name.into(), "Tagged.Tag", ())
        .version("3.0.0")
        .await
        .unwrap_err();
    assert!(err.detail.contains("no node matching"), "{err}");
    // Node metadata: the registry's node metadata, set by the transport and the service.
    let services = tests::registry().get_service(name).await.unwrap();
    let v1_node = services
        .iter()
        .find(|s| s.version == "1.0.0")
        .unwrap()
        .nodes[0]
        .id
        .clone();
    drop(v1_node);
    v1.stop().await;
    v2.stop().await;
}

/// Records what the selector chose and when, and outcomes, around another selector.
#[derive(Debug, Default)]
struct Recording {
    inner: Random,
    picks: Mutex<Vec<String>>,
    failures: Mutex<Vec<String>>,
}

impl Selector for Recording {
    fn select(&self, service: &str, nodes: &[Node]) -> Option<usize> {
        let i = self.inner.select(service, nodes)?;
        self.picks.lock().unwrap().push(nodes[i].address.clone());
        Some(i)
    }

    fn report(&self, _service: &str, node: &Node, outcome: Result<(), &micro::Error>) {
        if outcome.is_err() {
            self.failures.lock().unwrap().push(node.address.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_costs_one_failed_attempt_then_is_ejected_until_it_expires() {
    let name = "balance-eject";
    let live = start(name, "live", 0, "1").await;
    // A node whose port nobody listens on.
    let dead_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut record: Record = live.record().clone();
    record.nodes[0].id = "dead-node".into();
    record.nodes[0].address = dead_addr.clone();
    tests::registry().register(&record, None).await.unwrap();

    let recording = Arc::new(Recording::default());
    let client = tests::client_builder()
        .fast_path(false)
        .selector(recording.clone())
        .ejection(Duration::from_millis(300))
        .build();
    let call = || client.call::<(), String>(name.into(), "Tagged.Tag", ());
    for _ in 0..40 {
        // Refused connections are retried: no call fails.
        assert_eq!(call().await.unwrap(), "live");
    }
    let picks_of_dead = |r: &Recording| {
        r.picks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| **a == dead_addr)
            .count()
    };
    assert!(
        picks_of_dead(&recording) <= 1,
        "the dead node was tried again while ejected"
    );
    assert!(recording.failures.lock().unwrap().len() <= 1);

    // After the ejection expires the node is probed again, fails, and goes out for longer.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..40 {
        assert_eq!(call().await.unwrap(), "live");
    }
    assert!(picks_of_dead(&recording) <= 2);
    tests::registry().deregister(&record).await.unwrap();
    live.stop().await;
}

/// A "node" that reads a request and then drops the connection: the request may have run.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_calls_are_retried_after_a_lost_connection() {
    let name = "balance-idempotent";
    let live = start(name, "live", 0, "1").await;
    let hole = black_hole().await;
    let mut record: Record = live.record().clone();
    record.nodes[0].id = "black-hole".into();
    record.nodes[0].address = hole.clone();
    tests::registry().register(&record, None).await.unwrap();

    // Round-robin over the two nodes, ejection off, so each client's calls alternate:
    // live, black hole, live, black hole.
    let mut lost = 0;
    for _ in 0..3 {
        let client = tests::client_builder()
            .fast_path(false)
            .selector(micro::selector::RoundRobin::default())
            .ejection(Duration::ZERO)
            .build();
        for _ in 0..2 {
            if let Err(e) = client
                .call::<(), String>(name.into(), "Tagged.Tag", ())
                .await
            {
                assert!(e.is_unavailable(), "{e}");
                lost += 1;
            }
        }
        for _ in 0..2 {
            let safe = client
                .call::<(), String>(name.into(), "Tagged.Tag", ())
                .idempotent()
                .await;
            assert_eq!(safe.unwrap(), "live", "an idempotent call failed");
        }
    }
    assert_eq!(
        lost, 3,
        "each client's plain call to the black hole fails, once"
    );
    tests::registry().deregister(&record).await.unwrap();
    live.stop().await;
}
