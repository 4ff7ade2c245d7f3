//! Many streams and calls share one connection, and a stream never holds its actor.

use std::collections::HashSet;

use futures_util::StreamExt;
use tests::streams::{CountReq, feed_client, start_feed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_and_calls_on_one_connection_all_complete() {
    let (service, _) = start_feed("stream-many").await;
    let feed = feed_client("stream-many", true);
    let streams: Vec<_> = (0..100u64)
        .map(|i| {
            let feed = feed.clone();
            tokio::spawn(async move {
                let mut items = feed
                    .count(CountReq {
                        n: 200 + i,
                        pad: 16,
                        ..CountReq::default()
                    })
                    .await
                    .unwrap();
                let mut seen = 0;
                while let Some(item) = items.next().await {
                    assert_eq!(item.unwrap().seq, seen, "stream {i} out of order");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let calls: Vec<_> = (0..100u64)
        .map(|i| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.ping(i).await.unwrap() == i + 1 })
        })
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        assert_eq!(
            stream.await.unwrap(),
            200 + i as u64,
            "stream {i} cut short"
        );
    }
    for call in calls {
        assert!(call.await.unwrap());
    }
    // One peer address for every stream: they shared the connection.
    let mut callers = HashSet::new();
    for _ in 0..4 {
        let mut caller = feed.caller().await.unwrap();
        callers.insert(caller.next().await.unwrap().unwrap());
    }
    assert_eq!(callers.len(), 1, "{callers:?}");
    service.stop().await;
}

/// Open streams nobody reads do not keep the actor busy: a write turn, which must run
/// alone, still runs while they are open.
async fn open_streams_leave_the_actor_free(name: &str, wire: bool) {
    let (service, _) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let mut open = Vec::new();
    for _ in 0..10 {
        let mut items = feed
            .count(CountReq {
                n: u64::MAX,
                ..CountReq::default()
            })
            .await
            .unwrap();
        items.next().await.unwrap().unwrap();
        open.push(items);
    }
    feed.client()
        .call::<(), u64>(name.into(), "Feed.Bump", ())
        .await
        .expect("a write turn runs beside open streams");
    drop(open);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_leave_the_actor_free_over_the_network() {
    open_streams_leave_the_actor_free("stream-free-wire", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_leave_the_actor_free_in_process() {
    open_streams_leave_the_actor_free("stream-free-local", false).await;
}

/// Regression: streams count as calls in flight, and a server at its in-flight limit once
/// stopped reading the connection, credit frames included, so streams waiting for credit
/// waited forever. At the limit it now keeps reading, and turns new calls away instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_at_the_in_flight_limit_still_get_their_credit() {
    let feed = tests::streams::Feed::default();
    let service = tests::service("stream-limit")
        .limits(micro::ServerLimits::default().max_in_flight(2))
        .handle(feed)
        .start()
        .await
        .unwrap();
    let client = feed_client("stream-limit", true);
    // Past one window of credit each: they need credit to finish.
    let count = || CountReq {
        n: 20_000,
        pad: 100,
        ..CountReq::default()
    };
    let mut a = client.count(count()).await.unwrap();
    let mut b = client.count(count()).await.unwrap();
    a.next().await.unwrap().unwrap();
    b.next().await.unwrap().unwrap();
    let turned_away = client.ping(1).await.unwrap_err();
    assert_eq!(turned_away.code, 503, "{turned_away:?}");
    let (mut read_a, mut read_b) = (1, 1);
    while let Some(item) = a.next().await {
        item.unwrap();
        read_a += 1;
    }
    while let Some(item) = b.next().await {
        item.unwrap();
        read_b += 1;
    }
    assert_eq!((read_a, read_b), (20_000, 20_000));
    assert_eq!(client.ping(1).await.unwrap(), 2, "calls are served again");
    service.stop().await;
}
