//! Load generator: micro's echo service against a plain-TCP echo baseline, both served by a
//! child process so client and server costs can be told apart; then publish → handler
//! through each broker (memory, embedded, NATS core), see [`benches::pubsub`].
//!
//! ```text
//! cargo run --release -p benches --bin loadgen                 # full run, about a minute
//! cargo run --release -p benches --bin loadgen -- --quick      # 16 B only, a few cells
//! cargo run --release -p benches --bin loadgen -- --secs 0.5   # or LOADGEN_SECS=0.5
//! cargo run --release -p benches --bin loadgen -- --only micro # one side, for profiling
//! cargo run --release -p benches --bin loadgen -- --payload 65536 --cell 1x1024
//! cargo run --release -p benches --bin loadgen -- --pubsub-only # the brokers alone
//! cargo run --release -p benches --bin loadgen -- --turns-only  # read and write turns alone
//! cargo run --release -p benches --bin loadgen -- --quick --observe # tracing and metrics off vs on
//! ```
//!
//! `--observe` runs the micro echo cells twice in the same run, against two server children:
//! as by default (no subscriber, no metrics address), and with tracing and metrics on at both
//! ends: a subscriber that records micro's spans (`micro::trace=debug`, kept by a registry,
//! written nowhere: the cost of the spans themselves, not of an exporter), W3C context on
//! every call, and Prometheus metrics recorded per call.
//!
//! The child is this same binary run as `loadgen serve`. It prints the two addresses it
//! listens on; it exits when killed or when its stdin closes (so it never outlives us). The
//! embedded broker's subscriber is another such child, `loadgen subscribe embedded DIR`.
//! `--only` (a profiling aid) runs no pub/sub; `--payload` and `--cell` apply to the RPC
//! tables only, `--broker` (repeatable) to the pub/sub section only.
//!
//! The turns section ([`benches::turns`]) calls handlers that wait on a timer, 64 callers
//! over one TCP connection to one actor: `&self` handlers waiting 10 ms (ideal: 64 / 10 ms =
//! 6,400 calls/s), then 90 % reads and 10 % writes, each waiting 1 ms. Each runs against the
//! actor with the default read limit and against one with `reads = 1`, how every actor ran
//! before turns.

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benches::cpu::Sample;
use benches::process::KillOnDrop;
use benches::tally::{Tally, Window};
use benches::{Echo, EchoClient, payload, size_name};
use benches::{pubsub, raw, turns};
use bytes::Bytes;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

type BoxError = Box<dyn Error + Send + Sync>;

const WARMUP: Duration = Duration::from_millis(200);
/// How long the child may take to print its addresses.
const STARTUP: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: loadgen [--quick] [--secs SECONDS] [--only micro|raw] \
[--payload BYTES]... [--cell CONNSxIN_FLIGHT]... [--pubsub-only] [--turns-only] [--observe] \
[--broker memory|embedded|nats]... (or LOADGEN_SECS=SECONDS)";

/// Callers in the turns section.
const TURN_CALLERS: usize = 64;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve().await,
        Some("subscribe") => return pubsub::serve_subscriber(&args[1..]).await,
        _ => {}
    }
    let plan = Plan::from_args(&args)?;
    if plan.observe {
        return observe_section(&plan).await;
    }
    if plan.rpc || plan.turns {
        let server = Server::spawn(false).await?;
        eprintln!(
            "server pid {}: micro on {}, raw on {}, turns on {} and {}",
            server.pid, server.micro, server.raw, server.turns, server.serial
        );
        if plan.rpc {
            rpc(&server, &plan).await?;
        }
        if plan.turns {
            turns_section(&server, &plan).await?;
        }
    }
    if let Some(pubsub) = &plan.pubsub {
        let run = pubsub::run(pubsub, &plan.brokers).await;
        pubsub::print_table(&run, pubsub);
        if run.rows.iter().any(pubsub::Row::failed) {
            return Err("some pub/sub measurements failed (see the table)".into());
        }
    }
    Ok(())
}

