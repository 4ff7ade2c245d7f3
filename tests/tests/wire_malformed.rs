//! A malformed or oversized frame closes only its own connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tests::{Counter, counter_client};

/// Reads frames until the server closes the stream; returns the error sent with call id 0.
async fn closing_error(stream: &mut TcpStream) -> micro::Error {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("read");
    assert!(all.len() >= 16, "no frame before the close: {all:?}");
    let len = u32::from_be_bytes(all[..4].try_into().unwrap()) as usize;
    let frame = &all[4..4 + len];
    assert_eq!(frame[0], 3, "an error frame");
    assert_eq!(u64::from_be_bytes(frame[4..12].try_into().unwrap()), 0);
    serde_json::from_slice(&frame[12..]).expect("error body is micro::Error JSON")
}

async fn start(name: &str) -> micro::RunningService {
    tests::service(name)
        .max_frame(64 * 1024)
        .handle(Counter::new())
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_only_its_connection() {
    let service = start("wire-malformed").await;
    let client = counter_client("wire-malformed", true);
    assert_eq!(client.add(1).await.unwrap(), 1);

    let mut bad = TcpStream::connect(service.address()).await.unwrap();
    // A 12-byte frame of kind 99, which does not exist.
    let mut frame = vec![0, 0, 0, 12, 99, 1, 0, 0];
    frame.extend_from_slice(&5u64.to_be_bytes());
    bad.write_all(&frame).await.unwrap();
    let err = closing_error(&mut bad).await;
    assert_eq!(err.code, 400);
    assert_eq!(
        err.detail,
        "connection closed: malformed frame: unknown frame kind"
    );

    // A request frame whose strings run past its end.
    let mut truncated = TcpStream::connect(service.address()).await.unwrap();
    let mut frame = vec![1u8, 1, 0, 0];
    frame.extend_from_slice(&6u64.to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&500u16.to_be_bytes());
    frame.extend_from_slice(b"abc");
    let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&frame);
    truncated.write_all(&framed).await.unwrap();
    let err = closing_error(&mut truncated).await;
    assert!(err.detail.contains("malformed frame"), "{err}");

    // The healthy connection is untouched.
    assert_eq!(client.add(1).await.unwrap(), 2);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_only_its_connection() {
    let service = start("wire-oversized").await;
    let client = counter_client("wire-oversized", true);
    assert_eq!(client.add(1).await.unwrap(), 1);

    let mut big = TcpStream::connect(service.address()).await.unwrap();
    big.write_all(&(5_000_000u32).to_be_bytes()).await.unwrap();
    // Whatever follows is never read as a frame.
    let _ = big.write_all(&[0u8; 1024]).await;
    let err = closing_error(&mut big).await;
    assert_eq!(
        err.detail,
        "connection closed: frame of 5000000 bytes exceeds the 65536-byte limit"
    );

    assert_eq!(client.add(1).await.unwrap(), 2);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_many_peers_never_stops_the_server() {
    let service = start("wire-garbage").await;
    let client = counter_client("wire-garbage", true);
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..50 {
        let mut s = TcpStream::connect(service.address()).await.unwrap();
        let mut junk = vec![0u8; 64 + round * 7];
        for b in &mut junk {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        // Keep lengths small so every stream is judged rather than waited on.
        let len = (junk.len() - 4) as u32;
        junk[..4].copy_from_slice(&len.to_be_bytes());
        let _ = s.write_all(&junk).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    }
    assert_eq!(client.add(1).await.unwrap(), 1);
    service.stop().await;
}
