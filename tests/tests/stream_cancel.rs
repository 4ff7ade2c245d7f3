//! Dropping either end of a stream stops the other: a reader that goes away stops the
//! producer, and a handler that stops reading stops the caller's producer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use micro::Streaming;
use tests::streams::{CountReq, feed_client, start_feed};

async fn dropping_the_replies_stops_the_producer(name: &str, wire: bool) {
    let (service, tally) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let mut items = feed
        .count(CountReq {
            n: u64::MAX,
            ..CountReq::default()
        })
        .await
        .unwrap();
    for seq in 0..10 {
        assert_eq!(items.next().await.unwrap().unwrap().seq, seq);
    }
    assert_eq!(tally.stopped.load(Ordering::SeqCst), 0);
    drop(items);
    tests::wait_until("the producer to stop", Duration::from_secs(10), || {
        tally.stopped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(tally.finished.load(Ordering::SeqCst), 0);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_replies_stops_the_producer_over_the_network() {
    dropping_the_replies_stops_the_producer("stream-cancel-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_replies_stops_the_producer_in_process() {
    dropping_the_replies_stops_the_producer("stream-cancel-local", false).await;
}

/// Regression for go-micro #1223 turned around: a handler that stops reading its requests
/// is seen by the caller, whose producer is told to stop.
async fn a_handler_that_stops_reading_stops_the_callers_producer(name: &str, wire: bool) {
    let (service, _) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let (numbers, requests) = Streaming::channel(4);
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        while numbers.send(sent + 7).await.is_ok() {
            sent += 1;
        }
        sent
    });
    assert_eq!(feed.first(requests).await.unwrap(), 7);
    let sent = tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("the producer stops")
        .unwrap();
    assert!(sent >= 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_stops_reading_stops_the_callers_producer_over_the_network() {
    a_handler_that_stops_reading_stops_the_callers_producer("stream-stop-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_stops_reading_stops_the_callers_producer_in_process() {
    a_handler_that_stops_reading_stops_the_callers_producer("stream-stop-local", false).await;
}
