//! Metadata, deadlines and trace ids travel with calls, and into calls made by handlers.

use std::time::Duration;

use tests::{Counter, CounterClient, counter_client, start_counter};

/// Calls the counter registered as `target` from inside its own handler.
struct Relay {
    target: String,
    wire: bool,
}

#[micro::service(name = "relay")]
impl Relay {
    /// The counter's view of its deadline, when called from here with a 10 s timeout.
    pub async fn remaining(&self) -> micro::Result<Option<u64>> {
        let client = counter_client(&self.target, self.wire);
        client.remaining().timeout(Duration::from_secs(10)).await
    }

    /// The `traceparent` the counter sees, and this handler's own trace context.
    pub async fn trace(&self, ctx: &micro::Context) -> micro::Result<(Option<String>, String)> {
        let client = counter_client(&self.target, self.wire);
        let seen = client.header(micro::telemetry::TRACEPARENT.into()).await?;
        Ok((seen, ctx.trace().map(|t| t.to_string()).unwrap_or_default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_calls_inherit_the_remaining_deadline_and_trace() {
    for wire in [false, true] {
        let target = format!("ctx-target-{wire}");
        let counter = start_counter(&target, Counter::new()).await;
        let relay_name = format!("ctx-relay-{wire}");
        let relay = tests::service(&relay_name)
            .handle(Relay {
                target: target.clone(),
                wire,
            })
            .start()
            .await
            .unwrap();
        let client = RelayClient::with_service(tests::client(), relay_name.as_str());

        let left = client
            .remaining()
            .timeout(Duration::from_millis(800))
            .await
            .unwrap()
            .expect("a deadline reached the inner call");
        assert!(left <= 800, "inner call got {left} ms of a 800 ms budget");

        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (seen, relay_trace) = client
            .trace()
            .metadata(micro::telemetry::TRACEPARENT, caller)
            .await
            .unwrap();
        // Same trace; with no span recorded here, the parent passes through unchanged.
        assert_eq!(relay_trace, caller);
        assert_eq!(seen.as_deref(), Some(caller));
        relay.stop().await;
        counter.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_caller_reach_the_handler() {
    let service = start_counter("ctx-meta", Counter::new()).await;
    for wire in [false, true] {
        let client: CounterClient = counter_client("ctx-meta", wire);
        let v = client
            .header("user".into())
            .metadata("user", "ada")
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some("ada"));
        let echo = client.echo("x".into()).await.unwrap();
        let caller = echo.split_once(' ').unwrap().0;
        if wire {
            assert!(caller.starts_with("127.0.0.1:"), "{caller}");
        } else {
            assert_eq!(caller, "local");
        }
    }
    service.stop().await;
}