/// The RPC tables: micro against the raw baseline.
async fn rpc(server: &Server, plan: &Plan) -> Result<(), BoxError> {
    let mut rows = Vec::new();
    for &size in &plan.payloads {
        let body = payload(size);
        let micro = plan
            .run(Only::Micro, micro_latency(server, &body, plan))
            .await?;
        let raw = plan
            .run(Only::Raw, raw_latency(server, &body, plan))
            .await?;
        rows.push(progress(Row::new(size, Mode::Latency, 1, 1, micro, raw)));
        for &(conns, in_flight) in &plan.cells {
            let micro = micro_throughput(server, &body, conns, in_flight, plan.length);
            let micro = plan.run(Only::Micro, micro).await?;
            let raw = raw_throughput(server, &body, conns, in_flight, plan.length);
            let raw = plan.run(Only::Raw, raw).await?;
            rows.push(progress(Row::new(
                size,
                Mode::Throughput,
                conns,
                in_flight,
                micro,
                raw,
            )));
        }
    }
    print_tables(&rows, plan);
    Ok(())
}

/// What to run.
struct Plan {
    payloads: Vec<usize>,
    /// (connections, calls in flight) for throughput cells.
    cells: Vec<(usize, usize)>,
    latency_warmup: usize,
    latency_calls: usize,
    /// Measurement length of each throughput cell.
    length: Duration,
    only: Option<Only>,
    /// Whether to run the RPC tables (not with `--pubsub-only` or `--turns-only`).
    rpc: bool,
    /// Whether to run the turns section (not with `--only` or `--pubsub-only`).
    turns: bool,
    /// The pub/sub section, unless `--only` asked for one RPC side.
    pubsub: Option<pubsub::Plan>,
    /// The brokers it measures.
    brokers: Vec<pubsub::Kind>,
    /// Only micro's cells, with tracing and metrics off and on (`--observe`).
    observe: bool,
}

/// One side alone, so a profiler sees only its work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Micro,
    Raw,
}

impl Plan {
    fn from_args(args: &[String]) -> Result<Self, BoxError> {
        let (mut quick, mut pubsub_only, mut turns_only) = (false, false, false);
        let mut observe = false;
        let mut only = None;
        let (mut payloads, mut cells, mut brokers) = (Vec::new(), Vec::new(), Vec::new());
        let mut secs = match std::env::var("LOADGEN_SECS") {
            Ok(s) => Some(parse_secs(&s)?),
            Err(_) => None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--pubsub-only" => pubsub_only = true,
                "--turns-only" => turns_only = true,
                "--observe" => observe = true,
                "--broker" => {
                    let value = args.next().ok_or(USAGE)?;
                    let kind = pubsub::Kind::ALL.into_iter().find(|k| k.name() == value);
                    brokers.push(kind.ok_or_else(|| format!("unknown broker {value:?}\n{USAGE}"))?);
                }
                "--secs" => {
                    let value = args.next().ok_or(USAGE)?;
                    secs = Some(parse_secs(value)?);
                }
                "--only" => {
                    only = match args.next().map(String::as_str) {
                        Some("micro") => Some(Only::Micro),
                        Some("raw") => Some(Only::Raw),
                        _ => return Err(USAGE.into()),
                    };
                }
                "--payload" => {
                    let value = args.next().ok_or(USAGE)?;
                    match value.parse::<usize>() {
                        Ok(n) if n <= raw::MAX_FRAME / 2 => payloads.push(n),
                        _ => return Err(format!("bad payload size {value:?}\n{USAGE}").into()),
                    }
                }
                "--cell" => {
                    let value = args.next().ok_or(USAGE)?;
                    cells.push(parse_cell(value)?);
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            }
        }
        if pubsub_only && only.is_some() {
            return Err(format!("--pubsub-only runs no RPC side: drop --only\n{USAGE}").into());
        }
        if turns_only && (only.is_some() || pubsub_only) {
            return Err(
                format!("--turns-only runs the turns alone: drop the rest\n{USAGE}").into(),
            );
        }
        let length = Duration::from_secs_f64(secs.unwrap_or(1.0));
        let pubsub = match (only, quick) {
            _ if turns_only => None,
            (Some(_), _) => None,
            (None, true) => Some(pubsub::Plan::quick(length)),
            (None, false) => Some(pubsub::Plan::full(length)),
        };
        let mut plan = if quick {
            Plan {
                payloads: vec![16],
                cells: vec![(1, 1), (1, 128), (4, 1024)],
                latency_warmup: 200,
                latency_calls: 2_000,
                length,
                only,
                rpc: !pubsub_only && !turns_only,
                turns: only.is_none() && !pubsub_only,
                pubsub,
                brokers: pubsub::Kind::ALL.to_vec(),
                observe,
            }
        } else {
            Plan {
                payloads: vec![16, 1024, 64 * 1024],
                cells: [1, 4]
                    .into_iter()
                    .flat_map(|c| [1, 16, 128, 1024].map(|f| (c, f)))
                    .collect(),
                latency_warmup: 1_000,
                latency_calls: 10_000,
                length,
                only,
                rpc: !pubsub_only && !turns_only,
                turns: only.is_none() && !pubsub_only,
                pubsub,
                brokers: pubsub::Kind::ALL.to_vec(),
                observe,
            }
        };
        if !payloads.is_empty() {
            plan.payloads = payloads;
        }
        if !cells.is_empty() {
            plan.cells = cells;
        }
        if !brokers.is_empty() {
            plan.brokers = brokers;
        }
        Ok(plan)
    }
}

