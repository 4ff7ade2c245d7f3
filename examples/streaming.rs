//! Streams of every shape: a server stream, a client stream and a bidirectional stream,
//! over TCP and in-process.
//!
//! ```text
//! cargo run --example streaming
//! ```

use std::sync::Arc;

use futures_util::StreamExt;
use micro::Streaming;
use micro::prelude::*;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Tick {
    pub seq: u32,
    pub price: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub trades: u32,
    pub volume: u64,
}

/// A market: its prices are shared with the streams it hands out, which outlive each turn.
#[derive(Default)]
pub struct Market {
    prices: Arc<Vec<u32>>,
}

#[micro::service(name = "market")]
impl Market {
    /// Server stream: `n` ticks of the current prices, produced as fast as the reader reads.
    pub async fn ticks(&self, n: u32) -> micro::Result<Streaming<Tick>> {
        let prices = self.prices.clone();
        let (tx, rx) = Streaming::channel(8);
        tokio::spawn(async move {
            for seq in 0..n {
                let price = prices.get(seq as usize % prices.len().max(1)).copied();
                let tick = Tick {
                    seq,
                    price: price.unwrap_or(100),
                };
                if tx.send(tick).await.is_err() {
                    return; // the reader went away
                }
            }
        });
        Ok(rx)
    }

    /// Client stream: records trade sizes as they arrive, then sums them up. A write turn,
    /// since it changes the prices.
    pub async fn record(&mut self, mut sizes: Streaming<u32>) -> micro::Result<Summary> {
        let mut prices = Vec::new();
        let mut volume = 0u64;
        while let Some(size) = sizes.next().await {
            let size = size?;
            volume += u64::from(size);
            prices.push(100 + size % 7);
        }
        let trades = prices.len() as u32;
        self.prices = Arc::new(prices);
        Ok(Summary { trades, volume })
    }

    /// Bidirectional: answers each quote request as it arrives.
    pub async fn quote(&self, symbols: Streaming<String>) -> micro::Result<Streaming<String>> {
        let prices = self.prices.clone();
        Ok(Streaming::new(symbols.map(move |symbol| {
            let symbol = symbol?;
            let price = prices.first().copied().unwrap_or(100) + symbol.len() as u32;
            Ok(format!("{symbol}: {price}"))
        })))
    }
}

async fn tour(label: &str, market: &MarketClient) -> micro::Result<()> {
    let summary = market.record(Streaming::iter([5, 12, 40, 3])).await?;
    println!(
        "{label} client stream: recorded {} trades, volume {}",
        summary.trades, summary.volume
    );

    let mut ticks = market.ticks(5).await?;
    while let Some(tick) = ticks.next().await {
        let tick = tick?;
        println!("{label} server stream: tick {} at {}", tick.seq, tick.price);
    }

    let (symbols, requests) = Streaming::channel(1);
    let mut quotes = market.quote(requests).await?;
    for symbol in ["ACME", "INITECH", "UMBRELLA"] {
        symbols.send(symbol.to_owned()).await.ok();
        if let Some(quote) = quotes.next().await {
            println!("{label} bidi stream: {}", quote?);
        }
    }
    drop(symbols);
    assert!(quotes.next().await.is_none(), "a clean end");
    Ok(())
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "micro=warn".into()),
        )
        .init();
    let service = micro::Service::new("market")
        .handle(Market::default())
        .start()
        .await?;
    println!("market listening on {}", service.address());

    // Over TCP: each stream is framed on the one connection, with flow control.
    let wire = MarketClient::new(micro::Client::builder().fast_path(false).build());
    tour("tcp:       ", &wire).await?;

    // In the same process: the handler's stream is handed over, never encoded.
    tour("in-process:", &MarketClient::new(service.client())).await?;

    service.stop().await;
    Ok(())
}
