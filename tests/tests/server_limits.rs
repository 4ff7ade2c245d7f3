//! What a hostile or broken peer can hold on a server is bounded, and released when it goes:
//! queued replies of a peer that never reads, frames announced and never finished, idle
//! connections, and connections beyond the limit.

use std::time::Duration;

use micro::ServerLimits;
use micro::codec::Codec;
use tests::raw::{self, read_frame, rss};
use tests::{Counter, counter_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MIB: usize = 1024 * 1024;

/// The tests that measure this process's memory take turns, so one's peers are not
/// counted in another's figures.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `Counter.Blob` for `len` bytes, as a raw bincode request frame.
fn blob_request(id: u64, service: &str, len: usize) -> Vec<u8> {
    let body = micro::codec::Bincode::encode(&len).unwrap();
    raw::request(id, 1, service, "Counter.Blob", &body)
}

/// Peers that send requests for 64 KiB replies and never read one: 8 connections × 2,000
/// requests would queue 1 GiB of replies if the write queue were unbounded (as it was: a
/// service grew by 2.1 GiB). With a 256 KiB write buffer and 8 calls in flight each
/// connection holds about 1 MiB, so the process stays within 64 MiB of where it started,
/// and a second round of the same peers costs no more: what the first held was released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_replies_holds_a_bounded_amount() {
    const CONNS: usize = 8;
    const REQUESTS: u64 = 2000;
    const REPLY: usize = 64 * 1024;
    const BOUND: usize = 64 * MIB;
    let _turn = MEASURING.lock().await;
    let counter = Counter::new();
    let service = tests::service("limits-never-reads")
        .limits(
            ServerLimits::default()
                .write_buffer(256 * 1024)
                .max_in_flight(8)
                .idle_timeout(Duration::from_secs(600)),
        )
        .handle(counter.clone())
        .start()
        .await
        .unwrap();
    let healthy = counter_client("limits-never-reads", true);
    let before = rss();
    let mut peak = before;
    for round in 0..2 {
        let mut peers = Vec::new();
        for _ in 0..CONNS {
            // A small receive buffer, so the kernel does not absorb what we refuse to read.
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut s = socket
                .connect(service.address().parse().unwrap())
                .await
                .unwrap();
            let requests: Vec<u8> = (1..=REQUESTS)
                .flat_map(|id| blob_request(id, "limits-never-reads", REPLY))
                .collect();
            s.write_all(&requests).await.unwrap();
            peers.push(s);
        }
        // Replies are made as the server reads requests; it stops reading each connection
        // once its queue is full. Watch the process while the count of replies made settles
        // (bounded: at most 30 s), keeping the highest resident size seen.
        let mut last = u64::MAX;
        let mut steady = 0;
        for _ in 0..3000 {
            peak = peak.max(rss());
            let runs = blob_runs(&healthy).await;
            if runs == last {
                steady += 1;
                if steady == 50 {
                    break;
                }
            } else {
                (last, steady) = (runs, 0);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let made = blob_runs(&healthy).await;
        assert!(
            made < CONNS as u64 * REQUESTS * (round + 1),
            "round {round}: every request was read ({made} runs): nothing pushed back"
        );
        // Other clients are served meanwhile.
        assert_eq!(healthy.add(1).await.unwrap(), round + 1);
        eprintln!(
            "round {round}: {made} replies made; RSS {} MiB at start, peak {} MiB",
            before / MIB,
            peak / MIB
        );
        assert!(
            peak - before < BOUND,
            "round {round}: RSS grew by {} MiB (bound {} MiB)",
            (peak - before) / MIB,
            BOUND / MIB
        );
        drop(peers);
    }
    eprintln!("after both rounds closed: RSS {} MiB", rss() / MIB);
    service.stop().await;
}

/// Requests the `Counter` handlers have run, read through `Debug.Stats`.
async fn blob_runs(client: &tests::CounterClient) -> u64 {
    let stats: micro::Stats = client
        .client()
        .call("limits-never-reads".into(), "Debug.Stats", ())
        .await
        .unwrap();
    stats
        .handlers
        .iter()
        .filter(|h| h.handler == "Counter")
        .map(|h| h.calls)
        .sum()
}

/// Regression: 200 connections that each announced a 4 MiB frame and sent part of it held
/// the whole announced size each (the reader reserved it up front: 800 MiB for 200), and
/// kept it forever. Now a buffer holds what arrived, and a frame not finished within the
/// frame timeout closes its connection with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_announcing_large_frames_hold_what_they_sent_until_the_frame_timeout() {
    const CONNS: usize = 200;
    const SENT: usize = 16 * 1024;
    const BOUND: usize = 48 * MIB;
    let _turn = MEASURING.lock().await;
    let service = tests::service("limits-announce")
        .limits(ServerLimits::default().frame_timeout(Duration::from_millis(500)))
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let healthy = counter_client("limits-announce", true);
    let before = rss();
    let mut peers = Vec::new();
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(service.address()).await.unwrap();
        let mut partial = ((4 * MIB - 1) as u32).to_be_bytes().to_vec();
        partial.extend_from_slice(&vec![0u8; SENT]);
        s.write_all(&partial).await.unwrap();
        peers.push(s);
    }
    // Served while they stall.
    assert_eq!(healthy.add(1).await.unwrap(), 1);
    let during = rss();
    eprintln!(
        "{CONNS} stalled 4 MiB frames: RSS {} MiB at start, {} MiB while stalled",
        before / MIB,
        during / MIB
    );
    assert!(
        during.saturating_sub(before) < BOUND,
        "RSS grew by {} MiB (bound {} MiB)",
        (during - before) / MIB,
        BOUND / MIB
    );
    // Each is closed, with the reason, once its frame is overdue.
    for mut s in peers {
        let (kind, id, body) = read_frame(&mut s).await.expect("the reason");
        assert_eq!((kind, id), (3, 0));
        let err: micro::Error = serde_json::from_slice(&body).unwrap();
        assert!(
            err.detail.contains("frame not completed within 500ms"),
            "{err}"
        );
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    }
    assert_eq!(healthy.add(1).await.unwrap(), 2);
    service.stop().await;
}

