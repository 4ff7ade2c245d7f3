//! `#[micro::subscribe]` end to end: events published with `Client::publish` reach
//! subscriber methods in their service's actor and free subscriber functions, through the
//! memory broker and the embedded one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use micro::broker::{Broker, EmbeddedBroker, MemoryBroker};
use micro::prelude::*;

const EVENTS: u64 = 50;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Created {
    id: u64,
}

/// Which broker a case runs on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Embedded,
}

const KINDS: [Kind; 2] = [Kind::Memory, Kind::Embedded];

/// The broker a service subscribes through, and the one a client publishes through: the
/// same memory broker, or two embedded brokers on the test registry, so that deliveries
/// cross the network as they would between processes.
fn brokers(kind: Kind) -> (Arc<dyn Broker>, Arc<dyn Broker>) {
    match kind {
        Kind::Memory => {
            let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
            (broker.clone(), broker)
        }
        Kind::Embedded => (embedded(), embedded()),
    }
}

fn embedded() -> Arc<dyn Broker> {
    Arc::new(EmbeddedBroker::new(tests::registry()))
}

fn publisher(broker: Arc<dyn Broker>) -> Client {
    tests::client_builder().broker(broker).build()
}

/// Counts events in plain fields: the actor runs one handler at a time, so no lock.
#[derive(Default)]
struct Tally {
    seen: u64,
    ids: u64,
}

#[micro::service(name = "pubsub.tally")]
impl Tally {
    #[micro::subscribe(topic = "pubsub.tally.created")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let before = self.seen;
        // A lost update would show if two events ever ran at once.
        tokio::task::yield_now().await;
        self.seen = before + 1;
        self.ids += event.id;
        Ok(())
    }

    /// Events seen, and the sum of their ids.
    pub async fn seen(&self) -> micro::Result<(u64, u64)> {
        Ok((self.seen, self.ids))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mut_self_subscriber_counts_every_event_exactly() {
    for kind in KINDS {
        let (serving, publishing) = brokers(kind);
        let service = tests::service("pubsub.tally")
            .broker(serving)
            .handle(Tally::default())
            .start()
            .await
            .unwrap();
        let client = publisher(publishing);
        let publishes = (1..=EVENTS).map(|id| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .publish("pubsub.tally.created", &Created { id })
                    .await
            })
        });
        for publish in futures_join(publishes).await {
            publish.unwrap();
        }
        let tally = TallyClient::new(service.client());
        assert_eq!(
            tally.seen().await.unwrap(),
            (EVENTS, EVENTS * (EVENTS + 1) / 2),
            "{kind:?}"
        );
        service.stop().await;
    }
}

/// Refuses events with an odd id.
#[derive(Default)]
struct Picky {
    accepted: u64,
}

