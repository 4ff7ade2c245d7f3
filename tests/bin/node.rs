//! A process for the cross-process tests.
//!
//! ```text
//! test-node serve NAME [--micro flags]   serve `Work` as NAME until SIGTERM / Ctrl-C
//! test-node call NAME COUNT              call NAME COUNT times, print one line per reply
//! test-node sub TOPIC [QUEUE]            subscribe through the default broker, print
//!                                        `ready`, then `got BODY` per message, until killed
//! test-node jsub ADDR TOPIC DURABLE       the same through JetStream at ADDR, 20 ms per
//!                                        message, redelivery after 1 s
//! test-node host-serve NAME              serve `Work` as NAME, print `serving ADDRESS` once
//!                                        registered, stop cleanly on SIGTERM / Ctrl-C
//! test-node load NAME COUNT PERIOD_MS TIMEOUT_MS
//!                                        call NAME's idempotent `Work.Id` COUNT times, one
//!                                        every PERIOD_MS, each with a TIMEOUT_MS deadline;
//!                                        print `ok PID` or `err CODE DETAIL` per call
//! test-node vessel | consignment         serve the shippy-like services (see below), print
//!                                        `serving ADDRESS` once registered
//! test-node create COUNT                 call `consignment` COUNT times, print `created
//!                                        ID VESSEL_PID` per reply
//! test-node wait-tcp HOST:PORT [MS]      wait (at most MS ms, default 20 s) until something
//!                                        accepts there; fail if nothing does
//! ```
//!
//! All take their settings from `MICRO_*` variables and flags, like any service.

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

    /// This process's id: safe to ask twice.
    #[micro(idempotent)]
    pub async fn id(&self) -> micro::Result<u32> {
        Ok(std::process::id())
    }
}

/// A vessel, as the shippy tutorial's vessel service finds one.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Vessel {
    id: String,
    /// The process that answered, so tests can tell where the call went.
    pid: u32,
}

#[derive(Default)]
struct Vessels;

#[micro::service(name = "vessel")]
impl Vessels {
    /// A vessel that can carry `weight`.
    pub async fn find_available(&self, weight: u32) -> micro::Result<Vessel> {
        Ok(Vessel {
            id: format!("vessel-{weight}"),
            pid: std::process::id(),
        })
    }
}

/// Stores consignments: asks the vessel service (elsewhere) for a vessel from inside its
/// handler, through the service's own client, then announces the consignment on
/// `consignment.created`.
struct Consignments;

#[micro::service(name = "consignment")]
impl Consignments {
    /// Books consignment `id` on a vessel; returns the vessel.
    pub async fn create(&self, ctx: &Context, id: u32) -> micro::Result<Vessel> {
        let vessel = VesselsClient::new(ctx.client().clone())
            .find_available(id)
            .await?;
        ctx.client()
            .publish("consignment.created", &format!("{id} on {}", vessel.id))
            .await?;
        Ok(vessel)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // micro's own subscriber: `RUST_LOG` logs and, with `OTEL_EXPORTER_OTLP_ENDPOINT`, OTLP.
    micro::telemetry::init_logs(micro::telemetry::LogFormat::Text);
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("serve") => serve(&args).await,
        Some("call") => call(&args).await,
        Some("sub") => sub(&args).await,
        Some("jsub") => jsub(&args).await,
        Some("host-serve") => {
            let name = args.get(2).cloned().unwrap_or_else(|| "work".into());
            serve_until_signal(Service::new(name).rename().handle(Work)).await
        }
        Some("load") => load(&args).await,
        Some("vessel") => serve_until_signal(Service::new("vessel").handle(Vessels)).await,
        Some("consignment") => {
            serve_until_signal(Service::new("consignment").handle(Consignments)).await
        }
        Some("create") => create(&args).await,
        Some("wait-tcp") => wait_tcp(&args).await,
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
    let client = WorkClient::with_service(micro::Runtime::from_process()?.client(), name.as_str());
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

/// Starts `service`, prints the address it registered, serves until SIGTERM or Ctrl-C.
async fn serve_until_signal(service: Service) -> micro::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::internal("test-node", e))?;
    // Variables and flags, as `Service::run` reads them.
    let running = service
        .runtime(micro::Runtime::from_process()?)
        .start()
        .await?;
    println!("serving {}", running.address());
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    running.stop().await;
    micro::telemetry::otel::shutdown();
    Ok(())
}

async fn load(args: &[String]) -> micro::Result<()> {
    let number = |i: usize| -> micro::Result<u64> {
        args.get(i).and_then(|n| n.parse().ok()).ok_or_else(|| {
            Error::bad_request("test-node", "usage: load NAME COUNT PERIOD_MS TIMEOUT_MS")
        })
    };
    let name = args.get(2).cloned().unwrap_or_else(|| "work".into());
    let (count, period, timeout) = (number(3)?, number(4)?, number(5)?);
    let client = WorkClient::with_service(micro::Runtime::from_process()?.client(), name.as_str());
    let mut every = tokio::time::interval(Duration::from_millis(period));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        every.tick().await;
        match client.id().timeout(Duration::from_millis(timeout)).await {
            Ok(pid) => println!("ok {pid}"),
            Err(e) => println!("err {} {}", e.code, e.detail.replace('\n', " ")),
        }
    }
    println!("done");
    Ok(())
}

async fn create(args: &[String]) -> micro::Result<()> {
    let count: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
    let client = ConsignmentsClient::new(micro::Runtime::from_process()?.client());
    for id in 0..count {
        let vessel = client.create(id).await?;
        println!("created {id} {} {}", vessel.id, vessel.pid);
    }
    Ok(())
}

async fn wait_tcp(args: &[String]) -> micro::Result<()> {
    let addr = args
        .get(2)
        .ok_or_else(|| Error::bad_request("test-node", "usage: wait-tcp HOST:PORT"))?;
    let limit = Duration::from_millis(args.get(3).and_then(|ms| ms.parse().ok()).unwrap_or(20_000));
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr.as_str()).await.is_err() {
        if start.elapsed() > limit {
            return Err(Error::unavailable(
                "test-node",
                format_args!("nothing listens on {addr}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
