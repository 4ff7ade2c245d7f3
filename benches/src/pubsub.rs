//! Publish → handler: what an event costs through each of micro's brokers.
//!
//! [`run`] measures, for each backend and payload:
//!
//! - **latency**: one publisher, one message in flight. The next message goes out once the
//!   handler has the previous one: when `publish` returns, for the brokers whose `publish`
//!   waits for the handler (memory, embedded), or when the in-process subscriber has seen it
//!   (NATS core, whose `publish` only hands the message to the connection).
//! - **throughput**: [`Plan::publishers`] tasks publishing as fast as `publish` lets them over
//!   a fixed window after a warm-up. The rate counts deliveries the handler saw inside the
//!   window; delivered/published compares, for the messages published inside the window, how
//!   many reached the handler with how many `publish` accepted (the difference is loss).
//!
//! Each message is [`Client::publish`] of a [`Bytes`] event (the payload) whose first
//! [`STAMP_LEN`] bytes are a [`Stamp`]: the wall-clock time it was published and a sequence
//! number. The handler takes the latency as its own clock minus the stamp; publisher and
//! subscriber run on one machine, so they read the same clock.
//!
//! Where things run:
//!
//! - **memory**: one process; `publish` runs the handler itself.
//! - **embedded**: the subscriber in a child process (this binary run as
//!   `loadgen subscribe embedded DIR`, see [`serve_subscriber`]), the publisher here; both find
//!   each other through a [`LocalRegistry`] in a private temp directory.
//! - **nats**: a `nats-server` child on a free 127.0.0.1 port (core NATS, no JetStream); the
//!   subscriber in this process on a connection of its own, so every message goes to the
//!   server and back. Without `nats-server` on `PATH` the backend is reported as skipped.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use micro::Client;
use micro::broker::{
    Broker, CONTENT_TYPE, EmbeddedBroker, EventHandler, MemoryBroker, Message, NatsBroker,
    SubscribeOptions, Subscription,
};
use micro::codec::ContentType;
use micro::registry::{LocalRegistry, MemoryRegistry, Registry};
use tokio::sync::{mpsc, watch};

use crate::process::{KillOnDrop, PrivateDir, free_port, wait_for_port};
use crate::size_name;
use crate::tally::Tally;

/// An error of any kind, as the load generator reports them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The topic (NATS subject) every measurement publishes on.
pub const TOPIC: &str = "loadgen.events";

/// Bytes at the start of each payload taken by its [`Stamp`]: the smallest payload.
pub const STAMP_LEN: usize = 16;

/// How long the latency loop waits for the handler to see a message before counting it lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Lost messages, or failed publishes, after which a latency cell gives up.
const MAX_LOST: u64 = 10;
const MAX_ERRORS: u64 = 100;
/// After a throughput window, how long at most to wait for deliveries still on their way…
const DRAIN: Duration = Duration::from_secs(10);
/// …and how long with no new delivery means nothing more is coming.
const STALL: Duration = Duration::from_millis(500);
/// How long the subscriber child may take to start or to answer a command.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `nats-server` may take to listen.
const NATS_STARTUP: Duration = Duration::from_secs(10);
/// How long closing a backend may take before it is abandoned (its processes are killed).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Payload sizes, each at least [`STAMP_LEN`].
    pub payloads: Vec<usize>,
    /// Latency cells: messages before measuring…
    pub latency_warmup: usize,
    /// …and messages measured.
    pub latency_msgs: usize,
    /// Throughput cells: concurrent publishing tasks.
    pub publishers: usize,
    /// Throughput cells: publishing before the window opens.
    pub warmup: Duration,
    /// Throughput cells: the window's length.
    pub length: Duration,
}

impl Plan {
    /// 16 B and 1 KiB, 10,000 latency messages, 16 publishers for `length`.
    pub fn full(length: Duration) -> Self {
        Self {
            payloads: vec![16, 1024],
            latency_warmup: 1_000,
            latency_msgs: 10_000,
            publishers: 16,
            warmup: Duration::from_millis(200),
            length,
        }
    }

    /// 16 B only, 2,000 latency messages.
    pub fn quick(length: Duration) -> Self {
        Self {
            payloads: vec![16],
            latency_warmup: 200,
            latency_msgs: 2_000,
            ..Self::full(length)
        }
    }
}

/// Nanoseconds since the Unix epoch, by the wall clock (which every process shares).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What a payload's first [`STAMP_LEN`] bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// When it was published, [`now_ns`].
    pub sent_ns: u64,
    /// The latency loop's sequence number; 0 in throughput cells.
    pub seq: u64,
}

