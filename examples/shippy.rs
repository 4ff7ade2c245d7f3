//! The services of go-micro's classic "shippy" tutorial, each in its own process.
//!
//! ```text
//! cargo run --example shippy              # runs every process below, prints what happens
//! cargo run --example shippy -- vessel    # terminal 1: the vessel service
//! cargo run --example shippy -- server    # terminal 2: the consignment service
//! cargo run --example shippy -- counter   # terminal 3: counts consignment.created events
//! cargo run --example shippy -- client    # terminal 4: creates a consignment, lists them all
//! cargo run --example shippy -- client my-consignment.json
//! ```
//!
//! The consignment service asks the vessel service for a vessel that fits each new
//! consignment, from inside its handler, through the generated `VesselClient` on the
//! handler's own client (`ctx.client()`): whatever registry and broker the consignment
//! service is configured with, its calls and events use the same. With no configuration,
//! the processes find each other through the host-local registry and events travel through
//! the embedded broker. Every process takes the usual `MICRO_*` variables and flags
//! (`--help`), for example `--registry etcd --registry_address 127.0.0.1:2379 --broker nats`
//! (with the `etcd` and `nats` features of `micro`).

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use micro::prelude::*;

const SERVICE: &str = "shippy.service.consignment";
const VESSELS: &str = "shippy.service.vessel";
const CREATED: &str = "consignment.created";

/// What a consignment needs of a vessel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Specification {
    /// Containers to carry.
    pub capacity: i32,
    /// Kilograms to carry.
    pub max_weight: i32,
}

/// A vessel of the fleet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Vessel {
    /// The vessel's id, recorded on the consignments it carries.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Containers it carries at most.
    pub capacity: i32,
    /// Kilograms it carries at most.
    pub max_weight: i32,
    /// Whether it takes bookings.
    pub available: bool,
}

/// The fleet.
#[derive(Debug)]
pub struct Vessels {
    fleet: Vec<Vessel>,
}

impl Default for Vessels {
    fn default() -> Self {
        let vessel = |id: &str, name: &str, capacity, max_weight| Vessel {
            id: id.into(),
            name: name.into(),
            capacity,
            max_weight,
            available: true,
        };
        Self {
            fleet: vec![
                vessel("vessel001", "Boaty McBoatface", 500, 200_000),
                vessel("vessel002", "Kane's Salty Secret", 10, 1_000),
            ],
        }
    }
}

#[micro::service(name = "shippy.service.vessel", version = "1.0.0")]
impl Vessels {
    /// The first available vessel that can carry `spec`.
    #[micro(idempotent)]
    pub async fn find_available(&self, spec: Specification) -> micro::Result<Vessel> {
        self.fleet
            .iter()
            .find(|v| v.available && v.capacity >= spec.capacity && v.max_weight >= spec.max_weight)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(
                    VESSELS,
                    format_args!(
                        "no vessel carries {} container(s) of {} kg",
                        spec.capacity, spec.max_weight
                    ),
                )
            })
    }
}

/// A shipping container in a consignment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Container {
    /// The container's id.
    pub id: String,
    /// Who owns what is inside.
    pub customer_id: String,
    /// Where it comes from.
    pub origin: String,
    /// Who booked it.
    pub user_id: String,
}

/// Goods to ship, in containers, on a vessel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Consignment {
    /// Given by the service when empty.
    #[serde(default)]
    pub id: String,
    /// What is shipped.
    pub description: String,
    /// In kilograms; must be positive.
    pub weight: i32,
    /// The containers it fills.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// The vessel carrying it.
    #[serde(default)]
    pub vessel_id: String,
}

/// The reply of both endpoints, as in the tutorial's protobuf.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Response {
    /// Whether a consignment was created.
    pub created: bool,
    /// The consignment created.
    pub consignment: Option<Consignment>,
    /// Every consignment, for `get_consignments`.
    pub consignments: Vec<Consignment>,
}

/// Published on `consignment.created` for each new consignment.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ConsignmentCreated {
    /// The consignment's id.
    pub id: String,
    /// Its weight in kilograms.
    pub weight: i32,
}

/// Stores consignments in memory; the actor owns the list, so no lock.
#[derive(Debug, Default)]
pub struct Shipping {
    repo: Vec<Consignment>,
}

#[micro::service(name = "shippy.service.consignment", version = "1.0.0")]
impl Shipping {
    /// Stores a consignment on a vessel that can carry it, giving it an id if it has none.
    pub async fn create_consignment(
        &mut self,
        ctx: &Context,
        mut c: Consignment,
    ) -> micro::Result<Response> {
        if c.weight <= 0 {
            return Err(Error::bad_request(SERVICE, "weight must be positive"));
        }
        // The service's own client: its registry, its deadline, its trace.
        let vessel = VesselsClient::new(ctx.client().clone())
            .find_available(Specification {
                capacity: c.containers.len() as i32,
                max_weight: c.weight,
            })
            .await?;
        c.vessel_id = vessel.id;
        if c.id.is_empty() {
            c.id = format!("consignment-{}", self.repo.len() + 1);
        }
        self.repo.push(c.clone());
        let event = ConsignmentCreated {
            id: c.id.clone(),
            weight: c.weight,
        };
        // The consignment is stored whatever happens to the event: report, don't fail.
        if let Err(e) = ctx.client().publish(CREATED, &event).await {
            eprintln!("{CREATED} not delivered: {e}");
        }
        Ok(Response {
            created: true,
            consignment: Some(c),
            ..Response::default()
        })
    }

    /// Every consignment stored so far.
    pub async fn get_consignments(&self) -> micro::Result<Response> {
        Ok(Response {
            consignments: self.repo.clone(),
            ..Response::default()
        })
    }
}

