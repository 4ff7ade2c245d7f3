//! Turns: `&self` handlers of one actor run together, `&mut self` handlers alone, in arrival
//! order; a panic in a read leaves the others be, and a panicking write can rebuild the state.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::RunningService;
use tests::{client, service, wait_until, wire_client};
use tokio::sync::{Barrier, Semaphore, watch};

/// What the handlers saw, shared with the test.
#[derive(Clone)]
struct Probe {
    /// `start r1`, `end w2`…, in the order the handlers reached them.
    log: Arc<Mutex<Vec<String>>>,
    /// Handlers started so far, as an event the test can wait on.
    started: Arc<watch::Sender<u64>>,
    /// Reads wait here until the test lets them through.
    gate: Arc<Semaphore>,
    /// Meeting point for `meet`.
    barrier: Arc<Barrier>,
    /// Read futures dropped before they finished.
    dropped: Arc<watch::Sender<u64>>,
}

impl Probe {
    fn new(meeting: usize) -> Self {
        Probe {
            log: Arc::default(),
            started: Arc::new(watch::channel(0).0),
            gate: Arc::new(Semaphore::new(0)),
            barrier: Arc::new(Barrier::new(meeting)),
            dropped: Arc::new(watch::channel(0).0),
        }
    }

    fn record(&self, event: String) {
        self.log.lock().unwrap().push(event);
    }