/// A connection with nothing in flight past the idle timeout is asked to go away (so a
/// request already on its way is still served), and closed if it never acknowledges. A
/// micro client acknowledges and its next call opens a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_asked_to_go_away_then_closed() {
    let service = tests::service("limits-idle")
        .limits(ServerLimits::default().idle_timeout(Duration::from_millis(300)))
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let mut idle = TcpStream::connect(service.address()).await.unwrap();
    // A call first, so the idle clock starts after work, not only at accept.
    idle.write_all(&raw::request(1, 1, "limits-idle", "Counter.Get", &[]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut idle).await.unwrap().0, 2, "the reply");
    let (kind, id, _) = read_frame(&mut idle).await.expect("go away");
    assert_eq!((kind, id), (4, 0), "a go-away frame");
    // Not acknowledged: closed after another idle period.
    assert!(read_frame(&mut idle).await.is_none(), "closed");

    let client = counter_client("limits-idle", true);
    assert_eq!(client.add(1).await.unwrap(), 1);
    // Wait for the server's go away to reach the client's pooled connection: a raw peer
    // connected now sees its own go away after the same idle time, and ours was earlier.
    let mut marker = TcpStream::connect(service.address()).await.unwrap();
    assert_eq!(read_frame(&mut marker).await.expect("go away").0, 4);
    assert_eq!(client.add(1).await.unwrap(), 2);
    service.stop().await;
}

/// Connections past the server-wide limit, or past the per-address limit, are refused with
/// the reason; those admitted are still served, and a closed one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limits_are_refused_and_the_others_served() {
    let service = tests::service("limits-conns")
        .limits(
            ServerLimits::default()
                .max_connections(4)
                .max_connections_per_ip(3),
        )
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let addr: std::net::SocketAddr = service.address().parse().unwrap();
    let from = |ip: [u8; 4]| async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from((ip, 0))).unwrap();
        socket.connect(addr).await.unwrap()
    };
    // Proves a connection admitted: a call on it is answered.
    async fn served(s: &mut TcpStream, id: u64) {
        s.write_all(&raw::request(id, 1, "limits-conns", "Counter.Get", &[]))
            .await
            .unwrap();
        let (kind, got, _) = read_frame(s).await.expect("a reply");
        assert_eq!((kind, got), (2, id));
    }
    async fn refused(mut s: TcpStream, why: &str) {
        let (kind, id, body) = read_frame(&mut s).await.expect("the reason");
        assert_eq!((kind, id), (3, 0));
        let err: micro::Error = serde_json::from_slice(&body).unwrap();
        assert!(err.detail.contains(why), "{err}");
        assert!(read_frame(&mut s).await.is_none(), "closed");
    }

    let mut local = Vec::new();
    for i in 0..3 {
        let mut s = from([127, 0, 0, 1]).await;
        served(&mut s, i + 1).await;
        local.push(s);
    }
    refused(
        from([127, 0, 0, 1]).await,
        "too many connections from 127.0.0.1",
    )
    .await;
    let mut other = from([127, 0, 0, 2]).await;
    served(&mut other, 10).await;
    refused(from([127, 0, 0, 3]).await, "too many connections (4 open)").await;
    for (i, s) in local.iter_mut().enumerate() {
        served(s, 20 + i as u64).await;
    }
    // Closing one frees its place, once the server has seen it go.
    drop(other);
    let mut again = None;
    for _ in 0..100 {
        let mut s = from([127, 0, 0, 3]).await;
        s.write_all(&raw::request(30, 1, "limits-conns", "Counter.Get", &[]))
            .await
            .unwrap();
        if read_frame(&mut s).await.is_some_and(|(kind, ..)| kind == 2) {
            again = Some(s);
            break;
        }
    }
    assert!(again.is_some(), "the freed place was never given out");
    // Raw peers never acknowledge a go away: close them rather than wait out the shutdown.
    drop((local, again));
    service.stop().await;
}
