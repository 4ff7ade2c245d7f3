//! Many calls share one connection, matched by call id.

use std::collections::HashSet;

use tests::{Counter, counter_client, start_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_on_one_connection_are_all_answered_correctly() {
    let service = start_counter("mux-1000", Counter::new()).await;
    let client = counter_client("mux-1000", true);

    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { (i, client.echo(format!("call-{i}")).await) })
        })
        .collect();
    let mut callers = HashSet::new();
    for call in calls {
        let (i, reply) = call.await.unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        let (caller, body) = reply.split_once(' ').unwrap();
        assert_eq!(body, format!("call-{i}"), "reply matched to the wrong call");
        callers.insert(caller.to_owned());
    }
    // The handler saw one peer address: every call rode the same connection.
    assert_eq!(callers.len(), 1, "calls spread over {callers:?}");
    assert!(!callers.contains("local"), "calls took the fast path");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_connections_spreads_calls() {
    let service = start_counter("mux-pool", Counter::new()).await;
    let client = tests::client_builder()
        .fast_path(false)
        .connections_per_node(4)
        .build();
    let client = tests::CounterClient::with_service(client, "mux-pool");
    let mut callers = HashSet::new();
    for i in 0..16 {
        let reply = client.echo(i.to_string()).await.unwrap();
        callers.insert(reply.split_once(' ').unwrap().0.to_owned());
    }
    assert_eq!(callers.len(), 4);
    service.stop().await;
}
