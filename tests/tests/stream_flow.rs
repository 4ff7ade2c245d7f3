//! Flow control: a reader slower than its producer holds the producer back, so memory stays
//! bounded at both ends whatever the stream's length.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use tests::streams::{CountReq, feed_client, start_feed};

/// Resident memory of this process, from `/proc/self/statm`, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const ITEMS: u64 = 1_000_000;
const PAD: usize = 200;
/// The most a producer may run ahead of its reader, in items: the stream's 1 MiB window of
/// (at least PAD-byte) items, the handler's 16-item channel, and the item in each hand.
const AHEAD: u64 = (1 << 20) / PAD as u64 + 16 + 4;
/// Growth of resident memory allowed over the stream: unbounded, a million 200-byte items
/// would take over 200 MiB.
const RSS_BOUND: u64 = 48 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_to_a_slow_reader_in_bounded_memory() {
    slow_reader("stream-flow-wire", true).await;
    // In-process, the reader pulls straight from the handler's stream: nothing in between.
    slow_reader("stream-flow-local", false).await;
}

async fn slow_reader(name: &str, wire: bool) {
    let (service, tally) = start_feed(name).await;
    let feed = feed_client(name, wire);
    let mut items = feed
        .count(CountReq {
            n: ITEMS,
            pad: PAD,
            ..CountReq::default()
        })
        .await
        .unwrap();
    let mut baseline = None;
    let mut peak = 0;
    let mut max_ahead = 0;
    let mut read = 0u64;
    while let Some(item) = items.next().await {
        assert_eq!(item.unwrap().seq, read);
        read += 1;
        // Slower than the producer: it hands the thread back for every item it reads.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let ahead = tally.produced.load(Ordering::SeqCst) - read;
        max_ahead = max_ahead.max(ahead);
        assert!(ahead <= AHEAD, "the producer ran {ahead} items ahead");
        if read.is_multiple_of(10_000) {
            let now = rss();
            let base = *baseline.get_or_insert(now);
            peak = peak.max(now.saturating_sub(base));
        }
    }
    assert_eq!(read, ITEMS);
    eprintln!(
        "{name}: {ITEMS} items: producer at most {max_ahead} items ahead (bound {AHEAD}); \
         resident memory grew at most {} KiB (bound {} KiB)",
        peak / 1024,
        RSS_BOUND / 1024
    );
    assert!(peak <= RSS_BOUND, "resident memory grew {peak} bytes");
    service.stop().await;
}
