//! Unknown services, unknown endpoints and bad requests each get their own clear error.

use micro::codec::ContentType;
use serde_json::json;
use tests::{Counter, counter_client, start_counter, wire_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_is_not_found_by_name() {
    for client in [tests::client(), wire_client()] {
        let err = client
            .call_json("no.such.service", "Nope.Nope", json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(err.detail, "service no.such.service not found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_names_endpoint_and_service() {
    let service = start_counter("errors-endpoint", Counter::new()).await;
    for client in [tests::client(), wire_client()] {
        let err = client
            .call_json("errors-endpoint", "Counter.Nope", json!(1))
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(
            err.detail,
            "unknown endpoint Counter.Nope on service errors-endpoint"
        );
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_asked_for_another_service_says_so() {
    let service = start_counter("errors-wrong-node", Counter::new()).await;
    let err = wire_client()
        .call_json("someone.else", "Counter.Get", json!(null))
        .node(service.address())
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
    assert_eq!(
        err.detail,
        "unknown service someone.else: this node serves errors-wrong-node"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_is_a_bad_request_naming_the_type() {
    let service = start_counter("errors-decode", Counter::new()).await;
    for client in [tests::client(), wire_client()] {
        let err = client
            .call_json("errors-decode", "Counter.Add", json!({"not": "a number"}))
            .await
            .unwrap_err();
        assert_eq!(err.code, 400, "{err}");
        assert!(
            err.detail
                .starts_with("cannot decode the request for Counter.Add as u64"),
            "{err}"
        );
    }
    // bincode bytes that are not a String
    let err = wire_client()
        .call::<Vec<u8>, String>("errors-decode".into(), "Counter.Echo", vec![0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_cross_the_wire_unchanged() {
    let service = start_counter("errors-handler", Counter::new()).await;
    for wire in [false, true] {
        let err = counter_client("errors-handler", wire)
            .fail(409)
            .await
            .unwrap_err();
        assert_eq!(err, micro::Error::conflict("counter", "asked to fail"));
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_before_sending() {
    let service = start_counter("errors-big", Counter::new()).await;
    let client = tests::client_builder()
        .fast_path(false)
        .max_frame(64 * 1024)
        .build();
    let err = client
        .call::<String, String>("errors-big".into(), "Counter.Echo", "x".repeat(100_000))
        .content_type(ContentType::Bincode)
        .await
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.detail.contains("exceeds the 65536-byte frame limit"),
        "{err}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_reply_becomes_an_error_and_the_connection_survives() {
    let service = tests::service("errors-big-reply")
        .max_frame(64 * 1024)
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let client = counter_client("errors-big-reply", true);
    let err = client.blob(100_000).await.unwrap_err();
    assert_eq!(err.code, 500);
    assert!(
        err.detail.contains("reply of 100005 bytes exceeds"),
        "{err}"
    );
    assert_eq!(client.blob(10).await.unwrap(), vec![7; 10]);
    service.stop().await;
}
