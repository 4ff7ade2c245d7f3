//! Services and helpers shared by the integration tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use micro::prelude::*;
use tokio::sync::Semaphore;

pub mod hosts;
pub mod pki;
pub mod streams;

/// A counter with a gate: `wait` blocks its actor until the test adds permits, so tests can
/// hold a mailbox still and fill it deterministically.
#[derive(Clone)]
pub struct Counter {
    n: u64,
    /// Handler runs, counted outside the actor so tests can read them.
    pub runs: Arc<AtomicU64>,
    pub gate: Arc<Semaphore>,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// A counter whose gate starts closed.
    pub fn new() -> Self {
        Self {
            n: 0,
            runs: Arc::new(AtomicU64::new(0)),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

#[micro::service(name = "counter")]
impl Counter {
    /// Adds to the count, yielding in the middle of the read-modify-write: without the
    /// actor's one-at-a-time guarantee, concurrent callers would lose updates.
    pub async fn add(&mut self, by: u64) -> micro::Result<u64> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let before = self.n;
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(10)).await;
        self.n = before + by;
        Ok(self.n)
    }

    /// The count.
    pub async fn get(&self) -> micro::Result<u64> {
        Ok(self.n)
    }

    /// Echoes the request, prefixed with the caller's address.
    pub async fn echo(&self, ctx: &Context, s: String) -> micro::Result<String> {
        Ok(format!("{} {s}", ctx.caller()))
    }

    /// Returns the value of a metadata key.
    pub async fn header(&self, ctx: &Context, key: String) -> micro::Result<Option<String>> {
        Ok(ctx.metadata().get(&key).cloned())
    }

    /// Milliseconds left before this call's deadline.
    pub async fn remaining(&self, ctx: &Context) -> micro::Result<Option<u64>> {
        Ok(ctx.remaining().map(|d| d.as_millis() as u64))
    }

    /// Blocks the actor until a gate permit is available.
    pub async fn wait(&mut self, tag: u64) -> micro::Result<u64> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.expect("gate closed").forget();
        Ok(tag)
    }

    /// Panics after changing the state, to show what a panic leaves behind.
    pub async fn boom(&mut self) -> micro::Result<()> {
        self.n += 1000;
        panic!("boom on purpose");
    }

    /// Fails with the given status code.
    pub async fn fail(&self, code: u16) -> micro::Result<()> {
        Err(Error::new("counter", code, "asked to fail"))
    }

    /// Returns a payload of `len` bytes.
    pub async fn blob(&self, len: usize) -> micro::Result<Vec<u8>> {
        Ok(vec![7; len])
    }
}

/// The registry of in-process tests: one memory registry for the whole test binary, so
/// tests never see entries of other processes.
pub fn registry() -> Arc<dyn micro::registry::Registry> {
    static REGISTRY: std::sync::LazyLock<Arc<dyn micro::registry::Registry>> =
        std::sync::LazyLock::new(|| Arc::new(micro::registry::MemoryRegistry::new()));
    REGISTRY.clone()
}

/// The runtime of this test binary's in-process services and clients: the test registry,
/// and no `MICRO_*` variable read, so in-process tests are the same whatever the
/// environment, CI's included.
pub fn runtime() -> micro::Runtime {
    static RUNTIME: std::sync::LazyLock<micro::Runtime> = std::sync::LazyLock::new(|| {
        micro::Runtime::builder()
            .registry(registry())
            .build(micro::config::Options::default())
    });
    RUNTIME.clone()
}

/// A service of the test runtime, stopping without a drain period. Tests serve their
/// handled types under names of their own (`rename`), so that tests never share a service.
pub fn service(name: &str) -> Service {
    runtime().service(name).rename().drain(Duration::ZERO)
}

/// A client builder of the test runtime.
pub fn client_builder() -> micro::ClientBuilder {
    runtime().client_builder()
}

/// A client on the test registry.
pub fn client() -> Client {
    client_builder().build()
}

