//! Read and write turns: `&self` handlers that wait on I/O run together; a `&mut self`
//! handler runs alone, so the I/O a write needs is done before it, in a read.
//!
//! ```text
//! cargo run --example turns
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use micro::prelude::*;

/// What a price was, and which version of the stock it was quoted against.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Quote {
    pub sku: String,
    pub cents: u64,
    pub version: u64,
}

/// Another service, which takes a while to answer, as a real one does.
#[derive(Default)]
pub struct Pricing;

#[micro::service(name = "pricing")]
impl Pricing {
    pub async fn price(&self, sku: String) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(100 + sku.len() as u64)
    }
}

/// Stock per SKU; the version changes with every reservation.
pub struct Inventory {
    stock: HashMap<String, u64>,
    version: u64,
}

#[micro::service(name = "inventory")]
impl Inventory {
    /// A read turn that waits on slow storage: 64 of these wait together, not one by one.
    pub async fn stock(&self, sku: String) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(self.stock.get(&sku).copied().unwrap_or(0))
    }

    /// The I/O a reservation needs, done in a read turn: a call to another service, through
    /// the service's own client.
    pub async fn quote(&self, ctx: &micro::Context, sku: String) -> micro::Result<Quote> {
        let cents = PricingClient::new(ctx.client().clone())
            .price(sku.clone())
            .await?;
        Ok(Quote {
            sku,
            cents,
            version: self.version,
        })
    }

    /// The write turn: no await, so it holds up nothing. A quote made against an older
    /// version is refused, and the caller asks for a new one.
    pub async fn reserve(&mut self, quote: Quote) -> micro::Result<u64> {
        if quote.version != self.version {
            return Err(Error::conflict(
                "inventory",
                format_args!("quote for version {} is stale; quote again", quote.version),
            ));
        }
        let left = self.stock.get_mut(&quote.sku).filter(|n| **n > 0);
        let Some(left) = left else {
            return Err(Error::conflict("inventory", "out of stock"));
        };
        *left -= 1;
        self.version += 1;
        Ok(*left)
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    // One runtime: the inventory service finds the pricing service in-process.
    let runtime = micro::Runtime::in_memory();
    let pricing = runtime.service("pricing").handle(Pricing).start().await?;
    let inventory = runtime
        .service("inventory")
        .handle(Inventory {
            stock: HashMap::from([("kettle".to_owned(), 3)]),
            version: 0,
        })
        .start()
        .await?;
    let client = InventoryClient::new(inventory.client());

    // 64 reads, each waiting 10 ms: together about 10 ms, not 640 ms.
    let started = Instant::now();
    let reads: Vec<_> = (0..64)
        .map(|_| tokio::spawn(client.stock("kettle".into()).into_future()))
        .collect();
    for read in reads {
        read.await.expect("read task")?;
    }
    println!("64 reads of 10 ms each took {:?}", started.elapsed());
    let stats = &inventory.stats()[0];
    println!("most reads at once: {}", stats.reads_peak);

    // Quote (read, with I/O), then reserve (write, without).
    let quote = client.quote("kettle".into()).await?;
    println!(
        "quoted {} cents; {} left",
        quote.cents,
        client.reserve(quote.clone()).await?
    );

    // The same quote again is stale: the reservation changed the version.
    let err = client.reserve(quote).await.unwrap_err();
    println!("again: {err}");
    let fresh = client.quote("kettle".into()).await?;
    println!("quoted again; {} left", client.reserve(fresh).await?);

    inventory.stop().await;
    pricing.stop().await;
    Ok(())
}