impl Plan {
    /// Runs `side` unless the other one alone was asked for.
    async fn run(
        &self,
        side: Only,
        measure: impl Future<Output = Result<Side, BoxError>>,
    ) -> Result<Side, BoxError> {
        if self.only.is_some_and(|only| only != side) {
            return Ok(Side::skipped());
        }
        measure.await
    }
}

fn parse_cell(s: &str) -> Result<(usize, usize), BoxError> {
    let cell = s.split_once('x').and_then(|(c, f)| {
        let (c, f) = (c.parse::<usize>().ok()?, f.parse::<usize>().ok()?);
        (1..=64).contains(&c).then_some(())?;
        (1..=16_384).contains(&f).then_some((c, f))
    });
    cell.ok_or_else(|| {
        format!("a cell is CONNSxIN_FLIGHT, 1-64 x 1-16384, not {s:?}\n{USAGE}").into()
    })
}

fn parse_secs(s: &str) -> Result<f64, BoxError> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 600.0 => Ok(secs),
        _ => Err(format!("seconds must be a number in (0, 600], not {s:?}\n{USAGE}").into()),
    }
}

/// Serves micro's echo and the raw echo until stdin closes.
async fn serve() -> Result<(), BoxError> {
    let mut service = micro::Service::new("echo")
        .address("127.0.0.1:0")
        .handle(Echo);
    if std::env::var_os(OBSERVE_VAR).is_some() {
        install_spans().modify(|t| *t = spans_on())?;
        service = service.runtime(micro::Runtime::new(metrics_on()?));
    }
    let service = service.start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let raw_addr = listener.local_addr()?;
    tokio::spawn(raw::serve(listener));
    let waiters = turns::serve().await?;
    println!("micro {}", service.address());
    println!("raw {raw_addr}");
    for (waiter, name) in &waiters {
        println!("{name} {}", waiter.address());
    }
    // The parent's end of our stdin closes when it exits, however it exits.
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    service.stop().await;
    for (waiter, _) in waiters {
        waiter.stop().await;
    }
    Ok(())
}

/// The child process; killed when dropped, so an error or panic here does not leave it
/// running.
struct Server {
    _child: KillOnDrop,
    pid: u32,
    micro: Arc<str>,
    raw: SocketAddr,
    /// The turns actor with the default read limit.
    turns: Arc<str>,
    /// The turns actor with `reads = 1`.
    serial: Arc<str>,
}