/// `template` with its first [`STAMP_LEN`] bytes replaced by `stamp`.
///
/// ```
/// use benches::pubsub::{Stamp, read_stamp, stamp};
/// let body = stamp(&benches::payload(20), Stamp { sent_ns: 7, seq: 9 });
/// assert_eq!((body.len(), body[19]), (20, 19));
/// assert_eq!(read_stamp(&body), Some(Stamp { sent_ns: 7, seq: 9 }));
/// ```
///
/// # Panics
/// When `template` is shorter than [`STAMP_LEN`].
pub fn stamp(template: &[u8], stamp: Stamp) -> Bytes {
    let mut body = BytesMut::with_capacity(template.len());
    body.put_u64_le(stamp.sent_ns);
    body.put_u64_le(stamp.seq);
    body.extend_from_slice(&template[STAMP_LEN..]);
    body.freeze()
}

/// The stamp at the start of `payload`, if it is long enough to hold one.
pub fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let sent_ns = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(payload.get(8..STAMP_LEN)?.try_into().ok()?);
    Some(Stamp { sent_ns, seq })
}

/// What a subscriber saw since its window was last set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Messages the handler got since the window was set, wherever they fell.
    pub total: u64,
    /// Messages the handler got while its clock was inside the window.
    pub received: u64,
    /// Messages the handler got that were published inside the window.
    pub delivered: u64,
    /// Messages that did not decode to a stamped payload.
    pub bad: u64,
    /// Median publish → handler latency of the delivered messages, µs.
    pub p50_us: f64,
    /// 99th percentile of the same, µs.
    pub p99_us: f64,
}

impl Report {
    /// One line for the subscriber child to print.
    ///
    /// ```
    /// use benches::pubsub::Report;
    /// let r = Report { total: 9, received: 1, delivered: 2, bad: 3, p50_us: 4.5, p99_us: 60.25 };
    /// assert_eq!(Report::parse(&r.to_line()), Some(r));
    /// ```
    pub fn to_line(&self) -> String {
        format!(
            "report {} {} {} {} {} {}",
            self.total, self.received, self.delivered, self.bad, self.p50_us, self.p99_us
        )
    }

    /// Reads a [`to_line`](Self::to_line) line back.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.strip_prefix("report ")?.split(' ');
        let mut next = || words.next();
        let report = Self {
            total: next()?.parse().ok()?,
            received: next()?.parse().ok()?,
            delivered: next()?.parse().ok()?,
            bad: next()?.parse().ok()?,
            p50_us: next()?.parse().ok()?,
            p99_us: next()?.parse().ok()?,
        };
        words.next().is_none().then_some(report)
    }
}

/// The subscriber's side: counts and times the messages its handler gets.
#[derive(Debug)]
pub struct Sink {
    state: Mutex<SinkState>,
    /// The highest sequence number seen since the window was set, for the latency loop.
    last: watch::Sender<u64>,
}

#[derive(Debug)]
struct SinkState {
    /// Wall-clock window, `[start, end)` in ns since the epoch.
    start: u64,
    end: u64,
    total: u64,
    received: u64,
    bad: u64,
    /// Latencies of the messages published inside the window.
    latency: Tally,
}

impl Sink {
    /// A sink whose window is empty: it counts nothing until [`set_window`](Self::set_window).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SinkState {
                start: u64::MAX,
                end: u64::MAX,
                total: 0,
                received: 0,
                bad: 0,
                latency: Tally::new(),
            }),
            last: watch::Sender::new(0),
        })
    }

    /// The handler to subscribe with.
    pub fn handler(self: &Arc<Self>) -> Arc<dyn EventHandler> {
        let sink = self.clone();
        micro::broker::handler(move |msg: Message| {
            sink.receive(&msg);
            std::future::ready(Ok(()))
        })
    }

    /// Forgets everything seen and counts from now on what falls in `[start_ns, end_ns)`.
    pub fn set_window(&self, start_ns: u64, end_ns: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = SinkState {
            start: start_ns,
            end: end_ns,
            total: 0,
            received: 0,
            bad: 0,
            latency: Tally::new(),
        };
        self.last.send_replace(0);
    }

    /// What was seen since the window was set.
    pub fn report(&self) -> Report {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Report {
            total: state.total,
            received: state.received,
            delivered: state.latency.calls,
            bad: state.bad,
            p50_us: state.latency.percentile_us(50.0),
            p99_us: state.latency.percentile_us(99.0),
        }
    }

    /// Waits, up to `limit`, until the handler has seen sequence number `seq` (or a later one)
    /// since the window was set; `false` when it has not.
    pub async fn wait_for(&self, seq: u64, limit: Duration) -> bool {
        let mut last = self.last.subscribe();
        matches!(
            tokio::time::timeout(limit, last.wait_for(|&s| s >= seq)).await,
            Ok(Ok(_))
        )
    }

    fn receive(&self, msg: &Message) {
        let now = now_ns();
        let stamp = msg
            .headers
            .get(CONTENT_TYPE)
            .and_then(|mime| ContentType::from_mime(mime))
            .and_then(|codec| codec.decode::<Bytes>(&msg.body).ok())
            .and_then(|payload| read_stamp(&payload));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.total += 1;
        let Some(stamp) = stamp else {
            state.bad += 1;
            return;
        };
        let window = state.start..state.end;
        if window.contains(&now) {
            state.received += 1;
        }
        if window.contains(&stamp.sent_ns) {
            state
                .latency
                .record_nanos(now.saturating_sub(stamp.sent_ns));
        }
        drop(state);
        if stamp.seq != 0 {
            self.last.send_if_modified(|last| {
                let newer = stamp.seq > *last;
                if newer {
                    *last = stamp.seq;
                }
                newer
            });
        }
    }
}

