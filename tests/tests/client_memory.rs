//! A client calling a server that never answers, nor even reads, keeps its memory bounded:
//! calls end at their deadline and take their state with them, and what waits to be written
//! is bounded in bytes.

use std::time::Duration;

#[derive(Default)]
struct Sink;

#[micro::service(name = "sink")]
impl Sink {
    pub async fn take(&self, _body: bytes::Bytes) -> micro::Result<()> {
        Ok(())
    }
}

const CALLS: usize = 100_000;
const AT_ONCE: usize = 1_000;
const BODY: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_calls_to_a_silent_server_leave_memory_bounded() {
    // Accepts connections, then neither reads nor writes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let runtime = micro::Runtime::in_memory();
    let client = SinkClient::new(
        runtime
            .client_builder()
            .timeout(Duration::from_millis(20))
            .build(),
    );
    let body = bytes::Bytes::from(vec![7u8; BODY]);
    let round = |client: SinkClient| {
        let body = body.clone();
        let address = address.clone();
        async move {
            let calls = (0..AT_ONCE).map(|_| client.take(body.clone()).node(address.clone()));
            let results =
                futures_util::future::join_all(calls.map(std::future::IntoFuture::into_future))
                    .await;
            results.into_iter().filter(|r| r.is_err()).count()
        }
    };
    // Warm up (connection, allocator pools), then measure.
    assert_eq!(round(client.clone()).await, AT_ONCE);
    let before = tests::raw::rss();
    let mut failed = 0;
    for _ in 0..CALLS / AT_ONCE {
        failed += round(client.clone()).await;
    }
    let after = tests::raw::rss();
    assert_eq!(failed, CALLS, "every call fails: nobody answers");
    // Unbounded, the requests alone would hold 100 MiB (100,000 × 1 KiB) in the write queue.
    let growth = after.saturating_sub(before);
    assert!(
        growth < 40 << 20,
        "RSS grew by {} MiB over {CALLS} unanswered calls",
        growth >> 20
    );
    println!(
        "figures: RSS {} MiB before, {} MiB after {CALLS} unanswered calls",
        before >> 20,
        after >> 20
    );
    held.abort();
}
