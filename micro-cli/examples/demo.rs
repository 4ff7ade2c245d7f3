//! A small service to try the `micro` toolkit against; its tests run it as their service.
//!
//! ```sh
//! cargo run -p micro-cli --example demo            # serves `demo` until Ctrl-C
//! micro call demo Greeter.Hello '{"name":"Ada"}'    # in another terminal
//! ```
//!
//! Like any service it takes the `MICRO_*` variables and flags (`--server_name` to register
//! under another name, `--registry_address` for another registry directory). With
//! `DEMO_AUTH_SECRET` set, every call needs a JWT signed with that secret (HS256), as
//! `micro --token` sends it.

use std::time::Duration;

use micro::prelude::*;

/// The request of `Greeter.Hello`.
#[derive(Serialize, Deserialize, Debug)]
pub struct HelloRequest {
    /// Who to greet.
    pub name: String,
}

/// The reply of `Greeter.Hello`.
#[derive(Serialize, Deserialize, Debug)]
pub struct HelloReply {
    /// The greeting.
    pub message: String,
    /// Greetings made by this node so far.
    pub count: u64,
}

/// The demo service: greetings, failures on demand, a slow endpoint and an event log.
#[derive(Default, Debug)]
pub struct Greeter {
    greeted: u64,
    events: Vec<String>,
}

#[micro::service(name = "demo", version = "1.0.0")]
impl Greeter {
    /// Greets someone; an empty name is a 400.
    pub async fn hello(&mut self, req: HelloRequest) -> micro::Result<HelloReply> {
        if req.name.trim().is_empty() {
            return Err(Error::bad_request("demo", "name must not be empty"));
        }
        self.greeted += 1;
        Ok(HelloReply {
            message: format!("Hello, {}!", req.name),
            count: self.greeted,
        })
    }

    /// Fails with the status code asked for.
    pub async fn fail(&self, code: u16) -> micro::Result<()> {
        Err(Error::new(
            "demo",
            code,
            format_args!("failing with {code} as asked"),
        ))
    }

    /// Answers after `ms` milliseconds, with `ms`.
    pub async fn sleep(&self, ms: u64) -> micro::Result<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    /// The W3C trace id of this call, if it belongs to a trace.
    pub async fn trace(&self, ctx: &micro::Context) -> micro::Result<Option<String>> {
        Ok(ctx.trace().map(|t| t.trace_id_hex()))
    }

    /// The events received on `demo.events`, oldest first, as JSON text.
    pub async fn events(&self) -> micro::Result<Vec<String>> {
        Ok(self.events.clone())
    }

    /// Keeps every event published on `demo.events`.
    #[micro::subscribe(topic = "demo.events")]
    async fn on_event(&mut self, event: serde_json::Value) -> micro::Result<()> {
        self.events.push(event.to_string());
        Ok(())
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
    let mut service = Service::new("demo").version("1.0.0");
    if let Ok(secret) = std::env::var("DEMO_AUTH_SECRET") {
        service = service.layer(micro::auth::AuthLayer::new(
            micro::auth::Jwt::hs256(secret),
            micro::auth::Rules::default(),
        ));
    }
    service.handle(Greeter::default()).run().await
}