/// The subscriber child: `loadgen subscribe embedded REGISTRY_DIR`.
///
/// Subscribes to [`TOPIC`] through an [`EmbeddedBroker`] on a [`LocalRegistry`] at
/// `REGISTRY_DIR`, prints `ready`, then answers one line per command read from stdin:
/// `window START_NS END_NS` ([`Sink::set_window`]) with `ok`, and `report` with
/// [`Report::to_line`]. It unsubscribes and exits when stdin closes, so it never outlives the
/// parent.
///
/// # Errors
/// On bad arguments, or when subscribing fails.
pub async fn serve_subscriber(args: &[String]) -> Result<(), BoxError> {
    let [kind, dir] = args else {
        return Err("usage: loadgen subscribe embedded REGISTRY_DIR".into());
    };
    if kind != "embedded" {
        return Err(format!("a subscriber child serves the embedded broker, not {kind:?}").into());
    }
    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::at(dir));
    let broker = EmbeddedBroker::new(registry).address("127.0.0.1:0");
    let sink = Sink::new();
    let subscription = broker
        .subscribe(TOPIC, SubscribeOptions::default(), sink.handler())
        .await?;
    let (tx, mut commands) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    while let Some(line) = commands.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["window", start, end] => match (start.parse(), end.parse()) {
                (Ok(start), Ok(end)) => {
                    sink.set_window(start, end);
                    "ok".to_owned()
                }
                _ => format!("error: bad window {line:?}"),
            },
            ["report"] => sink.report().to_line(),
            _ => format!("error: unknown command {line:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    subscription.unsubscribe().await;
    Ok(())
}

/// The parent's end of a subscriber child.
struct SubscriberChild {
    /// Killed when dropped.
    child: KillOnDrop,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<std::io::Result<String>>,
}

impl SubscriberChild {
    async fn spawn(args: &[&OsStr]) -> Result<Self, BoxError> {
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe()?)
                .arg("subscribe")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
        let stdin = child.0.stdin.take().ok_or("child has no stdin")?;
        let stdout = child.0.stdout.take().ok_or("child has no stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        // Ends when the child's stdout closes, which killing it does.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
        });
        let mut this = Self {
            child,
            stdin,
            lines,
        };
        match this.next_line().await?.as_str() {
            "ready" => Ok(this),
            other => Err(format!("unexpected line from the subscriber child: {other:?}").into()),
        }
    }

    async fn next_line(&mut self) -> Result<String, BoxError> {
        match tokio::time::timeout(CHILD_TIMEOUT, self.lines.recv()).await {
            Err(_) => Err("the subscriber child did not answer in time".into()),
            Ok(None) => Err("the subscriber child exited".into()),
            Ok(Some(line)) => Ok(line?),
        }
    }

    async fn ask(&mut self, command: &str) -> Result<String, BoxError> {
        self.stdin.write_all(format!("{command}\n").as_bytes())?;
        self.stdin.flush()?;
        self.next_line().await
    }
}

/// Where the handler's counts are: in this process or in the subscriber child.
enum SinkHandle {
    Local(Arc<Sink>),
    Child(SubscriberChild),
}

impl SinkHandle {
    async fn set_window(&mut self, start_ns: u64, end_ns: u64) -> Result<(), BoxError> {
        match self {
            Self::Local(sink) => {
                sink.set_window(start_ns, end_ns);
                Ok(())
            }
            Self::Child(child) => match child.ask(&format!("window {start_ns} {end_ns}")).await? {
                ok if ok == "ok" => Ok(()),
                other => Err(format!("subscriber child: {other}").into()),
            },
        }
    }

