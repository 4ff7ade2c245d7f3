//! JSON and bincode callers get the same answers, and so does the in-process fast path.

use micro::codec::ContentType;
use serde_json::json;
use tests::{Counter, counter_client, start_counter, wire_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_bincode_callers_get_the_same_answers() {
    let service = start_counter("codec-parity", Counter::new()).await;
    let typed = counter_client("codec-parity", true);
    let local = counter_client("codec-parity", false);
    let json = wire_client();

    for by in [1u64, 2, 40] {
        let a = typed.add(by).await.unwrap();
        let b = json
            .call_json("codec-parity", "Counter.Add", json!(by))
            .await
            .unwrap();
        let c = local.add(by).await.unwrap();
        assert_eq!((b.as_u64().unwrap(), c), (a + by, a + 2 * by));
    }

    let bincode_echo = typed.blob(3).await.unwrap();
    let json_echo = json
        .call_json("codec-parity", "Counter.Blob", json!(3))
        .await
        .unwrap();
    assert_eq!(json_echo, json!(bincode_echo));

    let via_json: Option<String> = wire_client()
        .call::<String, Option<String>>("codec-parity".into(), "Counter.Header", "k".into())
        .content_type(ContentType::Json)
        .metadata("k", "v")
        .await
        .unwrap();
    let via_bincode = typed.header("k".into()).metadata("k", "v").await.unwrap();
    assert_eq!(via_json, via_bincode);
    assert_eq!(via_json.as_deref(), Some("v"));

    // Errors too: the same error, whichever codec asked.
    let e1 = typed.fail(403).await.unwrap_err();
    let e2 = json
        .call_json("codec-parity", "Counter.Fail", json!(403))
        .await
        .unwrap_err();
    assert_eq!(e1, e2);
    service.stop().await;
}