#[micro::service(name = "pubsub.picky")]
impl Picky {
    #[micro::subscribe(topic = "pubsub.picky.created")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        if event.id % 2 == 1 {
            return Err(Error::bad_request(
                "pubsub.picky",
                format_args!("odd id {}", event.id),
            ));
        }
        self.accepted += 1;
        Ok(())
    }

    pub async fn accepted(&self) -> micro::Result<u64> {
        Ok(self.accepted)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_error_fails_the_publish() {
    for kind in KINDS {
        let (serving, publishing) = brokers(kind);
        let service = tests::service("pubsub.picky")
            .broker(serving)
            .handle(Picky::default())
            .start()
            .await
            .unwrap();
        let client = publisher(publishing);

        client
            .publish("pubsub.picky.created", &Created { id: 2 })
            .await
            .unwrap();
        let err = client
            .publish("pubsub.picky.created", &Created { id: 3 })
            .await
            .unwrap_err();
        // The broker's `NotDelivered`, as a `micro::Error`: the topic, the target the broker
        // knows, and the subscriber by name with its own words.
        assert_eq!(err.id, "micro.broker", "{kind:?}: {err}");
        assert!(
            err.detail
                .starts_with("pubsub.picky.created: not delivered to "),
            "{kind:?}: {err}"
        );
        assert!(
            err.detail.contains("(Picky.OnCreated: odd id 3)"),
            "{kind:?}: {err}"
        );

        assert_eq!(
            PickyClient::new(service.client()).accepted().await.unwrap(),
            1
        );
        service.stop().await;
    }
}

/// Panics on event 0, and counts the others.
#[derive(Default)]
struct Fragile {
    seen: u64,
}

#[micro::service(name = "pubsub.fragile")]
impl Fragile {
    #[micro::subscribe(topic = "pubsub.fragile.created")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        assert_ne!(event.id, 0, "event 0 on purpose");
        self.seen += 1;
        Ok(())
    }

    pub async fn seen(&self) -> micro::Result<u64> {
        Ok(self.seen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_subscriber_is_reported_and_the_service_serves_on() {
    for kind in KINDS {
        let (serving, publishing) = brokers(kind);
        let service = tests::service("pubsub.fragile")
            .broker(serving)
            .handle(Fragile::default())
            .start()
            .await
            .unwrap();
        let client = publisher(publishing);

        let err = client
            .publish("pubsub.fragile.created", &Created { id: 0 })
            .await
            .unwrap_err();
        assert!(
            err.detail.contains("Fragile.OnCreated panicked") && err.detail.contains("event 0"),
            "{kind:?}: {err}"
        );

        // Still serving, both events and calls.
        client
            .publish("pubsub.fragile.created", &Created { id: 1 })
            .await
            .unwrap();
        assert_eq!(
            FragileClient::new(service.client()).seen().await.unwrap(),
            1
        );
        let stats = &service.stats()[0];
        assert_eq!((stats.handler.as_str(), stats.panics), ("Fragile", 1));
        service.stop().await;
    }
}

/// One of several instances sharing the work of a queue group.
#[derive(Default)]
struct Worker {
    handled: u64,
}

#[micro::service(name = "pubsub.workers")]
impl Worker {
    #[micro::subscribe(topic = "pubsub.workers.jobs", queue = "workers")]
    async fn on_job(&mut self, _job: Created) -> micro::Result<()> {
        self.handled += 1;
        Ok(())
    }

    pub async fn handled(&self) -> micro::Result<u64> {
        Ok(self.handled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_receives_each_event_once_across_instances() {
    for kind in KINDS {
        let (serving, publishing) = brokers(kind);
        let mut instances = Vec::new();
        for _ in 0..2 {
            // Embedded: each instance its own broker, as separate processes would have.
            let broker = match kind {
                Kind::Memory => serving.clone(),
                Kind::Embedded => embedded(),
            };
            instances.push(
                tests::service("pubsub.workers")
                    .broker(broker)
                    .handle(Worker::default())
                    .start()
                    .await
                    .unwrap(),
            );
        }
        let client = publisher(publishing);
        for id in 0..EVENTS {
            client
                .publish("pubsub.workers.jobs", &Created { id })
                .await
                .unwrap();
        }
        let workers = WorkerClient::new(tests::client());
        let mut handled = Vec::new();
        for instance in &instances {
            handled.push(workers.handled().node(instance.address()).await.unwrap());
        }
        assert_eq!(handled.iter().sum::<u64>(), EVENTS, "{kind:?}: {handled:?}");
        if let Kind::Memory = kind {
            // The memory broker takes turns.
            assert_eq!(handled, [EVENTS / 2, EVENTS / 2]);
        }
        for instance in instances {
            instance.stop().await;
        }
    }
}

static CREATED: AtomicU64 = AtomicU64::new(0);

/// Counts consignments created, without a service type of its own.
#[micro::subscribe(topic = "pubsub.free.created", queue = "counter")]
async fn count_created(event: Created) -> micro::Result<()> {
    CREATED.fetch_add(event.id, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_function_subscriber_receives_events() {
    for kind in KINDS {
        let (serving, publishing) = brokers(kind);
        let service = tests::service("pubsub.free")
            .broker(serving)
            .handle(count_created)
            .start()
            .await
            .unwrap();
        let client = publisher(publishing);
        let before = CREATED.load(Ordering::SeqCst);
        for id in 1..=EVENTS {
            client
                .publish("pubsub.free.created", &Created { id })
                .await
                .unwrap();
        }
        assert_eq!(
            CREATED.load(Ordering::SeqCst) - before,
            EVENTS * (EVENTS + 1) / 2,
            "{kind:?}"
        );
        assert_eq!(service.record().endpoints[0].name, "CountCreated.Handle");
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_marks_subscriber_endpoints() {
    let service = tests::service("pubsub.record")
        .broker(Arc::new(MemoryBroker::new()))
        .handle(Worker::default())
        .handle(count_created)
        .start()
        .await
        .unwrap();
    let endpoint = |name: &str| {
        service
            .record()
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no endpoint {name}"))
            .clone()
    };

    let job = endpoint("Worker.OnJob");
    assert_eq!(job.metadata["subscriber"], "true");
    assert_eq!(job.metadata["topic"], "pubsub.workers.jobs");
    assert_eq!(job.metadata["queue"], "workers");
    let free = endpoint("CountCreated.Handle");
    assert_eq!(free.metadata["subscriber"], "true");
    assert_eq!(free.metadata["topic"], "pubsub.free.created");
    assert_eq!(free.metadata["queue"], "counter");
    let call = endpoint("Worker.Handled");
    assert!(!call.metadata.contains_key("subscriber"), "{call:?}");

    // The registry itself holds the same record.
    let records = tests::registry()
        .get_service("pubsub.record")
        .await
        .unwrap();
    let registered = &records[0].endpoints;
    assert!(
        registered
            .iter()
            .any(|e| e.name == "Worker.OnJob" && e.metadata["topic"] == "pubsub.workers.jobs")
    );
    service.stop().await;
}

/// Awaits every spawned task, in order.
async fn futures_join<T>(tasks: impl IntoIterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task panicked"));
    }
    out
}
