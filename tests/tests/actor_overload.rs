//! A full mailbox answers `overloaded` at once, and memory stays bounded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tests::{Counter, counter_client, wait_until};

const CAPACITY: usize = 4;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mailbox_answers_overloaded_and_memory_stays_flat() {
    for wire in [false, true] {
        let name = format!("overload-{wire}");
        let counter = Counter::new();
        let gate = counter.gate.clone();
        let service = tests::service(&name)
            .mailbox(CAPACITY)
            .handle(counter)
            .start()
            .await
            .unwrap();
        // Retries off: each rejection should be seen by its caller, not absorbed.
        let client = tests::CounterClient::with_service(
            tests::client_builder().fast_path(!wire).retries(0).build(),
            name.as_str(),
        );

        // One call holds the actor, CAPACITY more fill the mailbox.
        let mut held = Vec::new();
        for tag in 0..=CAPACITY as u64 {
            let client = client.clone();
            held.push(tokio::spawn(async move { client.wait(tag).await }));
            if tag == 0 {
                wait_until(
                    "the actor to take the first call",
                    Duration::from_secs(5),
                    || service.stats()[0].running == 1,
                )
                .await;
            }
        }
        wait_until("the mailbox to fill", Duration::from_secs(5), || {
            service.stats()[0].queued == CAPACITY
        })
        .await;

        let before = rss();
        let big = "x".repeat(4096);
        for round in 0..20 {
            let calls: Vec<_> = (0..1000)
                .map(|_| {
                    let client = client.clone();
                    let big = big.clone();
                    tokio::spawn(async move { client.echo(big).await })
                })
                .collect();
            for c in calls {
                let err = c.await.unwrap().unwrap_err();
                assert!(err.is_overloaded(), "round {round}: {err}");
                assert_eq!(err.code, 503);
                assert!(err.detail.contains("mailbox full"), "{err}");
            }
            assert_eq!(service.stats()[0].queued, CAPACITY);
        }
        let grown = rss().saturating_sub(before);
        // 20,000 rejected 4 KiB requests would hold ~80 MiB if anything queued them.
        assert!(grown < 32 << 20, "memory grew by {grown} bytes");
        assert_eq!(service.stats()[0].rejected, 20_000);

        // Nothing was lost: the held calls all complete once the gate opens.
        gate.add_permits(CAPACITY + 1);
        for (tag, h) in held.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().unwrap(), tag as u64);
        }
        service.stop().await;
    }
}

/// Regression: on a busy machine this test raced the wall clock (the server's deadline,
/// counted from when the request arrived, could still be ahead when the actor took it). On
/// a paused clock, every deadline passes exactly when the test says.
#[tokio::test(start_paused = true)]
async fn a_call_whose_deadline_passes_in_the_mailbox_is_not_run() {
    for wire in [false, true] {
        let name = format!("deadline-{wire}");
        let counter = Counter::new();
        let (gate, runs) = (counter.gate.clone(), counter.runs.clone());
        let service = tests::service(&name).handle(counter).start().await.unwrap();
        let client = counter_client(&name, wire);

        let holder = {
            let client = client.clone();
            tokio::spawn(async move { client.wait(1).await })
        };
        wait_until("the actor to be busy", Duration::from_secs(5), || {
            service.stats()[0].running == 1
        })
        .await;

        let late = {
            let client = client.clone();
            tokio::spawn(async move { client.add(5).timeout(Duration::from_millis(50)).await })
        };
        wait_until(
            "the late call to reach the mailbox",
            Duration::from_secs(5),
            || service.stats()[0].queued == 1,
        )
        .await;
        let err = late.await.unwrap().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        // Past the deadline on the server's side too, however late the request arrived.
        tokio::time::advance(Duration::from_secs(1)).await;

        gate.add_permits(1);
        assert_eq!(holder.await.unwrap().unwrap(), 1);
        wait_until(
            "the expired call to be dropped",
            Duration::from_secs(5),
            || service.stats()[0].expired == 1,
        )
        .await;
        // Only `wait` ran; `add` never did.
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(client.get().await.unwrap(), 0);
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_local_call_is_skipped() {
    let name = "dropped-call";
    let counter = Counter::new();
    let (gate, runs) = (counter.gate.clone(), counter.runs.clone());
    let service = tests::service(name).handle(counter).start().await.unwrap();
    let client = counter_client(name, false);
    let holder = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(1).await })
    };
    wait_until("the actor to be busy", Duration::from_secs(5), || {
        service.stats()[0].running == 1
    })
    .await;
    let dropped = {
        let client = client.clone();
        tokio::spawn(async move { client.add(1).await })
    };
    wait_until("the call to queue", Duration::from_secs(5), || {
        service.stats()[0].queued == 1
    })
    .await;
    dropped.abort();
    let _ = dropped.await;
    gate.add_permits(1);
    holder.await.unwrap().unwrap();
    assert_eq!(client.get().await.unwrap(), 0, "the cancelled add ran");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    service.stop().await;
}