impl Server {
    /// With `observe`, the child records spans and metrics (see `--observe`).
    async fn spawn(observe: bool) -> Result<Self, BoxError> {
        let mut command = Command::new(std::env::current_exe()?);
        if observe {
            command.env(OBSERVE_VAR, "1");
        }
        let mut child = KillOnDrop(
            command
                .arg("serve")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
        let stdout = child.0.stdout.take().ok_or("child has no stdout")?;
        let pid = child.id();
        let mut guard = Server {
            _child: child,
            pid,
            micro: "".into(),
            raw: SocketAddr::from(([127, 0, 0, 1], 0)),
            turns: "".into(),
            serial: "".into(),
        };
        // If the child never answers, dropping the guard kills it, which ends the read.
        let read = tokio::task::spawn_blocking(move || read_addresses(stdout));
        let addresses = tokio::time::timeout(STARTUP, read)
            .await
            .map_err(|_| "the server process did not print its addresses in time")???;
        guard.micro = addresses.micro.into();
        guard.raw = addresses.raw;
        guard.turns = addresses.turns.into();
        guard.serial = addresses.serial.into();
        Ok(guard)
    }
}

/// Where the child serves what.
struct Addresses {
    micro: String,
    raw: SocketAddr,
    turns: String,
    serial: String,
}

fn read_addresses(stdout: impl Read) -> Result<Addresses, BoxError> {
    let (mut micro, mut raw, mut waiters) = (None, None, (None, None));
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.split_once(' ') {
            Some(("micro", addr)) => micro = Some(addr.to_owned()),
            Some(("raw", addr)) => raw = Some(addr.parse()?),
            Some((turns::TURNS, addr)) => waiters.0 = Some(addr.to_owned()),
            Some((turns::SERIAL, addr)) => waiters.1 = Some(addr.to_owned()),
            _ => return Err(format!("unexpected line from the server: {line:?}").into()),
        }
        if let (Some(micro), Some(raw), (Some(turns), Some(serial))) = (&micro, raw, &waiters) {
            return Ok(Addresses {
                micro: micro.clone(),
                raw,
                turns: turns.clone(),
                serial: serial.clone(),
            });
        }
    }
    Err("the server process exited before printing its addresses".into())
}

