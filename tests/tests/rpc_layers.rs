//! Tower layers on clients and services: every outgoing call, every incoming request, and
//! a server layer that turns requests away before they take a mailbox slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use micro::middleware::{BoxService, Request};
use tests::{Counter, CounterClient};
use tower::ServiceExt;

/// A layer that runs `before` on each request and passes it on (or answers it).
fn layer<F>(before: F) -> impl tower::Layer<BoxService, Service = BoxService> + Send + Sync + use<F>
where
    F: Fn(&mut Request) -> micro::Result<()> + Clone + Send + Sync + 'static,
{
    tower::layer::layer_fn(move |inner: BoxService| {
        let before = before.clone();
        BoxService::new(tower::service_fn(move |mut req: Request| {
            let inner = inner.clone();
            let checked = before(&mut req);
            async move {
                checked?;
                inner.oneshot(req).await
            }
        }))
    })
}

/// Counts the requests that reach it.
fn counting(
    seen: &Arc<AtomicUsize>,
) -> impl tower::Layer<BoxService, Service = BoxService> + Send + Sync + use<> {
    let seen = seen.clone();
    layer(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_layer_turns_requests_away_before_the_mailbox() {
    let counter = Counter::new();
    let guard = layer(|req| match req.metadata.get("token").map(String::as_str) {
        Some("s3cret") => Ok(()),
        _ => Err(micro::Error::unauthorized("guard", "no token")),
    });
    let service = tests::service("layers-guard")
        .layer(guard)
        .handle(counter.clone())
        .start()
        .await
        .unwrap();
    for wire in [false, true] {
        let calls_before = service.stats()[0].calls;
        let plain = CounterClient::with_service(
            tests::client_builder().fast_path(!wire).build(),
            "layers-guard",
        );
        for _ in 0..5 {
            let err = plain.add(1).await.unwrap_err();
            assert_eq!(err.code, 401, "{err}");
        }
        // Turned away before the mailbox: the handler never ran, nothing was queued.
        assert_eq!(counter.runs.load(Ordering::SeqCst), 0);
        assert_eq!(service.stats()[0].calls, calls_before, "wire: {wire}");

        let token = layer(|req| {
            req.metadata.insert("token".into(), "s3cret".into());
            Ok(())
        });
        let with_token = CounterClient::with_service(
            tests::client_builder()
                .fast_path(!wire)
                .layer(token)
                .build(),
            "layers-guard",
        );
        with_token.add(2).await.unwrap();
        assert_eq!(with_token.fail(418).await.unwrap_err().code, 418);
        counter.runs.store(0, Ordering::SeqCst);
    }
    assert_eq!(service.stats()[0].calls, 4);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_on_the_server_holds_requests_outside_the_mailbox() {
    let counter = Counter::new();
    let arrived = Arc::new(AtomicUsize::new(0));
    let service = tests::service("layers-server-limit")
        .layer(counting(&arrived))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .handle(counter.clone())
        .start()
        .await
        .unwrap();
    for wire in [false, true] {
        let client = CounterClient::with_service(
            tests::client_builder().fast_path(!wire).build(),
            "layers-server-limit",
        );
        arrived.store(0, Ordering::SeqCst);
        counter.runs.store(0, Ordering::SeqCst);
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.wait(1).await }
        });
        tests::wait_until(
            "the first call runs",
            std::time::Duration::from_secs(10),
            || counter.runs.load(Ordering::SeqCst) == 1,
        )
        .await;
        let second = tokio::spawn({
            let client = client.clone();
            async move { client.wait(2).await }
        });
        tests::wait_until(
            "the second call arrives",
            std::time::Duration::from_secs(10),
            || arrived.load(Ordering::SeqCst) == 2,
        )
        .await;
        // The second waits for the limit's permit, not in the mailbox.
        let stats = &service.stats()[0];
        assert_eq!((stats.queued, stats.running), (0, 1), "{stats:?}");
        assert_eq!(counter.runs.load(Ordering::SeqCst), 1);
        counter.gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(counter.runs.load(Ordering::SeqCst), 2);
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_on_the_client_holds_calls_before_they_are_sent() {
    let counter = Counter::new();
    let service = tests::start_counter("layers-client-limit", counter.clone()).await;
    for wire in [false, true] {
        let issued = Arc::new(AtomicUsize::new(0));
        let client = CounterClient::with_service(
            tests::client_builder()
                .fast_path(!wire)
                .layer(counting(&issued))
                .layer(tower::limit::ConcurrencyLimitLayer::new(1))
                .build(),
            "layers-client-limit",
        );
        counter.runs.store(0, Ordering::SeqCst);
        let calls: Vec<_> = (0..3)
            .map(|tag| {
                let client = client.clone();
                tokio::spawn(async move { client.wait(tag).await })
            })
            .collect();
        tests::wait_until(
            "every call is issued",
            std::time::Duration::from_secs(10),
            || issued.load(Ordering::SeqCst) == 3,
        )
        .await;
        tests::wait_until("one call runs", std::time::Duration::from_secs(10), || {
            counter.runs.load(Ordering::SeqCst) == 1
        })
        .await;
        // Two calls wait for a permit in the client: nothing of theirs reached the service.
        assert_eq!(service.stats()[0].queued, 0);
        counter.gate.add_permits(3);
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(counter.runs.load(Ordering::SeqCst), 3);
    }
    service.stop().await;
}
