//! Only what provably did not run is retried: a handler's own error never is, whatever its
//! code, and a request the service turned away before running it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use micro::prelude::*;
use tests::{Counter, CounterClient, wait_until};

/// Does its work, then says it is overloaded (or passes a downstream 503 up with `?`).
#[derive(Clone, Default)]
struct Busy {
    effects: Arc<AtomicU64>,
}

#[micro::service(name = "busy")]
impl Busy {
    pub async fn work(&self) -> micro::Result<()> {
        self.effects.fetch_add(1, Ordering::SeqCst);
        Err(Error::overloaded(
            "busy",
            "did the work, then found the queue long",
        ))
    }

    pub async fn unavailable(&self) -> micro::Result<()> {
        self.effects.fetch_add(1, Ordering::SeqCst);
        Err(Error::unavailable("busy", "a dependency is down"))
    }
}

/// Regression: a handler that did its work and returned `overloaded` ran twice per call
/// (four times with three retries), because any 503 was taken as "rejected before it ran".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_returning_overloaded_runs_once_per_call() {
    let busy = Busy::default();
    let service = tests::service("retry-busy")
        .handle(busy.clone())
        .start()
        .await
        .unwrap();
    for wire in [false, true] {
        busy.effects.store(0, Ordering::SeqCst);
        let client = BusyClient::with_service(
            tests::client_builder().fast_path(!wire).retries(3).build(),
            "retry-busy",
        );
        for _ in 0..10 {
            assert_eq!(client.work().await.unwrap_err().code, 503);
            assert_eq!(client.unavailable().await.unwrap_err().code, 502);
        }
        assert_eq!(busy.effects.load(Ordering::SeqCst), 20, "wire: {wire}");
    }
    service.stop().await;
}

/// A full mailbox turns the request away before it runs, and says so: the client retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_rejection_is_retried_and_a_handler_error_is_not() {
    for wire in [false, true] {
        let name = format!("retry-full-{wire}");
        let counter = Counter::new();
        let service = tests::service(&name)
            .mailbox(1)
            .handle(counter.clone())
            .start()
            .await
            .unwrap();
        let client = |retries| {
            CounterClient::with_service(
                tests::client_builder()
                    .fast_path(!wire)
                    .retries(retries)
                    .build(),
                name.as_str(),
            )
        };
        // One call holds the actor, one fills the mailbox.
        let holder = tokio::spawn({
            let client = client(0);
            async move { client.wait(1).await }
        });
        wait_until("the actor to be busy", Duration::from_secs(10), || {
            service.stats()[0].running == 1
        })
        .await;
        let queued = tokio::spawn({
            let client = client(0);
            async move { client.wait(2).await }
        });
        wait_until("the mailbox to fill", Duration::from_secs(10), || {
            service.stats()[0].queued == 1
        })
        .await;

        let err = client(0).add(1).await.unwrap_err();
        assert!(err.is_overloaded(), "{err}");
        assert_eq!(service.stats()[0].rejected, 1, "no retry without retries");
        let err = client(2).add(1).await.unwrap_err();
        assert!(err.is_overloaded(), "{err}");
        assert_eq!(
            service.stats()[0].rejected,
            4,
            "turned away, then retried twice"
        );

        counter.gate.add_permits(2);
        assert_eq!(holder.await.unwrap().unwrap(), 1);
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        // A handler's own 503 (from `fail`) is never sent twice.
        let calls = service.stats()[0].calls;
        assert_eq!(client(3).fail(503).await.unwrap_err().code, 503);
        assert_eq!(service.stats()[0].calls, calls + 1);
        assert_eq!(counter.runs.load(Ordering::SeqCst), 2, "add never ran");
        service.stop().await;
    }
}
