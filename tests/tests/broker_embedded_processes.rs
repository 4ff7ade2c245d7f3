//! The embedded broker across real processes: broadcast, queue groups, a dead subscriber.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::broker::{Broker, BrokerError, EmbeddedBroker, Message};
use micro::registry::LocalRegistry;

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

/// A subscriber process whose `got …` lines are collected as they arrive.
struct Sub {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sub {
    fn start(dir: &std::path::Path, topic: &str, queue: Option<&str>) -> Sub {
        let mut cmd = tests::command_without_micro_env(NODE);
        cmd.arg("sub").arg(topic).args(queue);
        let mut child = cmd
            .env("MICRO_REGISTRY_ADDRESS", dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let sub = Sub { child, lines };
        sub.wait_for("subscription", |l| l.iter().any(|x| x == "ready"));
        sub
    }

    fn got(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("got "))
            .count()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while !cond(&self.lines.lock().unwrap()) {
            assert!(start.elapsed() < Duration::from_secs(20), "no {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("micro-broker-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_queue_groups_across_processes() {
    let dir = temp_dir("groups");
    let subs: Vec<Sub> = vec![
        Sub::start(&dir, "orders", None),
        Sub::start(&dir, "orders", None),
        Sub::start(&dir, "orders", Some("billing")),
        Sub::start(&dir, "orders", Some("billing")),
    ];
    let broker = EmbeddedBroker::new(Arc::new(LocalRegistry::at(&dir)));
    for i in 0..20 {
        broker
            .publish("orders", Message::new(format!("order-{i}")))
            .await
            .unwrap();
    }
    // publish returned after every target acknowledged: each handler has run. Their output
    // reaches this process through a pipe and a reader thread, so wait for the lines.
    let got =
        |n: usize| move |l: &[String]| l.iter().filter(|x| x.starts_with("got ")).count() == n;
    subs[0].wait_for("20 orders on the first", got(20));
    subs[1].wait_for("20 orders on the second", got(20));
    let start = Instant::now();
    while subs[2].got() + subs[3].got() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "orders billed: {}",
            subs[2].got() + subs[3].got()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(subs[2].got() + subs[3].got(), 20, "each order billed once");
    drop(subs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_subscriber_is_reported_by_publish_and_its_queue_peers_take_over() {
    let dir = temp_dir("dead");
    let mut alive = Sub::start(&dir, "jobs", None);
    let mut dead = Sub::start(&dir, "jobs", None);
    let peer_a = Sub::start(&dir, "jobs", Some("workers"));
    let mut peer_b = Sub::start(&dir, "jobs", Some("workers"));
    let broker = EmbeddedBroker::new(Arc::new(LocalRegistry::at(&dir)));
    broker
        .publish("jobs", Message::new(&b"first"[..]))
        .await
        .unwrap();

    dead.child.kill().unwrap();
    let _ = dead.child.wait();
    peer_b.child.kill().unwrap();
    let _ = peer_b.child.wait();

    let mut reported = HashMap::new();
    for i in 0..5 {
        match broker
            .publish("jobs", Message::new(format!("job-{i}")))
            .await
        {
            Err(BrokerError::NotDelivered { failed, .. }) => {
                for (target, err) in failed {
                    assert!(err.is_unavailable(), "{target}: {err}");
                    *reported.entry(target).or_insert(0) += 1;
                }
            }
            other => panic!("the dead subscriber went unreported: {other:?}"),
        }
    }
    // Exactly one target failed each time: the dead broadcast subscriber. The queue group
    // lost a member but its other member took every job.
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported.values().sum::<i32>(), 5);
    // The handlers ran; their lines may still be in the pipe.
    alive.wait_for("6 jobs", |l| {
        l.iter().filter(|x| x.starts_with("got ")).count() == 6
    });
    let start = Instant::now();
    while peer_a.got() + peer_b.got() < 6 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "jobs taken: {}",
            peer_a.got() + peer_b.got()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(peer_a.got() + peer_b.got(), 6);
    let _ = alive.child.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
