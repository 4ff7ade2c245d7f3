//! Server-stream throughput: items/s and resident memory for a stream of 16 B and 64 KiB
//! items through micro (over TCP, and in-process), against a raw TCP baseline measured in
//! the same run: one writer sending length-prefixed frames as fast as the reader reads.
//!
//! ```text
//! cargo run --release -p benches --bin streams -- [--quick]
//! ```

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use micro::Streaming;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Items of `size` bytes, as many as asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Source;

#[micro::service(name = "source")]
impl Source {
    /// `n` items of `size` bytes each.
    pub async fn items(&self, (n, size): (u64, usize)) -> micro::Result<Streaming<Bytes>> {
        let item = benches::payload(size);
        Ok(Streaming::iter((0..n).map(move |_| item.clone())))
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// What one run measured: items per second and the most resident memory grew.
struct Measured {
    per_sec: f64,
    rss_growth: u64,
}

async fn raw(n: u64, size: usize) -> Measured {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let item = benches::payload(size);
    let writer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut out = BufWriter::with_capacity(64 * 1024, stream);
        for _ in 0..n {
            out.write_u32(item.len() as u32).await.expect("write");
            out.write_all(&item).await.expect("write");
        }
        out.flush().await.expect("flush");
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    let base = rss();
    let mut peak = 0;
    let start = Instant::now();
    let mut body = vec![0; size];
    for i in 0..n {
        let len = input.read_u32().await.expect("read") as usize;
        input.read_exact(&mut body[..len]).await.expect("read");
        if i.is_multiple_of(1000) {
            peak = peak.max(rss().saturating_sub(base));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writer.await.expect("writer");
    Measured {
        per_sec: n as f64 / secs,
        rss_growth: peak,
    }
}

async fn micro_stream(client: &SourceClient, n: u64, size: usize) -> Measured {
    let base = rss();
    let mut peak = 0;
    let start = Instant::now();
    let mut items = client.items((n, size)).await.expect("open the stream");
    let mut read = 0u64;
    while let Some(item) = items.next().await {
        assert_eq!(item.expect("an item").len(), size);
        if read.is_multiple_of(1000) {
            peak = peak.max(rss().saturating_sub(base));
        }
        read += 1;
    }
    assert_eq!(read, n);
    Measured {
        per_sec: n as f64 / start.elapsed().as_secs_f64(),
        rss_growth: peak,
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = micro::Runtime::builder()
        .registry(std::sync::Arc::new(micro::registry::MemoryRegistry::new()))
        .build(micro::config::Options::default());
    let service = runtime
        .service("source")
        .drain(std::time::Duration::ZERO)
        .handle(Source)
        .start()
        .await?;
    let wire = SourceClient::new(runtime.client_builder().fast_path(false).build());
    let local = SourceClient::new(runtime.client());
    println!(
        "{:<8} {:<12} {:>14} {:>10} {:>16}",
        "item", "path", "items/s", "vs raw", "RSS growth"
    );
    for (size, n) in [(16usize, 1_000_000u64), (64 * 1024, 20_000)] {
        let n = if quick { n / 10 } else { n };
        // Warm up connections and allocators before measuring.
        micro_stream(&wire, n / 10, size).await;
        let raw = raw(n, size).await;
        let rows = [
            ("raw tcp", &raw),
            ("micro tcp", &micro_stream(&wire, n, size).await),
            ("in-process", &micro_stream(&local, n, size).await),
        ];
        for (path, m) in rows {
            println!(
                "{:<8} {:<12} {:>14.0} {:>9.2}x {:>12} KiB",
                benches::size_name(size),
                path,
                m.per_sec,
                m.per_sec / raw.per_sec,
                m.rss_growth / 1024
            );
        }
    }
    service.stop().await;
    Ok(())
}