    async fn report(&mut self) -> Result<Report, BoxError> {
        match self {
            Self::Local(sink) => Ok(sink.report()),
            Self::Child(child) => {
                let line = child.ask("report").await?;
                Report::parse(&line).ok_or_else(|| format!("subscriber child: {line}").into())
            }
        }
    }
}

/// The brokers measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`MemoryBroker`].
    Memory,
    /// [`EmbeddedBroker`].
    Embedded,
    /// [`NatsBroker`], core (not JetStream).
    Nats,
}

impl Kind {
    /// Every backend, in the order measured.
    pub const ALL: [Kind; 3] = [Kind::Memory, Kind::Embedded, Kind::Nats];

    /// As the table prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Embedded => "embedded",
            Kind::Nats => "nats",
        }
    }
}

/// One backend, set up: a publishing client and the subscriber's sink.
struct Backend {
    kind: Kind,
    client: Client,
    sink: SinkHandle,
    /// The sink to wait on in latency cells, when `publish` returns before the handler ran.
    wait: Option<Arc<Sink>>,
    subscription: Option<Subscription>,
    brokers: Vec<Arc<dyn Broker>>,
    /// Where the publisher and the subscriber run.
    setup: String,
    /// `nats-server`'s log, to look for slow-consumer warnings in.
    nats_log: Option<std::path::PathBuf>,
    /// `nats-server`'s monitoring port.
    monitor: Option<u16>,
    // Dropped after the fields above (the subscriber child with `sink`): the server, then
    // the directory.
    _nats: Option<KillOnDrop>,
    _dir: Option<PrivateDir>,
}

enum Setup {
    Ready(Box<Backend>),
    Skipped(String),
}

fn client_for(broker: Arc<dyn Broker>, registry: Arc<dyn Registry>) -> Client {
    Client::builder().registry(registry).broker(broker).build()
}

impl Backend {
    async fn start(kind: Kind) -> Result<Setup, BoxError> {
        let backend = match kind {
            Kind::Memory => Self::memory().await?,
            Kind::Embedded => Self::embedded().await?,
            Kind::Nats => match Self::nats().await? {
                Setup::Ready(backend) => *backend,
                skipped => return Ok(skipped),
            },
        };
        Ok(Setup::Ready(Box::new(backend)))
    }

    async fn memory() -> Result<Self, BoxError> {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let sink = Sink::new();
        let subscription = broker
            .subscribe(TOPIC, SubscribeOptions::default(), sink.handler())
            .await?;
        Ok(Self {
            kind: Kind::Memory,
            client: client_for(broker.clone(), Arc::new(MemoryRegistry::new())),
            sink: SinkHandle::Local(sink),
            wait: None,
            subscription: Some(subscription),
            brokers: vec![broker],
            setup: "one process; publish runs the handler".into(),
            nats_log: None,
            monitor: None,
            _nats: None,
            _dir: None,
        })
    }