/// Starts a `Counter` under a service name unique to the calling test.
pub async fn start_counter(name: &str, counter: Counter) -> micro::RunningService {
    service(name)
        .handle(counter)
        .start()
        .await
        .expect("service starts")
}

/// A client that always takes the network, never the in-process fast path.
pub fn wire_client() -> Client {
    client_builder().fast_path(false).build()
}

/// A typed client for the counter registered as `name`, over the network or not.
pub fn counter_client(name: &str, wire: bool) -> CounterClient {
    let client = if wire { wire_client() } else { self::client() };
    CounterClient::with_service(client, name)
}

/// Polls `cond` every millisecond, for at most `limit`; panics with `what` if it never holds.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A `nats-server` with JetStream on a free loopback port and its own store directory,
/// stopped (and its directory removed) when dropped.
pub struct NatsServer {
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
    port: u16,
    /// `nats://127.0.0.1:PORT`
    pub url: String,
}

impl NatsServer {
    /// Starts the server and waits until it accepts connections.
    ///
    /// # Panics
    /// When `nats-server` is not installed (`apt-get install nats-server`) or never starts.
    pub fn start() -> NatsServer {
        on_fresh_ports("nats-server", || {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("micro-nats-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = NatsServer {
                child: None,
                dir,
                port,
                url: format!("nats://127.0.0.1:{port}"),
            };
            server.launch().map(|()| server)
        })
    }

    /// Stops the server as a crash would (SIGKILL), keeping its JetStream store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    ///
    /// # Panics
    /// When it does not start, with the end of its log.
    pub fn restart(&mut self) {
        if let Err(e) = self.launch() {
            panic!("nats-server did not restart: {e}");
        }
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.with_extension("log")
    }

    fn launch(&mut self) -> Result<(), String> {
        self.stop();
        let log = std::fs::File::create(self.log()).expect("nats-server log file");
        let mut child = std::process::Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server is not installed: apt-get install -y nats-server");
        await_listening(&mut child, self.port, &self.log())?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.log());
    }
}

/// A server started by `attempt`, which picks free ports each time: a port found free can be
/// taken by another process before the server binds it (tests run in parallel, each picking
/// ports), and the server then exits at once, so a few attempts are made.
///
/// # Panics
/// When every attempt failed, with the last reason.
fn on_fresh_ports<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut why = String::new();
    for _ in 0..5 {
        match attempt() {
            Ok(server) => return server,
            Err(e) => why = e,
        }
    }
    panic!("{what} never started: {why}");
}