    fn start(&self, event: String) {
        self.record(event);
        self.started.send_modify(|n| *n += 1);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn started(&self, n: u64) {
        let mut rx = self.started.subscribe();
        bounded(rx.wait_for(|seen| *seen >= n)).await.unwrap();
    }
}

/// Counts a read future dropped before it finished.
struct OnDrop(Arc<watch::Sender<u64>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

struct Turns {
    n: u64,
    probe: Probe,
}

#[micro::service(name = "turns")]
impl Turns {
    /// Waits until every caller of `meet` is inside the handler, then says how many started.
    pub async fn meet(&self) -> micro::Result<u64> {
        self.probe.started.send_modify(|n| *n += 1);
        self.probe.barrier.wait().await;
        Ok(*self.probe.started.borrow())
    }

    /// Logs its start and end around a wait at the gate.
    pub async fn read(&self, tag: u64) -> micro::Result<u64> {
        self.probe.start(format!("start r{tag}"));
        self.probe.gate.acquire().await.unwrap().forget();
        self.probe.record(format!("end r{tag}"));
        Ok(self.n)
    }

    /// Logs its start and end around a yield, in which another turn could sneak in.
    pub async fn write(&mut self, tag: u64) -> micro::Result<u64> {
        self.probe.start(format!("start w{tag}"));
        tokio::task::yield_now().await;
        self.n += 1;
        self.probe.record(format!("end w{tag}"));
        Ok(self.n)
    }

    /// Adds `by`, yielding between the read and the write of the count.
    pub async fn add(&mut self, by: u64) -> micro::Result<u64> {
        let before = self.n;
        tokio::task::yield_now().await;
        self.n = before + by;
        Ok(self.n)
    }

    pub async fn get(&self) -> micro::Result<u64> {
        Ok(self.n)
    }

    /// Meets the other callers, then panics if `tag` is 0.
    pub async fn meet_or_panic(&self, tag: u64) -> micro::Result<u64> {
        self.probe.barrier.wait().await;
        assert_ne!(tag, 0, "read panics on purpose");
        Ok(tag)
    }

    /// Waits at the gate; counts itself dropped if it never gets through.
    pub async fn hold(&self) -> micro::Result<()> {
        let dropped = OnDrop(self.probe.dropped.clone());
        self.probe.start("start hold".to_owned());
        self.probe.gate.acquire().await.unwrap().forget();
        std::mem::forget(dropped);
        Ok(())
    }
}

/// A bound on a wait that only a broken actor makes long: it fails the test instead of hanging.
async fn bounded<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the actor never got there")
}

async fn start(name: &str, probe: &Probe, reads: Option<usize>) -> RunningService {
    let mut svc = service(name);
    if let Some(limit) = reads {
        svc = svc.reads(limit);
    }
    svc.handle(Turns {
        n: 0,
        probe: probe.clone(),
    })
    .start()
    .await
    .expect("service starts")
}

fn turns(name: &str, wire: bool) -> TurnsClient {
    let client = if wire { wire_client() } else { client() };
    TurnsClient::with_service(client, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_reads_all_start_before_any_finishes() {
    for wire in [false, true] {
        let name = format!("turns-64-{wire}");
        let probe = Probe::new(64);
        let service = start(&name, &probe, None).await;
        let client = turns(&name, wire);
        let calls: Vec<_> = (0..64)
            .map(|_| tokio::spawn(client.meet().into_future()))
            .collect();
        for call in calls {
            // Past the barrier, so all 64 had started.
            assert_eq!(bounded(call).await.unwrap().unwrap(), 64, "wire = {wire}");
        }
        let stats = &service.stats()[0];
        assert_eq!(
            (stats.reads_peak, stats.reads, stats.read_limit),
            (64, 0, micro::DEFAULT_READS)
        );
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_the_reads_before_it_and_holds_back_the_reads_after_it() {
    let probe = Probe::new(1);
    // At its limit of three reads the actor leaves the write in the mailbox, where the test
    // can see it arrive.
    let service = start("turns-order", &probe, Some(3)).await;
    let client = turns("turns-order", false);
    let queued = || service.stats()[0].queued;
    let limit = Duration::from_secs(30);

    let mut calls: Vec<_> = (1..=3)
        .map(|tag| tokio::spawn(client.read(tag).into_future()))
        .collect();
    probe.started(3).await;
    let write = tokio::spawn(client.write(1).into_future());
    wait_until("the write queued", limit, || queued() == 1).await;

    // One read finishes: the actor takes the write, and no request after it.
    probe.gate.add_permits(1);
    wait_until("the write taken", limit, || queued() == 0).await;
    calls.push(tokio::spawn(client.read(4).into_future()));
    wait_until("the read after the write queued", limit, || queued() == 1).await;
    let log = probe.log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(!log.contains(&"start w1".to_owned()), "{log:?}");

    probe.gate.add_permits(3);
    assert_eq!(bounded(write).await.unwrap().unwrap(), 1);
    for call in calls {
        bounded(call).await.unwrap().unwrap();
    }
    let log = probe.log();
    let at = |event: &str| log.iter().position(|e| e == event).expect(event);
    for r in ["end r1", "end r2", "end r3"] {
        assert!(at(r) < at("start w1"), "{log:?}");
    }
    assert_eq!(at("start w1") + 1, at("end w1"), "{log:?}");
    assert!(at("end w1") < at("start r4"), "{log:?}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_among_readers_leave_an_exact_count() {
    for wire in [false, true] {
        let name = format!("turns-8-{wire}");
        let service = start(&name, &Probe::new(1), None).await;
        let client = turns(&name, wire);
        let writers = (0..8).map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    client.add(1).await.unwrap();
                }
            })
        });
        let readers = (0..8).map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert!(client.get().await.unwrap() <= 400);
                }
            })
        });
        let all: Vec<_> = writers.chain(readers).collect();
        for task in all {
            bounded(task).await.unwrap();
        }
        assert_eq!(client.get().await.unwrap(), 400, "wire = {wire}");
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_read_leaves_the_other_reads_answered() {
    let probe = Probe::new(8);
    let service = start("turns-read-panic", &probe, None).await;
    let client = turns("turns-read-panic", true);
    let calls: Vec<_> = (0..8)
        .map(|tag| tokio::spawn(client.meet_or_panic(tag).into_future()))
        .collect();
    let mut answered = Vec::new();
    for (tag, call) in calls.into_iter().enumerate() {
        match bounded(call).await.unwrap() {
            Ok(n) => answered.push(n),
            Err(err) => {
                assert_eq!((tag, err.code), (0, 500), "{err}");
                assert!(err.detail.contains("read panics on purpose"), "{err}");
            }
        }
    }
    assert_eq!(answered, (1..8).collect::<Vec<u64>>());
    let stats = &service.stats()[0];
    assert_eq!((stats.panics, stats.restarts, stats.reads), (1, 0, 0));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_local_caller_drops_its_read() {
    let probe = Probe::new(1);
    let service = start("turns-drop", &probe, None).await;
    let client = turns("turns-drop", false);
    let call = tokio::spawn(client.hold().into_future());
    probe.started(1).await;
    call.abort();
    let mut dropped = probe.dropped.subscribe();
    bounded(dropped.wait_for(|n| *n == 1)).await.unwrap();
    wait_until(
        "the read no longer counted",
        Duration::from_secs(30),
        || service.stats()[0].reads == 0,
    )
    .await;
    // The actor serves on.
    assert_eq!(client.get().await.unwrap(), 0);
    service.stop().await;
}

/// Rebuilt from `Default` after a write panics.
#[derive(Default)]
struct Fragile {
    n: u64,
}

#[micro::service(name = "fragile", on_panic = "rebuild", reads = 8)]
impl Fragile {
    pub async fn add(&mut self, by: u64) -> micro::Result<u64> {
        self.n += by;
        Ok(self.n)
    }

    /// Half-updates the state, then panics.
    pub async fn boom(&mut self) -> micro::Result<()> {
        self.n += 1000;
        panic!("write panics on purpose");
    }

    pub async fn get(&self) -> micro::Result<u64> {
        Ok(self.n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_policy_gives_a_fresh_state_after_a_panic() {
    for wire in [false, true] {
        let name = format!("fragile-{wire}");
        let service = service(&name)
            .handle(Fragile::default())
            .start()
            .await
            .unwrap();
        let client =
            FragileClient::with_service(if wire { wire_client() } else { client() }, name.as_str());
        assert_eq!(client.add(5).await.unwrap(), 5);
        let err = client.boom().await.unwrap_err();
        assert_eq!(err.code, 500, "{err}");
        assert_eq!(client.get().await.unwrap(), 0, "wire = {wire}");
        assert_eq!(client.add(1).await.unwrap(), 1);
        let stats = &service.stats()[0];
        assert_eq!((stats.panics, stats.restarts, stats.read_limit), (1, 1, 8));
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_rebuilds_the_state_after_a_panic() {
    let made = Arc::new(AtomicU64::new(0));
    let counted = made.clone();
    let service = service("fragile-factory")
        .handle_factory(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Fragile { n: 100 }
        })
        .start()
        .await
        .unwrap();
    let client = FragileClient::with_service(client(), "fragile-factory");
    assert_eq!(client.add(1).await.unwrap(), 101);
    client.boom().await.unwrap_err();
    assert_eq!(client.get().await.unwrap(), 100);
    assert_eq!(made.load(Ordering::SeqCst), 2);
    assert_eq!(service.stats()[0].restarts, 1);
    service.stop().await;
}

/// `workers = N` keeps working: each worker its own clone, each with its own read turns.
#[derive(Clone)]
struct Pair {
    barrier: Arc<Barrier>,
}

#[micro::service(name = "pair", workers = 2, reads = 4)]
impl Pair {
    pub async fn meet(&self) -> micro::Result<()> {
        self.barrier.wait().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_runs_its_own_reads() {
    // Two workers of four reads each hold eight callers at once.
    let service = service("pair")
        .handle(Pair {
            barrier: Arc::new(Barrier::new(8)),
        })
        .start()
        .await
        .unwrap();
    let client = PairClient::with_service(client(), "pair");
    let calls: Vec<_> = (0..8)
        .map(|_| tokio::spawn(client.meet().into_future()))
        .collect();
    for call in calls {
        bounded(call).await.unwrap().unwrap();
    }
    let stats = &service.stats()[0];
    assert_eq!((stats.workers, stats.reads_peak), (2, 8));
    service.stop().await;
}
