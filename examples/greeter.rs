//! A service and its generated client: first in one process, then over TCP.
//!
//! ```text
//! cargo run --example greeter
//! ```

use std::time::Duration;

use micro::prelude::*;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HelloRequest {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HelloReply {
    pub message: String,
    pub count: u64,
}

/// Counts greetings; the actor owns the count, so `&mut self` needs no lock.
#[derive(Default)]
pub struct Greeter {
    greeted: u64,
}

#[micro::service(name = "greeter", version = "1.0.0")]
impl Greeter {
    /// Greets someone by name; the caller may say who it is in metadata.
    pub async fn say_hello(
        &mut self,
        ctx: &Context,
        req: HelloRequest,
    ) -> micro::Result<HelloReply> {
        if req.name.is_empty() {
            return Err(Error::bad_request("greeter", "name must not be empty"));
        }
        self.greeted += 1;
        let from = ctx.metadata().get("from").map_or("", String::as_str);
        Ok(HelloReply {
            message: format!("Hello, {}!{}", req.name, from_suffix(from)),
            count: self.greeted,
        })
    }

    /// How many greetings so far.
    pub async fn count(&self) -> micro::Result<u64> {
        Ok(self.greeted)
    }
}

fn from_suffix(from: &str) -> String {
    if from.is_empty() {
        String::new()
    } else {
        format!(" (asked by {from})")
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "micro=info".into()),
        )
        .init();

    let service = micro::Service::new("greeter")
        .version("1.0.0")
        .handle(Greeter::default())
        .start()
        .await?;
    println!("greeter listening on {}", service.address());

    // In the same process: the typed request goes straight into the actor's mailbox.
    let local = GreeterClient::new(service.client());
    let reply = local.say_hello(HelloRequest { name: "Ada".into() }).await?;
    println!("in-process: {} (greeting #{})", reply.message, reply.count);

    // Over TCP: found through the registry, encoded with bincode, framed on a socket.
    let wire = GreeterClient::new(micro::Client::builder().fast_path(false).build());
    let reply = wire
        .say_hello(HelloRequest {
            name: "Grace".into(),
        })
        .timeout(Duration::from_millis(500))
        .metadata("from", "the tcp client")
        .await?;
    println!("over tcp:   {} (greeting #{})", reply.message, reply.count);

    // The same endpoint with JSON, the way tools call it.
    let json = micro::Client::builder()
        .fast_path(false)
        .build()
        .call_json(
            "greeter",
            "Greeter.SayHello",
            serde_json::json!({"name": "Linus"}),
        )
        .await?;
    println!("json:       {json}");

    // Errors travel as go-micro's error JSON.
    let err = wire
        .say_hello(HelloRequest {
            name: String::new(),
        })
        .await
        .unwrap_err();
    println!("error:      {err:#}");

    println!("total greetings: {}", wire.count().await?);
    service.stop().await;
    Ok(())
}
