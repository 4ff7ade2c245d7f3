//! A process for the cross-process tests.
//!
//! ```text
//! test-node serve NAME [--micro flags]   serve `Work` as NAME until SIGTERM / Ctrl-C
//! test-node call NAME COUNT              call NAME COUNT times, print one line per reply
//! test-node sub TOPIC [QUEUE]            subscribe through the default broker, print
//!                                        `ready`, then `got BODY` per message, until killed
//! test-node jsub ADDR TOPIC DURABLE       the same through JetStream at ADDR, 20 ms per
//!                                        message, redelivery after 1 s
//! ```
//!
//! Both take their settings from `MICRO_*` variables and flags, like any service.

use std::process::ExitCode;
use std::time::Duration;

use micro::prelude::*;

/// Replies identify the process, so tests can tell instances apart.
#[derive(Default)]
struct Work;

#[micro::service(name = "work")]
impl Work {
    /// Sleeps `ms` inside the actor, then answers with this process's id.
    pub async fn work(&self, ms: u64) -> micro::Result<u32> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(std::process::id())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "micro=info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("serve") => serve(&args).await,
        Some("call") => call(&args).await,
        Some("sub") => sub(&args).await,
        Some("jsub") => jsub(&args).await,
        _ => Err(Error::bad_request(
            "test-node",
            "usage: test-node serve|call NAME …",
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test-node: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &[String]) -> micro::Result<()> {
    let name = args.get(2).cloned().unwrap_or_else(|| "work".into());
    Service::new(name).rename().handle(Work).run().await
}

async fn call(args: &[String]) -> micro::Result<()> {
    let name = args.get(2).cloned().unwrap_or_else(|| "work".into());
    let count: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let client = WorkClient::with_service(Client::new(), name.as_str());
    for _ in 0..count {
        let pid = client.work(0).await?;
        println!("reply from {pid}");
    }
    Ok(())
}

async fn sub(args: &[String]) -> micro::Result<()> {
    use micro::broker::{Message, SubscribeOptions, handler};
    let topic = args.get(2).cloned().unwrap_or_else(|| "events".into());
    let mut opts = SubscribeOptions::default();
    if let Some(queue) = args.get(3) {
        opts = opts.queue(queue.clone());
    }
    let runtime = micro::Runtime::from_process()?;
    let _subscription = runtime
        .broker()
        .subscribe(
            &topic,
            opts,
            handler(|m: Message| {
                println!("got {}", String::from_utf8_lossy(&m.body));
                async { Ok(()) }
            }),
        )
        .await?;
    println!("ready");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

async fn jsub(args: &[String]) -> micro::Result<()> {
    use micro::broker::{Broker, Message, NatsBroker, SubscribeOptions, handler};
    let (Some(addr), Some(topic), Some(durable)) = (args.get(2), args.get(3), args.get(4)) else {
        return Err(Error::bad_request(
            "test-node",
            "usage: jsub ADDR TOPIC DURABLE",
        ));
    };
    let broker = NatsBroker::new(addr.as_str()).jetstream(true);
    let opts = SubscribeOptions::default()
        .durable(durable.clone())
        .ack_wait(Duration::from_secs(1));
    let _subscription = broker
        .subscribe(
            topic,
            opts,
            handler(|m: Message| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                println!("got {}", String::from_utf8_lossy(&m.body));
                Ok(())
            }),
        )
        .await?;
    println!("ready");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
