//! The NATS broker against a real `nats-server`: core counts, JetStream acknowledgement,
//! redelivery, dead letters, and a subscriber killed mid-stream.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::broker::{Broker, Message, NatsBroker, SubscribeOptions, handler};
use tests::NatsServer;

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_broadcast_and_queue_group_counts_are_exact() {
    let server = NatsServer::start();
    let broker = NatsBroker::new(server.url.as_str());
    let counts: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
    let mut subs = Vec::new();
    for (name, queue) in [
        ("audit-1", None),
        ("audit-2", None),
        ("billing-1", Some("billing")),
        ("billing-2", Some("billing")),
        ("billing-3", Some("billing")),
    ] {
        let counts = counts.clone();
        let opts = match queue {
            Some(q) => SubscribeOptions::default().queue(q),
            None => SubscribeOptions::default(),
        };
        subs.push(
            broker
                .subscribe(
                    "orders",
                    opts,
                    handler(move |_m: Message| {
                        *counts.lock().unwrap().entry(name).or_default() += 1;
                        async { Ok(()) }
                    }),
                )
                .await
                .unwrap(),
        );
    }
    for i in 0..30 {
        broker
            .publish(
                "orders",
                Message::new(format!("order {i}")).header("k", "v"),
            )
            .await
            .unwrap();
    }
    let total = |c: &HashMap<&str, usize>| c.values().sum::<usize>();
    eventually("90 deliveries", || total(&counts.lock().unwrap()) == 90).await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = counts.lock().unwrap().clone();
    assert_eq!(total(&counts), 90, "{counts:?}");
    assert_eq!((counts["audit-1"], counts["audit-2"]), (30, 30));
    let billed: usize = ["billing-1", "billing-2", "billing-3"]
        .iter()
        .map(|b| counts.get(b).copied().unwrap_or(0))
        .sum();
    assert_eq!(billed, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_redelivers_a_failing_handler_until_it_succeeds_and_counts_once() {
    let server = NatsServer::start();
    let broker = NatsBroker::new(server.url.as_str()).jetstream(true);
    let attempts = Arc::new(AtomicUsize::new(0));
    let processed = Arc::new(AtomicUsize::new(0));
    let (a, p) = (attempts.clone(), processed.clone());
    let _sub = broker
        .subscribe(
            "payments",
            SubscribeOptions::default().durable("ledger"),
            handler(move |_m: Message| {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                let p = p.clone();
                async move {
                    if n <= 2 {
                        return Err(micro::Error::internal(
                            "ledger",
                            format!("attempt {n} fails"),
                        ));
                    }
                    p.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    broker
        .publish("payments", Message::new(&b"pay 10"[..]))
        .await
        .unwrap();
    eventually("the third delivery", || {
        processed.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "delivered three times");
    assert_eq!(processed.load(Ordering::SeqCst), 1, "counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_moves_a_message_to_the_dead_letter_subject_after_max_deliver() {
    let server = NatsServer::start();
    let broker = NatsBroker::new(server.url.as_str()).jetstream(true);
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let _sub = broker
        .subscribe(
            "mail",
            SubscribeOptions::default().durable("sender").max_deliver(3),
            handler(move |_m: Message| {
                a.fetch_add(1, Ordering::SeqCst);
                async { Err(micro::Error::internal("sender", "smtp down")) }
            }),
        )
        .await
        .unwrap();
    let dead = Arc::new(Mutex::new(Vec::new()));
    let sink = dead.clone();
    let _dlq = broker
        .subscribe(
            "mail.dead",
            SubscribeOptions::default().durable("dlq"),
            handler(move |m: Message| {
                sink.lock().unwrap().push(m);
                async { Ok(()) }
            }),
        )
        .await
        .unwrap();
    broker
        .publish("mail", Message::new(&b"hello"[..]))
        .await
        .unwrap();
    eventually("a dead letter", || !dead.lock().unwrap().is_empty()).await;
    let dead = dead.lock().unwrap()[0].clone();
    assert_eq!(&dead.body[..], b"hello");
    assert_eq!(dead.headers["Micro-Topic"], "mail");
    assert_eq!(dead.headers["Micro-Error"], "smtp down");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

/// A JetStream subscriber process; its `got …` lines are collected.
struct JSub {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl JSub {
    fn start(url: &str, lines: &Arc<Mutex<Vec<String>>>) -> JSub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_test-node"))
            .args(["jsub", url, "stream.events", "processor"])
            .env("RUST_LOG", "micro=warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        let ready = Arc::new(AtomicUsize::new(0));
        let seen = ready.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    seen.store(1, Ordering::SeqCst);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let start = Instant::now();
        while ready.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "subscriber never ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        JSub {
            child,
            lines: lines.clone(),
        }
    }

    fn processed(&self) -> HashSet<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("got ").map(str::to_owned))
            .collect()
    }
}

impl Drop for JSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_killed_mid_stream_and_restarted_loses_nothing() {
    let server = NatsServer::start();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut first = JSub::start(&server.url, &lines);
    let broker = NatsBroker::new(server.url.as_str()).jetstream(true);
    for i in 0..100 {
        broker
            .publish("stream.events", Message::new(format!("event-{i}")))
            .await
            .unwrap();
    }
    eventually("some progress", || first.processed().len() >= 20).await;
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let before = first.processed().len();
    assert!(before < 100, "the kill came too late to test anything");

    let second = JSub::start(&server.url, &lines);
    eventually("every event processed", || second.processed().len() == 100).await;
    let all = second.processed();
    for i in 0..100 {
        assert!(all.contains(&format!("event-{i}")), "event-{i} was lost");
    }
}
