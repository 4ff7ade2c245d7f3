//! Server, client and bidirectional streams, over the network and in-process.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use micro::Streaming;
use tests::streams::{CountReq, Opaque, feed_client, start_feed};

async fn server_stream_delivers_every_item_in_order(name: &str, wire: bool) {
    let (service, tally) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let mut items = feed
        .count(CountReq {
            n: 1000,
            ..CountReq::default()
        })
        .await
        .unwrap();
    let mut next = 0;
    while let Some(item) = items.next().await {
        assert_eq!(item.unwrap().seq, next);
        next += 1;
    }
    assert_eq!(next, 1000, "a clean end after the last item");
    assert_eq!(tally.finished.load(Ordering::SeqCst), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_over_the_network() {
    server_stream_delivers_every_item_in_order("stream-server-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_in_process() {
    server_stream_delivers_every_item_in_order("stream-server-local", false).await;
}

async fn client_stream_sums(name: &str, wire: bool) {
    let (service, tally) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let total = feed.sum(Streaming::iter(1..=10_000u64)).await.unwrap();
    assert_eq!(total, 10_000 * 10_001 / 2);
    assert_eq!(tally.read.load(Ordering::SeqCst), 10_000);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_over_the_network() {
    client_stream_sums("stream-client-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_in_process() {
    client_stream_sums("stream-client-local", false).await;
}

/// Each reply is read before the next request is sent: the two directions really run
/// together, not one after the other.
async fn bidi_echo_answers_each_line_as_it_arrives(name: &str, wire: bool) {
    let (service, _) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let (lines, requests) = Streaming::channel(1);
    let mut replies = feed.echo(requests).await.unwrap();
    for i in 0..100 {
        lines.send(format!("line {i}")).await.unwrap();
        let reply = replies.next().await.unwrap().unwrap();
        assert_eq!(reply, format!("echo line {i}"));
    }
    drop(lines);
    assert!(
        replies.next().await.is_none(),
        "a clean end after the requests end"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_echo_over_the_network() {
    bidi_echo_answers_each_line_as_it_arrives("stream-bidi-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_echo_in_process() {
    bidi_echo_answers_each_line_as_it_arrives("stream-bidi-local", false).await;
}

/// The in-process path hands the typed stream over: its items are never encoded (these
/// cannot be), while the same stream over the network fails on its first item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_streams_are_not_encoded() {
    let (service, _) = start_feed("stream-typed").await;
    let local = feed_client("stream-typed", false);
    let items: Vec<_> = local.opaque(3).await.unwrap().collect().await;
    let items: Vec<Opaque> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(items, [Opaque(0), Opaque(1), Opaque(2)]);
    let mut caller = local.caller().await.unwrap();
    assert_eq!(caller.next().await.unwrap().unwrap(), "local");

    let wire = feed_client("stream-typed", true);
    let mut caller = wire.caller().await.unwrap();
    assert_ne!(caller.next().await.unwrap().unwrap(), "local");
    let mut items = wire.opaque(3).await.unwrap();
    let error = items.next().await.unwrap().unwrap_err();
    assert!(error.detail.contains("opaque values stay"), "{error:?}");
    assert!(items.next().await.is_none());
    service.stop().await;
}
