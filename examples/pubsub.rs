//! Events between services with the default embedded broker: no server to run.
//!
//! ```text
//! cargo run --example pubsub
//! ```
//!
//! An `inventory` service reserves stock for each order in its own mailbox (a
//! `#[micro::subscribe]` method updating `&mut self`, no lock); two instances of a `billing`
//! service share a queue group, so each order is billed once; a free-function subscriber
//! audits everything. Publishing waits until every target acknowledged the event.

use std::collections::HashMap;

use micro::prelude::*;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct OrderPlaced {
    pub id: u32,
    pub sku: String,
    pub quantity: u32,
}

#[derive(Default)]
pub struct Inventory {
    reserved: HashMap<String, u32>,
}

#[micro::service(name = "inventory")]
impl Inventory {
    #[micro::subscribe(topic = "order.placed")]
    async fn reserve(&mut self, order: OrderPlaced) -> micro::Result<()> {
        *self.reserved.entry(order.sku).or_default() += order.quantity;
        Ok(())
    }

    /// Units reserved so far, per SKU.
    pub async fn reserved(&self) -> micro::Result<HashMap<String, u32>> {
        Ok(self.reserved.clone())
    }
}

pub struct Billing {
    instance: &'static str,
    billed: Vec<u32>,
}

#[micro::service(name = "billing")]
impl Billing {
    #[micro::subscribe(topic = "order.placed", queue = "billing")]
    async fn bill(&mut self, ctx: &Context, order: OrderPlaced) -> micro::Result<()> {
        let by = ctx.metadata().get("placed-by").map_or("?", String::as_str);
        println!(
            "  billing {}: order {} (placed by {by})",
            self.instance, order.id
        );
        self.billed.push(order.id);
        Ok(())
    }

    /// Orders this instance billed.
    pub async fn billed(&self) -> micro::Result<Vec<u32>> {
        Ok(self.billed.clone())
    }
}

/// Audits every order.
#[micro::subscribe(topic = "order.placed")]
async fn audit(order: OrderPlaced) -> micro::Result<()> {
    println!(
        "  audit: order {} for {} x {}",
        order.id, order.quantity, order.sku
    );
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
    let inventory = Service::new("inventory")
        .handle(Inventory::default())
        .handle(audit)
        .start()
        .await?;
    let billing_a = Service::new("billing")
        .handle(Billing {
            instance: "a",
            billed: Vec::new(),
        })
        .start()
        .await?;
    let billing_b = Service::new("billing")
        .handle(Billing {
            instance: "b",
            billed: Vec::new(),
        })
        .start()
        .await?;

    let client = Client::new();
    for (id, sku) in [(1, "crate"), (2, "pallet"), (3, "crate"), (4, "container")] {
        println!("publishing order {id}");
        client
            .publish(
                "order.placed",
                &OrderPlaced {
                    id,
                    sku: sku.into(),
                    quantity: 2,
                },
            )
            .metadata("placed-by", "the pubsub example")
            .await?;
    }

    let reserved = InventoryClient::new(client.clone()).reserved().await?;
    let mut reserved: Vec<_> = reserved.into_iter().collect();
    reserved.sort();
    println!("inventory reserved: {reserved:?}");
    let a = billing_a.stats()[0].calls;
    let b = billing_b.stats()[0].calls;
    println!(
        "billing instances handled {a} + {b} = {} orders (each billed once)",
        a + b
    );

    billing_b.stop().await;
    billing_a.stop().await;
    inventory.stop().await;
    Ok(())
}