/// Counts consignments from their events, in its own mailbox: no lock.
#[derive(Default, Debug)]
pub struct Counter {
    created: u64,
    kilos: i64,
}

#[micro::service(name = "shippy.service.counter")]
impl Counter {
    #[micro::subscribe(topic = "consignment.created", queue = "counter")]
    async fn on_created(&mut self, ev: ConsignmentCreated) -> micro::Result<()> {
        self.created += 1;
        self.kilos += i64::from(ev.weight);
        Ok(())
    }

    /// Consignments created so far, and their total weight.
    pub async fn count(&self) -> micro::Result<(u64, i64)> {
        Ok((self.created, self.kilos))
    }
}

fn sample() -> Consignment {
    Consignment {
        id: String::new(),
        description: "This is a test consignment".into(),
        weight: 550,
        containers: vec![Container {
            id: "cont001".into(),
            customer_id: "cust001".into(),
            origin: "Manchester, United Kingdom".into(),
            user_id: "user001".into(),
        }],
        vessel_id: String::new(),
    }
}

async fn vessel() -> micro::Result<()> {
    Service::new(VESSELS).handle(Vessels::default()).run().await
}

async fn server() -> micro::Result<()> {
    Service::new(SERVICE)
        .handle(Shipping::default())
        .run()
        .await
}

async fn counter() -> micro::Result<()> {
    Service::new("shippy.service.counter")
        .handle(Counter::default())
        .run()
        .await
}

async fn client(file: Option<&str>) -> micro::Result<()> {
    let consignment = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::bad_request("shippy", format_args!("cannot read {path}: {e}"))
            })?;
            serde_json::from_str(&text)
                .map_err(|e| Error::bad_request("shippy", format_args!("{path}: {e}")))?
        }
        None => sample(),
    };
    // The same flags and variables as the services: the same registry.
    let client = micro::Runtime::from_process()?.client();
    let shipping = ShippingClient::new(client.clone());

    // The server may still be starting in the other terminal: wait for it, a little.
    let start = Instant::now();
    let created = loop {
        match shipping.create_consignment(consignment.clone()).await {
            Err(e) if e.code == 404 && start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other?,
        }
    };
    let c = created.consignment.expect("a created consignment");
    println!(
        "created: {} ({}, {} kg, {} container(s))",
        c.id,
        c.description,
        c.weight,
        c.containers.len()
    );
    let all = shipping.get_consignments().await?.consignments;
    println!("all consignments ({}):", all.len());
    for c in &all {
        println!(
            "  {} {:?} {} kg on {}",
            c.id, c.description, c.weight, c.vessel_id
        );
    }
    match CounterClient::new(client).count().await {
        Ok((n, kilos)) => println!("counter service: {n} consignment(s), {kilos} kg in all"),
        Err(e) => println!("counter service not reachable: {e}"),
    }
    Ok(())
}

/// Runs vessel, server and counter processes and two client processes one after the other,
/// prints the clients' output, and stops the services.
fn demo() -> micro::Result<()> {
    let me = std::env::current_exe()?;
    // The services' logs would interleave with the demo's output: warnings only, unless
    // RUST_LOG asks for more.
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let spawn = |what: &str| {
        Command::new(&me)
            .arg(what)
            .env("RUST_LOG", &log)
            .stdout(Stdio::null())
            .spawn()
    };
    let mut counter = spawn("counter")?;
    println!("started the counter process (pid {})", counter.id());
    wait_for("shippy.service.counter")?;
    let mut vessel = spawn("vessel")?;
    println!("started the vessel process (pid {})", vessel.id());
    wait_for(VESSELS)?;
    let mut server = spawn("server")?;
    println!("started the server process (pid {})", server.id());
    let result = (|| -> micro::Result<()> {
        for run in 1..=2 {
            let out = Command::new(&me).arg("client").output()?;
            print!(
                "client process {run}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            if !out.status.success() {
                return Err(Error::internal(
                    "shippy",
                    String::from_utf8_lossy(&out.stderr).trim(),
                ));
            }
        }
        Ok(())
    })();
    for child in [&mut server, &mut vessel, &mut counter] {
        // SIGTERM, as an operator would: the service deregisters and drains. Should the
        // signal fail, a plain kill still ends the child rather than waiting forever.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
            let _ = child.kill();
        }
        let status = child.wait()?;
        println!("process {} stopped ({status})", child.id());
    }
    result
}

/// Waits (at most 10 s) until `service` is registered.
fn wait_for(service: &str) -> micro::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let runtime = micro::Runtime::from_process()?;
        let registry = runtime.registry();
        let start = Instant::now();
        while registry.get_service(service).await.is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(Error::unavailable(
                    "shippy",
                    format_args!("{service} never started"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The services leave logging to `Service::run`: its default subscriber prints their
    // start-up and shutdown (`RUST_LOG`, `MICRO_LOG_FORMAT`) and, built with micro's `otel`
    // feature, exports their spans when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The client and
    // the demo print warnings only.
    if !matches!(
        args.get(1).map(String::as_str),
        Some("vessel" | "server" | "counter")
    ) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "micro=warn".into()),
            )
            .init();
    }
    let result = match args.get(1).map(String::as_str) {
        Some("vessel") => vessel().await,
        Some("server") => server().await,
        Some("counter") => counter().await,
        Some("client") => client(args.get(2).map(String::as_str)).await,
        None => tokio::task::spawn_blocking(demo)
            .await
            .unwrap_or_else(|e| Err(Error::internal("shippy", e))),
        Some(other) => Err(Error::bad_request(
            "shippy",
            format_args!(
                "unknown command {other}: use vessel, server, counter, client [FILE], or nothing for the demo"
            ),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shippy: {e}");
            ExitCode::FAILURE
        }
    }
}
