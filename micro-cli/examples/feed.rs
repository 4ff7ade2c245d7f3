//! A streaming service to try `micro stream` and the gateway's Server-Sent Events against;
//! the toolkit's tests run it as their service.
//!
//! ```sh
//! cargo run -p micro-cli --example feed                 # serves `feed` until Ctrl-C
//! micro stream feed Feed.Count 3                        # in another terminal: 0, 1, 2
//! printf '1\n2\n3\n' | micro stream feed Feed.Sum        # 6
//! ```

use futures_util::StreamExt;
use micro::Streaming;
use micro::prelude::*;

/// Streams of numbers and words.
#[derive(Default, Debug)]
pub struct Feed;

#[micro::service(name = "feed", version = "1.0.0")]
impl Feed {
    /// Counts from 0 up to `n`, excluded.
    pub async fn count(&self, n: u64) -> micro::Result<Streaming<u64>> {
        Ok(Streaming::iter(0..n))
    }

    /// Counts from 0, then fails at `n` with a 409.
    pub async fn fail_at(&self, n: u64) -> micro::Result<Streaming<u64>> {
        let fail = futures_util::stream::iter([Err(Error::conflict(
            "feed",
            format_args!("failed at {n}"),
        ))]);
        Ok(Streaming::new(Streaming::iter(0..n).chain(fail)))
    }

    /// Adds up the numbers it is sent.
    pub async fn sum(&self, mut numbers: Streaming<i64>) -> micro::Result<i64> {
        let mut total = 0;
        while let Some(n) = numbers.next().await {
            total += n?;
        }
        Ok(total)
    }

    /// Answers each word in capitals, as it arrives.
    pub async fn upper(&self, words: Streaming<String>) -> micro::Result<Streaming<String>> {
        Ok(Streaming::new(words.map(|w| w.map(|w| w.to_uppercase()))))
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "micro=info".into()),
        )
        .init();
    Service::new("feed").handle(Feed).run().await
}
