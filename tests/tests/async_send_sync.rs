//! Public types and futures are `Send`/`Sync` where users need them to be.

use micro::{Call, Client, Error, RunningService, Service};
use tests::CounterClient;

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn send_val<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    send::<Client>();
    sync::<Client>();
    send::<Service>();
    send::<RunningService>();
    sync::<RunningService>();
    send::<Error>();
    sync::<Error>();
    send::<Call<String, String>>();
    send::<CounterClient>();
    sync::<CounterClient>();
    send::<micro::registry::Watcher>();
    send::<micro::Payload>();
    send::<micro::transport::Tls>();
    sync::<micro::transport::Tls>();
    send::<micro::auth::AuthLayer>();
    sync::<micro::auth::AuthLayer>();
    send::<micro::auth::Jwt>();
    sync::<micro::auth::Jwt>();
    send::<micro::auth::Rules>();
    sync::<micro::auth::Rules>();
    sync::<micro::Payload>();
    send::<micro::Streaming<String>>();
    send::<micro::StreamSender<String>>();
    sync::<micro::StreamSender<String>>();
    send::<micro::StreamCall<micro::Streaming<String>>>();
}

#[test]
fn stream_futures_are_send() {
    let feed = tests::streams::FeedClient::with_service(tests::client(), "x");
    let fut = std::future::IntoFuture::into_future(feed.count(Default::default()));
    send_val(&fut);
    let (tx, _rx) = micro::Streaming::<u64>::channel(1);
    send_val(&tx.send(1));
}

#[test]
fn call_futures_are_send() {
    let client = CounterClient::with_service(tests::client(), "x");
    let fut = std::future::IntoFuture::into_future(client.get());
    send_val(&fut);
    let start = tests::service("x").handle(tests::Counter::new()).start();
    send_val(&start);
    drop(start);
}
