//! Failover across real processes: three servers under steady load, one killed with
//! SIGKILL, then started again.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::registry::{LocalRegistry, Node, Registry};
use micro::selector::{Random, Selector};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(dir: &std::path::Path, name: &str) -> Server {
    let mut cmd = tests::command_without_micro_env(env!("CARGO_BIN_EXE_test-node"));
    cmd.args(["serve", name]);
    Server(
        cmd.env("MICRO_REGISTRY_ADDRESS", dir)
            .env("MICRO_REGISTER_TTL", "3s")
            .env("MICRO_REGISTER_INTERVAL", "1s")
            .env("RUST_LOG", "micro=warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Every pick with its time, and the time of each node's first failure.
#[derive(Debug, Default)]
struct Recording {
    inner: Random,
    picks: Mutex<Vec<(Instant, String)>>,
    first_failure: Mutex<HashMap<String, Instant>>,
}

impl Selector for Recording {
    fn select(&self, service: &str, nodes: &[Node]) -> Option<usize> {
        let i = self.inner.select(service, nodes)?;
        self.picks
            .lock()
            .unwrap()
            .push((Instant::now(), nodes[i].id.clone()));
        Some(i)
    }

    fn report(&self, _service: &str, node: &Node, outcome: Result<(), &micro::Error>) {
        if outcome.is_err() {
            self.first_failure
                .lock()
                .unwrap()
                .entry(node.id.clone())
                .or_insert_with(Instant::now);
        }
    }
}

async fn node_count(registry: &dyn Registry, name: &str) -> usize {
    registry
        .get_service(name)
        .await
        .map(|s| s.iter().map(|s| s.nodes.len()).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_costs_no_failed_call_and_a_restarted_one_takes_traffic_again() {
    let dir = std::env::temp_dir().join(format!("micro-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "failover";
    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::at(&dir));
    let mut servers: Vec<Server> = (0..3).map(|_| server(&dir, name)).collect();
    let start = Instant::now();
    while node_count(&*registry, name).await < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "servers never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let recording = Arc::new(Recording::default());
    let client = micro::Client::builder()
        .registry(registry.clone())
        .fast_path(false)
        .selector(recording.clone())
        .retries(3)
        .build();
    let stop = Arc::new(AtomicBool::new(false));
    let pids = Arc::new(Mutex::new(Vec::<(Instant, u32)>::new()));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, pids) = (client.clone(), stop.clone(), pids.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match client
                        .call::<u64, u32>(name.into(), "Work.Work", 2)
                        .idempotent()
                        .await
                    {
                        Ok(pid) => pids.lock().unwrap().push((Instant::now(), pid)),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = servers.remove(0);
    drop(victim); // SIGKILL
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let restarted = server(&dir, name);
    let restarted_pid = restarted.0.id();
    let back = Instant::now();
    // Registration interval 1 s, client cache 1 s: traffic should reach it well within 3 s.
    while !pids
        .lock()
        .unwrap()
        .iter()
        .any(|(_, p)| *p == restarted_pid)
    {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the restarted node took no traffic"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut failed = Vec::new();
    for c in callers {
        failed.extend(c.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );

    // The dead node: once it failed, it was never picked again.
    let first_failures = recording.first_failure.lock().unwrap().clone();
    assert_eq!(
        first_failures.len(),
        1,
        "only the victim failed: {first_failures:?}"
    );
    let (dead_id, failed_at) = first_failures.into_iter().next().unwrap();
    let later_picks = recording
        .picks
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, id)| *id == dead_id && *at > failed_at)
        .count();
    assert_eq!(
        later_picks, 0,
        "the dead node got new attempts after its first failure"
    );
    drop(servers);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}
