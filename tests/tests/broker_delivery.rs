//! Memory and embedded brokers in one process: broadcast, queue groups, failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use micro::broker::{
    Broker, BrokerError, EmbeddedBroker, MemoryBroker, Message, SubscribeOptions, handler,
};

type Counts = Arc<Mutex<HashMap<&'static str, usize>>>;

async fn subscribe(
    broker: &dyn Broker,
    topic: &str,
    queue: Option<&str>,
    name: &'static str,
    counts: &Counts,
) -> micro::broker::Subscription {
    let counts = counts.clone();
    let opts = match queue {
        Some(q) => SubscribeOptions::default().queue(q),
        None => SubscribeOptions::default(),
    };
    broker
        .subscribe(
            topic,
            opts,
            handler(move |_m: Message| {
                *counts.lock().unwrap().entry(name).or_default() += 1;
                async { Ok(()) }
            }),
        )
        .await
        .unwrap()
}

fn brokers() -> Vec<Arc<dyn Broker>> {
    vec![
        Arc::new(MemoryBroker::new()),
        Arc::new(EmbeddedBroker::new(Arc::new(
            micro::registry::MemoryRegistry::new(),
        ))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_queue_group_counts_are_exact() {
    for broker in brokers() {
        let counts: Counts = Arc::default();
        let _subs = [
            subscribe(&*broker, "orders", None, "audit-1", &counts).await,
            subscribe(&*broker, "orders", None, "audit-2", &counts).await,
            subscribe(&*broker, "orders", Some("billing"), "billing-1", &counts).await,
            subscribe(&*broker, "orders", Some("billing"), "billing-2", &counts).await,
            subscribe(&*broker, "orders", Some("billing"), "billing-3", &counts).await,
            subscribe(&*broker, "other", None, "other", &counts).await,
        ];
        for i in 0..30 {
            broker
                .publish("orders", Message::new(format!("order {i}")))
                .await
                .unwrap();
        }
        let counts = counts.lock().unwrap().clone();
        assert_eq!(counts["audit-1"], 30, "{}: {counts:?}", broker.name());
        assert_eq!(counts["audit-2"], 30, "{}: {counts:?}", broker.name());
        let billing: usize = ["billing-1", "billing-2", "billing-3"]
            .iter()
            .map(|b| counts.get(b).copied().unwrap_or(0))
            .sum();
        assert_eq!(
            billing,
            30,
            "{}: each order billed once: {counts:?}",
            broker.name()
        );
        assert!(!counts.contains_key("other"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_fails_the_publish_naming_it() {
    for broker in brokers() {
        let ok = Arc::new(AtomicUsize::new(0));
        let seen = ok.clone();
        let _good = broker
            .subscribe(
                "jobs",
                SubscribeOptions::default(),
                handler(move |_m: Message| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async { Ok(()) }
                }),
            )
            .await
            .unwrap();
        let _bad = broker
            .subscribe(
                "jobs",
                SubscribeOptions::default(),
                handler(|_m: Message| async { Err(micro::Error::internal("worker", "disk full")) }),
            )
            .await
            .unwrap();
        let err = broker
            .publish("jobs", Message::new(&b"x"[..]))
            .await
            .unwrap_err();
        let BrokerError::NotDelivered { topic, failed } = &err else {
            panic!("{err}")
        };
        assert_eq!(topic, "jobs");
        assert_eq!(failed.len(), 1, "{err}");
        assert_eq!(failed[0].1.detail, "disk full");
        assert_eq!(
            ok.load(Ordering::SeqCst),
            1,
            "the healthy subscriber still got it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_subscription_ends_delivery_and_no_subscriber_is_fine() {
    for broker in brokers() {
        let counts: Counts = Arc::default();
        let sub = subscribe(&*broker, "t", None, "a", &counts).await;
        broker.publish("t", Message::new(&b"1"[..])).await.unwrap();
        sub.unsubscribe().await;
        broker.publish("t", Message::new(&b"2"[..])).await.unwrap();
        assert_eq!(counts.lock().unwrap()["a"], 1, "{}", broker.name());
        assert!(matches!(
            broker.publish("", Message::default()).await,
            Err(BrokerError::Invalid(_))
        ));
    }
}
