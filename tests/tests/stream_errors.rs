//! How a stream ends: cleanly, with the handler's error, or broken: and the reader can
//! always tell which.

use std::time::Duration;

use futures_util::StreamExt;
use micro::Streaming;
use tests::streams::{CountReq, Item, feed_client, start_feed};

/// Regression for go-micro #476: an error mid-stream reaches the reader as that error,
/// never as an early clean end.
async fn an_error_mid_stream_reaches_the_reader(name: &str, wire: bool) {
    let (service, _) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let mut items = feed
        .count(CountReq {
            n: 100,
            fail_at: Some(50),
            ..CountReq::default()
        })
        .await
        .unwrap();
    for seq in 0..50 {
        assert_eq!(items.next().await.unwrap().unwrap().seq, seq);
    }
    let error = items.next().await.unwrap().unwrap_err();
    assert_eq!(error.code, 409, "{error:?}");
    assert_eq!(error.detail, "failed at 50");
    assert!(items.next().await.is_none(), "nothing after the error");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_reaches_the_reader_over_the_network() {
    an_error_mid_stream_reaches_the_reader("stream-error-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_reaches_the_reader_in_process() {
    an_error_mid_stream_reaches_the_reader("stream-error-local", false).await;
}

/// Reads `stream` to its end: the first thing that is not an item.
async fn end_of(stream: &mut Streaming<Item>) -> Option<micro::Result<Item>> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("the stream ends")
}

fn endless() -> CountReq {
    CountReq {
        n: u64::MAX,
        ..CountReq::default()
    }
}

/// A clean end is `None` with no error before it; a connection that breaks mid-stream is
/// an `unavailable` error, never a clean end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_is_not_a_clean_end() {
    let (service, _) = start_feed("stream-broken").await;
    let feed = feed_client("stream-broken", true);
    let mut clean = feed
        .count(CountReq {
            n: 3,
            ..CountReq::default()
        })
        .await
        .unwrap();
    assert!(end_of(&mut clean).await.is_none(), "a clean end");

    let mut items = feed.count(endless()).await.unwrap();
    items.next().await.unwrap().unwrap();
    // Dropping a running service cuts its connections at once.
    drop(service);
    let error = end_of(&mut items)
        .await
        .expect("an error, not a clean end")
        .unwrap_err();
    assert_eq!(error.status, "Bad Gateway", "unavailable: {error:?}");
}

/// A service that stops while a stream runs waits for it up to its shutdown timeout, then
/// ends it with an error saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_an_endless_stream_with_a_reason() {
    let feed = tests::streams::Feed::default();
    let service = tests::service("stream-shutdown")
        .shutdown_timeout(Duration::from_millis(50))
        .handle(feed)
        .start()
        .await
        .unwrap();
    let client = feed_client("stream-shutdown", true);
    let mut items = client.count(endless()).await.unwrap();
    items.next().await.unwrap().unwrap();
    service.stop().await;
    let error = end_of(&mut items)
        .await
        .expect("an error, not a clean end")
        .unwrap_err();
    assert_eq!(error.detail, "the service is shutting down", "{error:?}");
}

/// A stream given a timeout ends with a `timeout` error when it passes, at both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_its_deadline_ends_with_a_timeout() {
    let (service, _) = start_feed("stream-deadline").await;
    let feed = feed_client("stream-deadline", true);
    let (_hold, requests) = Streaming::<String>::channel(1);
    let mut replies = feed
        .echo(requests)
        .timeout(Duration::from_millis(200))
        .await
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .expect("the deadline ends the stream")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code, 408, "{error:?}");
    assert!(replies.next().await.is_none());
    service.stop().await;
}

/// A stream open when its service begins to stop runs to its clean end: the connection
/// stays open, reading credit, until the stream is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_finishes_while_its_service_stops() {
    let (service, _) = start_feed("stream-drain").await;
    let feed = feed_client("stream-drain", true);
    let mut items = feed
        .count(CountReq {
            n: 20_000,
            pad: 100,
            ..CountReq::default()
        })
        .await
        .unwrap();
    assert_eq!(items.next().await.unwrap().unwrap().seq, 0);
    let stopping = tokio::spawn(service.stop());
    let mut next = 1;
    while let Some(item) = items.next().await {
        assert_eq!(item.unwrap().seq, next);
        next += 1;
    }
    assert_eq!(next, 20_000, "every item, then a clean end");
    stopping.await.unwrap();
}

/// Regression: a client stream is one call from its first request to its reply, so the
/// client's call timeout, which bounds opening a stream, must not cut a long upload short.
#[tokio::test(start_paused = true)]
async fn a_client_stream_may_outlast_the_call_timeout_in_process() {
    let (service, _) = start_feed("stream-long-upload").await;
    let feed = feed_client("stream-long-upload", false);
    let (numbers, requests) = Streaming::channel(1);
    tokio::spawn(async move {
        for n in [1u64, 2, 3] {
            numbers.send(n).await.unwrap();
            // Twice the client's 5 s timeout between numbers, on the paused clock.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    assert_eq!(feed.sum(requests).await.unwrap(), 6);
    service.stop().await;
}

/// The same over the network, with a client whose call timeout is short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_may_outlast_the_call_timeout_over_the_network() {
    let (service, tally) = start_feed("stream-long-upload-wire").await;
    let client = tests::client_builder()
        .fast_path(false)
        .timeout(Duration::from_millis(50))
        .build();
    let feed = tests::streams::FeedClient::with_service(client, "stream-long-upload-wire");
    let (numbers, requests) = Streaming::channel(1);
    let read = tally.clone();
    tokio::spawn(async move {
        numbers.send(1u64).await.unwrap();
        tests::wait_until("the first number read", Duration::from_secs(10), || {
            read.read.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;
        // Past the 50 ms call timeout before the upload ends: not a synchronisation.
        tokio::time::sleep(Duration::from_millis(200)).await;
        numbers.send(2).await.unwrap();
    });
    assert_eq!(feed.sum(requests).await.unwrap(), 3);
    service.stop().await;
}
