//! A service with every shape of stream, and counters that tests read from outside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use micro::Streaming;
use micro::prelude::*;

/// What a [`Feed`] has done, shared with the test.
#[derive(Debug, Default)]
pub struct Tally {
    /// Items the producers made.
    pub produced: AtomicU64,
    /// Producers that stopped because their reader went away.
    pub stopped: AtomicU64,
    /// Producers that ran to their end.
    pub finished: AtomicU64,
    /// Request items the handlers read.
    pub read: AtomicU64,
}

/// Streams of every shape.
#[derive(Clone, Default)]
pub struct Feed {
    pub tally: Arc<Tally>,
}

/// What to count.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct CountReq {
    /// Items, `u64::MAX` for no end.
    pub n: u64,
    /// Bytes of padding in each item.
    pub pad: usize,
    /// Ends the stream with an error instead of this item.
    pub fail_at: Option<u64>,
}

/// One item of a count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub seq: u64,
    pub pad: String,
}

/// A value that refuses to be encoded: it can only travel within one process.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Opaque(pub u64);

impl Serialize for Opaque {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "opaque values stay in their process",
        ))
    }
}

#[micro::service(name = "feed")]
impl Feed {
    /// Counts from zero, from a task of its own, as fast as the reader lets it.
    pub async fn count(&self, req: CountReq) -> micro::Result<Streaming<Item>> {
        let tally = self.tally.clone();
        let (tx, rx) = Streaming::channel(16);
        let pad = "x".repeat(req.pad);
        tokio::spawn(async move {
            for seq in 0..req.n {
                if req.fail_at == Some(seq) {
                    let error = micro::Error::conflict("feed", format_args!("failed at {seq}"));
                    let _ = tx.fail(error).await;
                    return;
                }
                tally.produced.fetch_add(1, Ordering::SeqCst);
                let item = Item {
                    seq,
                    pad: pad.clone(),
                };
                if tx.send(item).await.is_err() {
                    tally.stopped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            tally.finished.fetch_add(1, Ordering::SeqCst);
        });
        Ok(rx)
    }

    /// Adds up the numbers it is sent.
    pub async fn sum(&self, mut items: Streaming<u64>) -> micro::Result<u64> {
        let mut total = 0;
        while let Some(n) = items.next().await {
            total += n?;
            self.tally.read.fetch_add(1, Ordering::SeqCst);
        }
        Ok(total)
    }

    /// Answers each line it is sent, as it arrives.
    pub async fn echo(&self, lines: Streaming<String>) -> micro::Result<Streaming<String>> {
        let tally = self.tally.clone();
        Ok(Streaming::new(lines.map(move |line| {
            tally.read.fetch_add(1, Ordering::SeqCst);
            line.map(|line| format!("echo {line}"))
        })))
    }

    /// Answers the first of the numbers it is sent, and reads no more of them.
    pub async fn first(&self, mut items: Streaming<u64>) -> micro::Result<u64> {
        match items.next().await {
            Some(n) => n,
            None => Err(micro::Error::bad_request("feed", "no numbers")),
        }
    }

    /// Values that cannot be encoded.
    pub async fn opaque(&self, n: u64) -> micro::Result<Streaming<Opaque>> {
        Ok(Streaming::iter((0..n).map(Opaque)))
    }

    /// Where the stream's request came from: `local` in-process, else the peer.
    pub async fn caller(&self, ctx: &Context) -> micro::Result<Streaming<String>> {
        Ok(Streaming::iter([ctx.caller().to_owned()]))
    }

    /// A plain call, to share the connection with streams.
    pub async fn ping(&self, n: u64) -> micro::Result<u64> {
        Ok(n + 1)
    }

    /// A write turn: proves a stream does not hold the actor.
    pub async fn bump(&mut self) -> micro::Result<u64> {
        Ok(self.tally.produced.load(Ordering::SeqCst))
    }
}

/// Starts a `Feed` under `name`; returns it with its counters.
pub async fn start_feed(name: &str) -> (micro::RunningService, Arc<Tally>) {
    let feed = Feed::default();
    let tally = feed.tally.clone();
    let service = crate::service(name)
        .handle(feed)
        .start()
        .await
        .expect("service starts");
    (service, tally)
}

/// A typed client of the feed registered as `name`, over the network or in-process.
pub fn feed_client(name: &str, wire: bool) -> FeedClient {
    let client = if wire {
        crate::wire_client()
    } else {
        crate::client()
    };
    FeedClient::with_service(client, name)
}