/// The turns section: see the module docs.
async fn turns_section(server: &Server, plan: &Plan) -> Result<(), BoxError> {
    // (name, read ms, write ms, tenths that are writes, ideal calls/s)
    let cells: [(&str, u64, u64, usize, Option<f64>); 2] = [
        ("10 ms reads", 10, 0, 0, Some(TURN_CALLERS as f64 / 0.010)),
        ("90/10, 1 ms", 1, 1, 1, None),
    ];
    let mut rows = Vec::new();
    let window = Window::after(WARMUP, plan.length);
    let timer = turns::timer_baseline(TURN_CALLERS, 10, window).await;
    eprintln!("10 ms timer  no micro    {:>8.0}/s", timer.rate(&window));
    let ideal = cells[0].4;
    rows.push(("10 ms timer", "no micro", ideal, window, timer));
    for (cell, read_ms, write_ms, tenths, ideal) in cells {
        for (actor, service, addr) in [
            ("reads = 64", turns::TURNS, &server.turns),
            ("reads = 1", turns::SERIAL, &server.serial),
        ] {
            let window = Window::after(WARMUP, plan.length);
            let mix = turns::measure(
                addr.clone(),
                service,
                TURN_CALLERS,
                (read_ms, write_ms, tenths),
                window,
            )
            .await;
            eprintln!(
                "{cell:<12} {actor:<10}  {:>8.0}/s  errors {}{}",
                mix.rate(&window),
                mix.errors(),
                mix.first_error()
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default()
            );
            rows.push((cell, actor, ideal, window, mix));
        }
    }
    println!();
    println!(
        "turns: {TURN_CALLERS} callers over 1 TCP connection to 1 actor, handlers waiting on a tokio timer; {:.1} s after {:.1} s of warm-up; times in µs",
        plan.length.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    println!(
        "the first row awaits the same timer in {TURN_CALLERS} tasks of this process, without micro: what the timer allows here"
    );
    println!(
        "{:<12} {:<10} | {:>8} {:>8} {:>6} | {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>6}",
        "cell",
        "actor",
        "calls/s",
        "ideal",
        "ratio",
        "read50",
        "read99",
        "writes/s",
        "write50",
        "write99",
        "errors"
    );
    println!("{}", "-".repeat(113));
    for (cell, actor, ideal, window, mix) in &rows {
        let rate = mix.rate(window);
        println!(
            "{cell:<12} {actor:<10} | {rate:>8.0} {:>8} {:>6} | {:>8.0} {:>8.0} | {:>8.0} {:>8.0} {:>8.0} | {:>6}",
            ideal.map_or("-".to_owned(), |i| format!("{i:.0}")),
            ideal.map_or("-".to_owned(), |i| format!("{:.2}", ratio(rate, i))),
            mix.reads.percentile_us(50.0),
            mix.reads.percentile_us(99.0),
            mix.writes.calls as f64 / window.length().as_secs_f64(),
            mix.writes.percentile_us(50.0),
            mix.writes.percentile_us(99.0),
            mix.errors(),
        );
    }
    Ok(())
}

/// One side (micro or raw) of one cell.
struct Side {
    tally: Tally,
    elapsed: Duration,
    cpu: Sample,
}

impl Side {
    fn skipped() -> Self {
        Side {
            tally: Tally::new(),
            elapsed: Duration::from_secs(1),
            cpu: Sample::default(),
        }
    }

    fn rate(&self) -> f64 {
        self.tally.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us_per_call(&self) -> f64 {
        self.per_call(self.cpu.total())
    }

    /// This process's share: the client's cost alone.
    fn client_cpu_us_per_call(&self) -> f64 {
        self.per_call(self.cpu.client)
    }

    fn per_call(&self, cpu: Duration) -> f64 {
        if self.tally.calls == 0 {
            return 0.0;
        }
        cpu.as_secs_f64() * 1e6 / self.tally.calls as f64
    }
}

fn micro_client() -> EchoClient {
    if OBSERVING.load(Ordering::Relaxed) {
        // Options that parsed once parse again.
        let runtime = micro::Runtime::new(metrics_on().expect("metrics options"));
        let client = runtime.client_builder().connections_per_node(1).build();
        return EchoClient::with_service(client, "echo");
    }
    let client = micro::Client::builder().connections_per_node(1).build();
    EchoClient::with_service(client, "echo")
}

/// Set in the server child that records spans and metrics.
const OBSERVE_VAR: &str = "LOADGEN_OBSERVE";

/// Whether the clients being made record metrics (`--observe`, its "on" half).
static OBSERVING: AtomicBool = AtomicBool::new(false);

type SpanFilter = reload::Handle<Targets, tracing_subscriber::Registry>;

/// A global subscriber whose filter starts closed; the handle opens it.
fn install_spans() -> SpanFilter {
    let (filter, handle) = reload::Layer::new(Targets::new());
    tracing_subscriber::registry().with(filter).init();
    handle
}

fn spans_on() -> Targets {
    Targets::new().with_target("micro::trace", tracing::Level::DEBUG)
}

/// Options that record metrics: an address makes the runtime count, whether or not a
/// service ever serves it.
fn metrics_on() -> Result<micro::config::Options, BoxError> {
    let options = micro::config::Options::resolve(
        |name: &str| (name == "MICRO_METRICS_ADDRESS").then(|| "127.0.0.1:0".to_owned()),
        &[],
    )?;
    Ok(options)
}

/// `--observe`: micro's echo cells against a plain server and client, then against a server
/// and client that record spans and metrics; one table.
async fn observe_section(plan: &Plan) -> Result<(), BoxError> {
    let spans = install_spans();
    let off = Server::spawn(false).await?;
    let on = Server::spawn(true).await?;
    let mut rows = Vec::new();
    for &size in &plan.payloads {
        let body = payload(size);
        let mut cells = vec![(Mode::Latency, 1, 1)];
        cells.extend(plan.cells.iter().map(|&(c, f)| (Mode::Throughput, c, f)));
        for (mode, conns, in_flight) in cells {
            let mut sides = Vec::new();
            for (server, observing) in [(&off, false), (&on, true)] {
                OBSERVING.store(observing, Ordering::Relaxed);
                spans.modify(|t| {
                    *t = if observing {
                        spans_on()
                    } else {
                        Targets::new()
                    }
                })?;
                sides.push(match mode {
                    Mode::Latency => micro_latency(server, &body, plan).await?,
                    Mode::Throughput => {
                        micro_throughput(server, &body, conns, in_flight, plan.length).await?
                    }
                });
            }
            let on_side = sides.pop().ok_or("no side")?;
            let off_side = sides.pop().ok_or("no side")?;
            let row = Row::new(size, mode, conns, in_flight, off_side, on_side);
            eprintln!("  {} {conns}x{in_flight} done", size_name(size));
            rows.push(row);
        }
    }
    println!();
    println!(
        "micro echo, tracing and metrics off vs on (spans recorded, W3C context sent, Prometheus counters and histograms); {:.1} s cells; times in µs; CPU is client + server per call",
        plan.length.as_secs_f64()
    );
    println!(
        "{:>7}  {:<4} {:>5} {:>9} | {:>10} {:>10} {:>6} | {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7}",
        "payload",
        "mode",
        "conns",
        "in-flight",
        "off/s",
        "on/s",
        "on/off",
        "off50",
        "off99",
        "on50",
        "on99",
        "cpu off",
        "cpu on"
    );
    println!("{}", "-".repeat(118));
    for row in &rows {
        println!(
            "{:>7}  {:<4} {:>5} {:>9} | {:>10.0} {:>10.0} {:>6.2} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>7.1} {:>7.1}",
            size_name(row.payload),
            match row.mode {
                Mode::Latency => "lat",
                Mode::Throughput => "tput",
            },
            row.conns,
            row.in_flight,
            row.micro.rate(),
            row.raw.rate(),
            ratio(row.raw.rate(), row.micro.rate()),
            row.micro.tally.percentile_us(50.0),
            row.micro.tally.percentile_us(99.0),
            row.raw.tally.percentile_us(50.0),
            row.raw.tally.percentile_us(99.0),
            row.micro.cpu_us_per_call(),
            row.raw.cpu_us_per_call(),
        );
    }
    Ok(())
}

async fn micro_latency(server: &Server, body: &Bytes, plan: &Plan) -> Result<Side, BoxError> {
    let (addr, pid, body) = (server.micro.clone(), server.pid, body.clone());
    let (warmup, calls) = (plan.latency_warmup, plan.latency_calls);
    // On a worker thread, as a service's own calls would run, not on the main thread.
    tokio::spawn(async move {
        let echo = micro_client();
        for _ in 0..warmup {
            echo.echo(body.clone()).node(&*addr).await?;
        }
        let mut tally = Tally::new();
        let (cpu, started) = (Sample::now(pid)?, Instant::now());
        for _ in 0..calls {
            let sent = Instant::now();
            let reply = echo.echo(body.clone()).node(&*addr).await?;
            tally.record(sent, Instant::now());
            check_echo(&reply, &body)?;
        }
        Ok(Side {
            tally,
            elapsed: started.elapsed(),
            cpu: Sample::now(pid)? - cpu,
        })
    })
    .await?
}

async fn raw_latency(server: &Server, body: &Bytes, plan: &Plan) -> Result<Side, BoxError> {
    let (addr, pid, body) = (server.raw, server.pid, body.clone());
    let (warmup, calls) = (plan.latency_warmup, plan.latency_calls);
    tokio::spawn(async move {
        let mut conn = raw::Conn::connect(addr).await?;
        for _ in 0..warmup {
            conn.call(&body).await?;
        }
        let mut tally = Tally::new();
        let (cpu, started) = (Sample::now(pid)?, Instant::now());
        for _ in 0..calls {
            let sent = Instant::now();
            conn.call(&body).await?;
            tally.record(sent, Instant::now());
        }
        Ok(Side {
            tally,
            elapsed: started.elapsed(),
            cpu: Sample::now(pid)? - cpu,
        })
    })
    .await?
}

/// Checks the length only, as the raw client does: comparing 64 KiB per call would charge
/// micro's side for work the baseline skips.
fn check_echo(reply: &Bytes, sent: &Bytes) -> Result<(), BoxError> {
    if reply.len() == sent.len() {
        Ok(())
    } else {
        Err(format!("echo of {} bytes for {} sent", reply.len(), sent.len()).into())
    }
}

/// How many of `in_flight` calls connection `i` of `conns` carries, so both sides keep
/// exactly `in_flight` outstanding (fewer calls than connections leaves some unused).
fn share(i: usize, conns: usize, in_flight: usize) -> usize {
    in_flight / conns + usize::from(i < in_flight % conns)
}

async fn micro_throughput(
    server: &Server,
    body: &Bytes,
    conns: usize,
    in_flight: usize,
    length: Duration,
) -> Result<Side, BoxError> {
    let window = Window::after(WARMUP, length);
    let clients: Vec<EchoClient> = (0..conns).map(|_| micro_client()).collect();
    // Caller i uses connection i % conns, which spreads them as `share` says.
    let callers: Vec<_> = (0..in_flight)
        .map(|i| {
            let (echo, addr, body) = (
                clients[i % conns].clone(),
                server.micro.clone(),
                body.clone(),
            );
            tokio::spawn(micro_caller(echo, addr, body, window))
        })
        .collect();
    let cpu = sample_over(window, server.pid).await;
    let mut tally = Tally::new();
    for caller in callers {
        tally.merge(caller.await?);
    }
    Ok(Side {
        tally,
        elapsed: window.length(),
        cpu: cpu?,
    })
}

async fn micro_caller(echo: EchoClient, addr: Arc<str>, body: Bytes, window: Window) -> Tally {
    let mut tally = Tally::new();
    while Instant::now() < window.end {
        let sent = Instant::now();
        match echo.echo(body.clone()).node(&*addr).await {
            Ok(reply) if reply.len() == body.len() => {
                tally.record_in(&window, sent, Instant::now())
            }
            Ok(reply) => tally.error(format_args!("echo of {} bytes", reply.len())),
            Err(e) => {
                tally.error(e);
                // A refused connection fails at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tally
}

async fn raw_throughput(
    server: &Server,
    body: &Bytes,
    conns: usize,
    in_flight: usize,
    length: Duration,
) -> Result<Side, BoxError> {
    let window = Window::after(WARMUP, length);
    let pipelines: Vec<_> = (0..conns)
        .map(|i| share(i, conns, in_flight))
        .filter(|&depth| depth > 0)
        .map(|depth| tokio::spawn(raw::pipeline(server.raw, body.clone(), depth, window)))
        .collect();
    let cpu = sample_over(window, server.pid).await;
    let mut tally = Tally::new();
    for pipeline in pipelines {
        match pipeline.await? {
            Ok(t) => tally.merge(t),
            Err(e) => tally.error(e),
        }
    }
    Ok(Side {
        tally,
        elapsed: window.length(),
        cpu: cpu?,
    })
}

/// CPU time both processes spend during `window`.
async fn sample_over(window: Window, server: u32) -> std::io::Result<Sample> {
    tokio::time::sleep_until(window.start.into()).await;
    let before = Sample::now(server)?;
    tokio::time::sleep_until(window.end.into()).await;
    Ok(Sample::now(server)? - before)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Latency,
    Throughput,
}

struct Row {
    payload: usize,
    mode: Mode,
    conns: usize,
    in_flight: usize,
    micro: Side,
    raw: Side,
}

impl Row {
    fn new(
        payload: usize,
        mode: Mode,
        conns: usize,
        in_flight: usize,
        micro: Side,
        raw: Side,
    ) -> Self {
        Self {
            payload,
            mode,
            conns,
            in_flight,
            micro,
            raw,
        }
    }

    fn errors(&self) -> u64 {
        self.micro.tally.errors + self.raw.tally.errors
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

fn progress(row: Row) -> Row {
    let mode = match row.mode {
        Mode::Latency => "latency",
        Mode::Throughput => "throughput",
    };
    eprintln!(
        "{:>7} {mode:<10} {}x{:<4}  micro {:>9.0}/s  raw {:>9.0}/s",
        size_name(row.payload),
        row.conns,
        row.in_flight,
        row.micro.rate(),
        row.raw.rate(),
    );
    for (side, name) in [(&row.micro, "micro"), (&row.raw, "raw")] {
        if let Some(e) = &side.tally.first_error {
            eprintln!("  {name}: {} error(s), first: {e}", side.tally.errors);
        }
    }
    row
}

fn print_tables(rows: &[Row], plan: &Plan) {
    println!();
    println!(
        "micro vs raw TCP echo, 127.0.0.1, server in a child process; throughput cells run {:.1} s after {:.1} s of warm-up",
        plan.length.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    println!(
        "latency rows: 1 connection, 1 call in flight, {} calls after {} of warm-up; times in µs; CPU is client + server per call (\"cpu cli\": the part spent in micro's client process)",
        plan.latency_calls, plan.latency_warmup
    );
    println!(
        "in-flight is the total over all connections on both sides: micro runs that many caller tasks, raw pipelines that many requests"
    );
    println!();
    println!(
        "{:>7}  {:<4} {:>5} {:>9} | {:>10} {:>10} {:>6} | {:>8} {:>8} | {:>8} {:>8} | {:>9} {:>9} {:>9} | {:>6}",
        "payload",
        "mode",
        "conns",
        "in-flight",
        "micro/s",
        "raw/s",
        "ratio",
        "micro50",
        "micro99",
        "raw50",
        "raw99",
        "cpu micro",
        "cpu cli",
        "cpu raw",
        "errors"
    );
    println!("{}", "-".repeat(147));
    for row in rows {
        println!(
            "{:>7}  {:<4} {:>5} {:>9} | {:>10.0} {:>10.0} {:>6.2} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>9.1} {:>9.1} {:>9.1} | {:>6}",
            size_name(row.payload),
            match row.mode {
                Mode::Latency => "lat",
                Mode::Throughput => "tput",
            },
            row.conns,
            row.in_flight,
            row.micro.rate(),
            row.raw.rate(),
            ratio(row.micro.rate(), row.raw.rate()),
            row.micro.tally.percentile_us(50.0),
            row.micro.tally.percentile_us(99.0),
            row.raw.tally.percentile_us(50.0),
            row.raw.tally.percentile_us(99.0),
            row.micro.cpu_us_per_call(),
            row.micro.client_cpu_us_per_call(),
            row.raw.cpu_us_per_call(),
            row.errors(),
        );
    }

    println!();
    println!(
        "{:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>14}",
        "payload", "micro p50", "micro p99", "raw p50", "raw p99", "p50 micro/raw"
    );
    println!("{}", "-".repeat(70));
    for row in rows.iter().filter(|r| r.mode == Mode::Latency) {
        let (micro, raw) = (&row.micro.tally, &row.raw.tally);
        println!(
            "{:>7} | {:>9.1} {:>9.1} | {:>9.1} {:>9.1} | {:>14.2}",
            size_name(row.payload),
            micro.percentile_us(50.0),
            micro.percentile_us(99.0),
            raw.percentile_us(50.0),
            raw.percentile_us(99.0),
            ratio(micro.percentile_us(50.0), raw.percentile_us(50.0)),
        );
    }
}