    async fn embedded() -> Result<Self, BoxError> {
        let dir = PrivateDir::new("micro-loadgen")?;
        let registry_dir = dir.path().join("registry");
        let child =
            SubscriberChild::spawn(&[OsStr::new("embedded"), registry_dir.as_os_str()]).await?;
        let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::at(&registry_dir));
        let broker: Arc<dyn Broker> =
            Arc::new(EmbeddedBroker::new(registry.clone()).address("127.0.0.1:0"));
        let setup = format!(
            "subscriber in child pid {}, publisher here; LocalRegistry at {}",
            child.child.id(),
            registry_dir.display()
        );
        Ok(Self {
            kind: Kind::Embedded,
            client: client_for(broker.clone(), registry),
            sink: SinkHandle::Child(child),
            wait: None,
            subscription: None,
            brokers: vec![broker],
            setup,
            nats_log: None,
            monitor: None,
            _nats: None,
            _dir: Some(dir),
        })
    }

    async fn nats() -> Result<Setup, BoxError> {
        let dir = PrivateDir::new("micro-loadgen-nats")?;
        let log_path = dir.path().join("nats-server.log");
        let (port, monitor) = (free_port()?, free_port()?);
        let spawned = Command::new("nats-server")
            // The monitoring port listens on the -a address too.
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn();
        let mut server = match spawned {
            Ok(child) => KillOnDrop(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Setup::Skipped("skipped: nats-server not installed".into()));
            }
            Err(e) => {
                return Ok(Setup::Skipped(format!(
                    "skipped: cannot run nats-server: {e}"
                )));
            }
        };
        if let Err(e) = wait_for_port(&mut server, port, NATS_STARTUP).await {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("");
            return Ok(Setup::Skipped(format!(
                "skipped: nats-server {e}; its log: {last}"
            )));
        }
        let url = format!("nats://127.0.0.1:{port}");
        let publisher: Arc<dyn Broker> = Arc::new(NatsBroker::new(&url));
        let subscriber: Arc<dyn Broker> = Arc::new(NatsBroker::new(&url));
        publisher.connect().await?;
        subscriber.connect().await?;
        let sink = Sink::new();
        let subscription = subscriber
            .subscribe(TOPIC, SubscribeOptions::default(), sink.handler())
            .await?;
        let setup = format!(
            "nats-server pid {} on {url} (core, no JetStream; monitoring on port {monitor}); subscriber in this process on its own connection",
            server.id()
        );
        let mut backend = Self {
            kind: Kind::Nats,
            client: client_for(publisher.clone(), Arc::new(MemoryRegistry::new())),
            sink: SinkHandle::Local(sink.clone()),
            wait: Some(sink),
            // Unsubscribed first, then the publisher drained, then the subscriber.
            subscription: Some(subscription),
            brokers: vec![publisher, subscriber],
            setup,
            nats_log: Some(log_path),
            monitor: Some(monitor),
            _nats: Some(server),
            _dir: Some(dir),
        };
        let tries = backend.probe().await?;
        if tries > 1 {
            eprintln!(
                "  nats: the subscription saw its first message on try {tries} \
                 (subscribe returned before the server had it)"
            );
        }
        Ok(Setup::Ready(Box::new(backend)))
    }

    /// Publishes until the subscriber sees a message: a subscription on one connection may
    /// not be known to the server yet when a message comes in on another. Returns the number
    /// of tries.
    async fn probe(&mut self) -> Result<u64, BoxError> {
        let Some(sink) = self.wait.clone() else {
            return Ok(1);
        };
        self.sink.set_window(u64::MAX, u64::MAX).await?;
        let template = crate::payload(STAMP_LEN);
        for seq in 1..=50 {
            let body = stamp(
                &template,
                Stamp {
                    sent_ns: now_ns(),
                    seq,
                },
            );
            self.client.publish(TOPIC, &body).await?;
            if sink.wait_for(seq, Duration::from_millis(100)).await {
                return Ok(seq);
            }
        }
        Err("the subscriber saw none of 50 messages in 5 s".into())
    }

    /// Unsubscribes and disconnects, each bounded; the processes go when `self` drops.
    async fn close(mut self) {
        if let Some(subscription) = self.subscription.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, subscription.unsubscribe()).await;
        }
        for broker in &self.brokers {
            if let Ok(Err(e)) = tokio::time::timeout(CLOSE_TIMEOUT, broker.disconnect()).await {
                eprintln!("  {}: disconnect: {e}", self.kind.name());
            }
        }
        if let Some(log) = &self.nats_log {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let slow = log.lines().filter(|l| l.contains("Slow Consumer")).count();
            if slow > 0 {
                eprintln!("  nats-server logged {slow} slow-consumer warning(s)");
            }
        }
    }
}

/// What publishers sent.
#[derive(Debug, Default)]
struct Sent {
    /// `publish` returned `Ok` (in a throughput cell: for messages stamped inside the window).
    published: u64,
    /// `publish` returned `Ok`, inside the window or not.
    total: u64,
    errors: u64,
    first_error: Option<String>,
    /// Latency cells: published, but not seen by the handler in time.
    lost: u64,
    elapsed: Duration,
}

