//! One middleware chain wraps every outgoing call, one every incoming dispatch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use micro::middleware::{Middleware, Next, Request};
use micro::{BoxFuture, Payload};
use tests::{Counter, CounterClient};

/// Adds a token to every outgoing call.
#[derive(Debug)]
struct Token;

impl Middleware for Token {
    fn call<'a>(
        &'a self,
        mut req: Request,
        next: Next<'a>,
    ) -> BoxFuture<'a, micro::Result<Payload>> {
        req.metadata.insert("token".into(), "s3cret".into());
        next.run(req)
    }
}

/// Rejects calls without the token, and counts what it lets through and what failed.
#[derive(Debug, Default)]
struct Guard {
    passed: AtomicUsize,
    failed: AtomicUsize,
}

impl Middleware for Guard {
    fn call<'a>(&'a self, req: Request, next: Next<'a>) -> BoxFuture<'a, micro::Result<Payload>> {
        Box::pin(async move {
            if req.metadata.get("token").map(String::as_str) != Some("s3cret") {
                return Err(micro::Error::unauthorized("guard", "no token"));
            }
            self.passed.fetch_add(1, Ordering::SeqCst);
            let result = next.run(req).await;
            if result.is_err() {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
            result
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_middleware_wrap_every_call() {
    let guard = Arc::new(Guard::default());
    let service = tests::service("mw")
        .middleware(guard.clone())
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    for wire in [false, true] {
        let plain =
            CounterClient::with_service(tests::client_builder().fast_path(!wire).build(), "mw");
        let err = plain.get().await.unwrap_err();
        assert_eq!(err.code, 401, "{err}");

        let with_token = CounterClient::with_service(
            tests::client_builder()
                .fast_path(!wire)
                .middleware(Arc::new(Token))
                .build(),
            "mw",
        );
        assert_eq!(with_token.add(2).await.unwrap() % 2, 0);
        assert!(with_token.fail(418).await.is_err());
    }
    assert_eq!(guard.passed.load(Ordering::SeqCst), 4);
    assert_eq!(guard.failed.load(Ordering::SeqCst), 2);
    service.stop().await;
}