/// Waits (bounded) until `child`, a server, accepts connections on 127.0.0.1:`port`; if it
/// exits first, or never listens, why (with the end of its `log`), and it is gone.
fn await_listening(
    child: &mut std::process::Child,
    port: u16,
    log: &std::path::Path,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            return Err(format!("exited ({status}): {tail:?}"));
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("nothing listens on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing
/// running (a leftover child would also hold the test's output pipe open).
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Kills the process now (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An `etcd` on free loopback ports with its own data directory; [`stop`](Self::stop) and
/// [`restart`](Self::restart) keep the data, drop removes it.
pub struct EtcdServer {
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
    client_port: u16,
    peer_port: u16,
    /// `127.0.0.1:PORT`, for `MICRO_REGISTRY_ADDRESS` and `EtcdRegistry::new`.
    pub endpoint: String,
}

impl EtcdServer {
    /// Starts etcd and waits until it accepts connections.
    ///
    /// # Panics
    /// When `etcd` is not installed (`apt-get install etcd-server`) or never starts.
    pub fn start() -> EtcdServer {
        on_fresh_ports("etcd", || {
            let (client_port, peer_port) = (free_port(), free_port());
            let dir = std::env::temp_dir()
                .join(format!("micro-etcd-{}-{client_port}", std::process::id()));
            let mut server = EtcdServer {
                child: None,
                dir,
                client_port,
                peer_port,
                endpoint: format!("127.0.0.1:{client_port}"),
            };
            server.launch().map(|()| server)
        })
    }

    /// Stops the server (as a crash would: SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    ///
    /// # Panics
    /// When it does not start, with the end of its log.
    pub fn restart(&mut self) {
        if let Err(e) = self.launch() {
            panic!("etcd did not restart: {e}");
        }
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.with_extension("log")
    }

    /// Starts etcd and waits (bounded) until it accepts connections; if it exits first, why.
    fn launch(&mut self) -> Result<(), String> {
        self.stop();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.log()).expect("etcd log file");
        let mut child = std::process::Command::new("etcd")
            .arg("--name=micro-test")
            .arg(format!("--data-dir={}", self.dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=micro-test={peer}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd is not installed: apt-get install -y etcd-server");
        await_listening(&mut child, self.client_port, &self.log())?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.log());
    }
}

/// A command for `program` (usually `env!("CARGO_BIN_EXE_test-node")`) that inherits no
/// `MICRO_*` variable, so each test says exactly what its child processes are configured
/// with, and logs only warnings.
pub fn command_without_micro_env(program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("MICRO_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "micro=warn");
    cmd
}

/// A one-node service record, with a `zone` in its node metadata.
pub fn one_node(name: &str, version: &str, node: &str, zone: &str) -> micro::registry::Service {
    micro::registry::Service {
        name: name.into(),
        version: version.into(),
        nodes: vec![micro::registry::Node {
            id: node.into(),
            address: "127.0.0.1:9000".into(),
            metadata: [("zone".to_owned(), zone.to_owned())].into(),
        }],
        ..Default::default()
    }
}

/// The next registry event, waiting at most 10 s.
///
/// # Panics
/// When none comes, or the watch ended.
pub async fn next_event(w: &mut micro::registry::Watcher) -> micro::registry::Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch is open")
}

/// Frames built and read by hand, as a hostile or broken peer would (see `micro::wire`).
pub mod raw {
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncReadExt};

    /// A request frame, length prefix included, with a bincode (1) or JSON (2) body.
    pub fn request(
        id: u64,
        content_type: u8,
        service: &str,
        endpoint: &str,
        body: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![1u8, content_type, 0, 0];
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        for s in [service, endpoint] {
            f.extend_from_slice(&(s.len() as u16).to_be_bytes());
            f.extend_from_slice(s.as_bytes());
        }
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(body);
        prefixed(&f)
    }

    /// A reply frame (kind 2) answering `id`, length prefix included.
    pub fn reply(id: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![2u8, content_type, 0, 0];
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(body);
        prefixed(&f)
    }

    fn prefixed(frame: &[u8]) -> Vec<u8> {
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        out
    }

    /// A bincode body declaring a string, byte string, sequence or map of `len` elements,
    /// followed by three bytes: what an attacker sends to make a decoder allocate `len`.
    pub fn length_bomb(len: u64) -> Vec<u8> {
        let mut body = vec![0xfd];
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(b"abc");
        body
    }

    /// One frame as (kind, call id, rest after the 12-byte header), waiting at most 10 s;
    /// `None` when the stream ended first.
    pub async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> Option<(u8, u64, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await.ok()?;
            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut frame).await.ok()?;
            let id = u64::from_be_bytes(frame[4..12].try_into().unwrap());
            Some((frame[0], id, frame[12..].to_vec()))
        })
        .await
        .expect("a frame or the end of the stream within 10 s")
    }

    /// The call id of the next frame, without a time limit (a client keeps its connection
    /// open between calls); `None` when the stream ended.
    pub async fn next_request(s: &mut (impl AsyncRead + Unpin)) -> Option<u64> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame).await.ok()?;
        Some(u64::from_be_bytes(frame.get(4..12)?.try_into().ok()?))
    }

    /// Reads one request frame (as a server would) and returns its call id.
    pub async fn read_request_id(s: &mut (impl AsyncRead + Unpin)) -> u64 {
        let (kind, id, _) = read_frame(s).await.expect("a request");
        assert_eq!(kind, 1, "a request frame");
        id
    }

    /// This process's resident memory in bytes, from `/proc/self/statm`.
    pub fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
}