impl Sent {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn merge(&mut self, other: Sent) {
        self.published += other.published;
        self.total += other.total;
        self.errors += other.errors;
        self.lost += other.lost;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Publishes `count` messages numbered from `first`, each once the previous one reached the
/// handler.
async fn one_by_one(
    client: Client,
    template: Bytes,
    wait: Option<Arc<Sink>>,
    first: u64,
    count: usize,
) -> Result<Sent, String> {
    let mut sent = Sent::default();
    let started = Instant::now();
    for seq in first..first + count as u64 {
        let body = stamp(
            &template,
            Stamp {
                sent_ns: now_ns(),
                seq,
            },
        );
        match client.publish(TOPIC, &body).await {
            Ok(()) => {
                sent.published += 1;
                if let Some(sink) = &wait
                    && !sink.wait_for(seq, DELIVERY_TIMEOUT).await
                {
                    sent.lost += 1;
                    if sent.lost >= MAX_LOST {
                        return Err(format!(
                            "{} messages not delivered within {DELIVERY_TIMEOUT:?}",
                            sent.lost
                        ));
                    }
                }
            }
            Err(e) => {
                sent.error(e);
                if sent.errors >= MAX_ERRORS {
                    let first = sent.first_error.unwrap_or_default();
                    return Err(format!("{MAX_ERRORS} publishes failed; first: {first}"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    sent.elapsed = started.elapsed();
    Ok(sent)
}

/// Publishes as fast as `publish` returns until `end_ns`, counting what is stamped from
/// `start_ns` on.
async fn flood(client: Client, template: Bytes, start_ns: u64, end_ns: u64) -> Sent {
    let mut sent = Sent::default();
    loop {
        let sent_ns = now_ns();
        if sent_ns >= end_ns {
            break;
        }
        let body = stamp(&template, Stamp { sent_ns, seq: 0 });
        match client.publish(TOPIC, &body).await {
            Ok(()) => {
                sent.total += 1;
                sent.published += u64::from(sent_ns >= start_ns);
            }
            Err(e) => {
                sent.error(e);
                // A refused connection fails at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // The memory broker's publish never waits: let the other publishers run too.
        tokio::task::coop::consume_budget().await;
    }
    sent
}

/// Measured or not.
#[derive(Debug)]
pub enum Outcome {
    /// Measured.
    Measured(Cell),
    /// Not run, and why (`nats-server` is not installed…).
    Skipped(String),
    /// Failed, and how.
    Failed(String),
}

/// Latency or throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One publisher, one message in flight.
    Latency,
    /// [`Plan::publishers`] publishers over a window.
    Throughput,
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Latency or throughput.
    pub mode: Mode,
    /// Concurrent publishers.
    pub publishers: usize,
    /// Deliveries per second.
    pub rate: f64,
    /// Median publish → handler latency, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Messages measured that reached the handler…
    pub delivered: u64,
    /// …of those `publish` accepted.
    pub published: u64,
    /// Publishes that failed.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Messages the handler could not read.
    pub bad: u64,
    /// Where messages went missing, for NATS: what the server counted.
    pub note: Option<String>,
}

/// One line of the table.
#[derive(Debug)]
pub struct Row {
    /// The broker.
    pub backend: Kind,
    /// The payload size; `None` for a backend that did not start.
    pub payload: Option<usize>,
    /// What happened.
    pub outcome: Outcome,
}

impl Row {
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// How the pub/sub section ran, for the table's header.
#[derive(Debug, Default)]
pub struct Run {
    /// The table.
    pub rows: Vec<Row>,
    /// Each backend's setup, as "name: where things run".
    pub setups: Vec<String>,
}

/// Runs every backend in `kinds` through `plan`.
pub async fn run(plan: &Plan, kinds: &[Kind]) -> Run {
    let mut out = Run::default();
    for &kind in kinds {
        let mut backend = match Backend::start(kind).await {
            Ok(Setup::Ready(backend)) => backend,
            Ok(Setup::Skipped(why)) => {
                out.rows.push(progress(Row {
                    backend: kind,
                    payload: None,
                    outcome: Outcome::Skipped(why),
                }));
                continue;
            }
            Err(e) => {
                out.rows.push(progress(Row {
                    backend: kind,
                    payload: None,
                    outcome: Outcome::Failed(format!("cannot start: {e}")),
                }));
                continue;
            }
        };
        eprintln!("pub/sub {}: {}", kind.name(), backend.setup);
        out.setups
            .push(format!("{}: {}", kind.name(), backend.setup));
        for &size in &plan.payloads {
            for mode in [Mode::Latency, Mode::Throughput] {
                let measured = match mode {
                    Mode::Latency => latency(&mut backend, size, plan).await,
                    Mode::Throughput => throughput(&mut backend, size, plan).await,
                };
                let outcome = match measured {
                    Ok(cell) => Outcome::Measured(cell),
                    Err(e) => Outcome::Failed(format!("{mode:?}: {e}")),
                };
                out.rows.push(progress(Row {
                    backend: kind,
                    payload: Some(size),
                    outcome,
                }));
            }
        }
        backend.close().await;
    }
    out
}

async fn latency(backend: &mut Backend, size: usize, plan: &Plan) -> Result<Cell, BoxError> {
    let template = crate::payload(size.max(STAMP_LEN));
    let (client, wait) = (backend.client.clone(), backend.wait.clone());
    // Warm-up: nothing counts.
    backend.sink.set_window(u64::MAX, u64::MAX).await?;
    let warm = one_by_one(
        client.clone(),
        template.clone(),
        wait.clone(),
        1,
        plan.latency_warmup,
    );
    tokio::spawn(warm).await??;
    // Nothing is in flight now: from here on, everything counts.
    backend.sink.set_window(now_ns(), u64::MAX).await?;
    let first = plan.latency_warmup as u64 + 1;
    // On a worker thread, as a service's own publishes would run.
    let measure = one_by_one(client, template, wait, first, plan.latency_msgs);
    let sent = tokio::spawn(measure).await??;
    let report = backend.sink.report().await?;
    Ok(Cell {
        mode: Mode::Latency,
        publishers: 1,
        rate: report.delivered as f64 / sent.elapsed.as_secs_f64(),
        p50_us: report.p50_us,
        p99_us: report.p99_us,
        delivered: report.delivered,
        published: sent.published,
        errors: sent.errors,
        first_error: sent.first_error,
        bad: report.bad,
        note: None,
    })
}

async fn throughput(backend: &mut Backend, size: usize, plan: &Plan) -> Result<Cell, BoxError> {
    let template = crate::payload(size.max(STAMP_LEN));
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let start_ns = now_ns() + nanos(plan.warmup);
    let end_ns = start_ns + nanos(plan.length);
    let before = match backend.monitor {
        Some(port) => Some(varz(port).await?),
        None => None,
    };
    backend.sink.set_window(start_ns, end_ns).await?;
    let publishers: Vec<_> = (0..plan.publishers)
        .map(|_| {
            let publish = flood(backend.client.clone(), template.clone(), start_ns, end_ns);
            tokio::spawn(publish)
        })
        .collect();
    let mut sent = Sent::default();
    for publisher in publishers {
        sent.merge(publisher.await?);
    }
    let report = drain(&mut backend.sink, sent.published).await?;
    let note = match (before, backend.monitor) {
        (Some(before), Some(port)) => {
            let after = varz(port).await?;
            Some(format!(
                "{} {} tput, whole cell with warm-up: publish returned Ok {} | nats-server: in {}, out {}, slow consumers {} | handler got {}",
                backend.kind.name(),
                size_name(size),
                sent.total,
                after.in_msgs - before.in_msgs,
                after.out_msgs - before.out_msgs,
                after.slow_consumers - before.slow_consumers,
                report.total,
            ))
        }
        _ => None,
    };
    Ok(Cell {
        mode: Mode::Throughput,
        publishers: plan.publishers,
        rate: report.received as f64 / plan.length.as_secs_f64(),
        p50_us: report.p50_us,
        p99_us: report.p99_us,
        delivered: report.delivered,
        published: sent.published,
        errors: sent.errors,
        first_error: sent.first_error,
        bad: report.bad,
        note,
    })
}

/// `nats-server`'s counters, from its monitoring port (`/varz`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Varz {
    in_msgs: u64,
    out_msgs: u64,
    slow_consumers: u64,
}

async fn varz(port: u16) -> Result<Varz, BoxError> {
    let get = move || -> Result<Varz, BoxError> {
        let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        std::io::Read::read_to_string(&mut conn, &mut body)?;
        let field = |key: &str| {
            json_u64(&body, key).ok_or_else(|| format!("no {key} in nats-server's /varz"))
        };
        Ok(Varz {
            in_msgs: field("in_msgs")?,
            out_msgs: field("out_msgs")?,
            slow_consumers: field("slow_consumers")?,
        })
    };
    tokio::task::spawn_blocking(get).await?
}

/// The number after the first `"key":` in `json`.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits = json[at..].trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The sink's report once deliveries still on their way have arrived: when it has
/// `published` of them, when none came for [`STALL`], or after [`DRAIN`].
async fn drain(sink: &mut SinkHandle, published: u64) -> Result<Report, BoxError> {
    let started = Instant::now();
    let mut report = sink.report().await?;
    let mut changed = Instant::now();
    while report.delivered < published && changed.elapsed() < STALL && started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sink.report().await?;
        if now.delivered != report.delivered {
            changed = Instant::now();
        }
        report = now;
    }
    Ok(report)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Latency => "lat",
        Mode::Throughput => "tput",
    }
}

fn delivered_column(cell: &Cell) -> String {
    let mut s = format!("{}/{}", cell.delivered, cell.published);
    if cell.delivered < cell.published {
        let loss = 100.0 * (cell.published - cell.delivered) as f64 / cell.published as f64;
        let _ = write!(s, " (-{loss:.2}%)");
    }
    s
}

fn progress(row: Row) -> Row {
    let payload = row.payload.map_or_else(|| "-".to_owned(), size_name);
    let backend = row.backend.name();
    match &row.outcome {
        Outcome::Measured(cell) => {
            eprintln!(
                "{backend:>8} {payload:>7} {:<4} {:>10.0} msg/s  p50 {:>8.1} µs  p99 {:>8.1} µs  {}",
                mode_name(cell.mode),
                cell.rate,
                cell.p50_us,
                cell.p99_us,
                delivered_column(cell),
            );
            if let Some(e) = &cell.first_error {
                eprintln!("  {} error(s), first: {e}", cell.errors);
            }
            if let Some(note) = &cell.note {
                eprintln!("  {note}");
            }
        }
        Outcome::Skipped(why) | Outcome::Failed(why) => {
            eprintln!("{backend:>8} {payload:>7} {why}");
        }
    }
    row
}

/// Prints the pub/sub table.
pub fn print_table(run: &Run, plan: &Plan) {
    println!();
    println!(
        "pub/sub: Client::publish → broker → handler, 127.0.0.1 only; latency = the handler's clock − the publish time stamped in the message (one machine, one clock)"
    );
    println!(
        "lat:  1 publisher, 1 message in flight, {} messages after {} of warm-up; msgs/s = deliveries / time taken",
        plan.latency_msgs, plan.latency_warmup
    );
    println!(
        "tput: {} publishers for {:.1} s after {:.1} s of warm-up; msgs/s = deliveries the handler saw in the window",
        plan.publishers,
        plan.length.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    println!(
        "      p50/p99 and delivered/published are over the messages published in the window (NATS core publish is fire-and-forget: a shortfall is loss)"
    );
    for setup in &run.setups {
        println!("  {setup}");
    }
    println!();
    println!(
        "{:<8}  {:>7}  {:<4} {:>4} | {:>10} | {:>9} {:>9} | {:>28} | {:>6}",
        "backend",
        "payload",
        "mode",
        "pubs",
        "msgs/s",
        "p50 µs",
        "p99 µs",
        "delivered/published",
        "errors"
    );
    println!("{}", "-".repeat(97));
    for row in &run.rows {
        let payload = row.payload.map_or_else(|| "-".to_owned(), size_name);
        let backend = row.backend.name();
        match &row.outcome {
            Outcome::Measured(cell) => {
                let mut errors = cell.errors.to_string();
                if cell.bad > 0 {
                    let _ = write!(errors, " +{} bad", cell.bad);
                }
                println!(
                    "{backend:<8}  {payload:>7}  {:<4} {:>4} | {:>10.0} | {:>9.1} {:>9.1} | {:>28} | {:>6}",
                    mode_name(cell.mode),
                    cell.publishers,
                    cell.rate,
                    cell.p50_us,
                    cell.p99_us,
                    delivered_column(cell),
                    errors,
                );
            }
            Outcome::Skipped(why) | Outcome::Failed(why) => {
                println!("{backend:<8}  {payload:>7}  {why}");
            }
        }
    }
    let mut notes = run.rows.iter().filter_map(|row| match &row.outcome {
        Outcome::Measured(cell) => cell.note.as_deref(),
        _ => None,
    });
    if let Some(first) = notes.next() {
        println!();
        for note in std::iter::once(first).chain(notes) {
            println!("{note}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &Bytes) -> Message {
        let body = ContentType::Bincode.encode(payload).unwrap();
        Message::new(body).header(CONTENT_TYPE, ContentType::Bincode.mime())
    }

    #[tokio::test]
    async fn the_sink_counts_by_window() {
        let sink = Sink::new();
        let template = crate::payload(1024);
        let now = now_ns();
        sink.set_window(now - 1_000_000_000, now + 60_000_000_000);
        let handler = sink.handler();
        let inside = Stamp {
            sent_ns: now - 1_000,
            seq: 3,
        };
        let before = Stamp {
            sent_ns: now - 2_000_000_000,
            seq: 0,
        };
        for s in [inside, before] {
            handler
                .handle(TOPIC, message(&stamp(&template, s)))
                .await
                .unwrap();
        }
        handler
            .handle(TOPIC, Message::new(&b"junk"[..]))
            .await
            .unwrap();
        let report = sink.report();
        assert_eq!(
            (report.total, report.received, report.delivered, report.bad),
            (3, 2, 1, 1)
        );
        assert!(report.p50_us >= 1.0, "{report:?}");
        assert!(sink.wait_for(3, Duration::ZERO).await);
        assert!(!sink.wait_for(4, Duration::from_millis(1)).await);
        sink.set_window(u64::MAX, u64::MAX);
        assert_eq!(sink.report(), Report::default());
    }

    #[test]
    fn varz_fields() {
        let json = "{\n  \"in_msgs\": 12,\n  \"out_msgs\":7,\"x\": 1}";
        assert_eq!(json_u64(json, "in_msgs"), Some(12));
        assert_eq!(json_u64(json, "out_msgs"), Some(7));
        assert_eq!(json_u64(json, "slow_consumers"), None);
    }

    #[test]
    fn short_payloads_have_no_stamp() {
        assert_eq!(read_stamp(&[0; 15]), None);
        assert!(Report::parse("report 1 2 3 4 5").is_none());
        assert!(Report::parse("report 1 2 3 4 5 6 7").is_none());
    }
}
