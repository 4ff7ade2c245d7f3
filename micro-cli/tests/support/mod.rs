//! What the `micro` command's tests share: a private registry directory per test, the demo
//! service as a real process, the `micro` binary, and a small HTTP client.
//!
//! The demo service is the package's `demo` example (`examples/demo.rs`). `cargo test` builds
//! a package's examples before running its tests, so it is found beside the test binary in
//! `target/<profile>/examples/`; a run limited to one test target (`--test NAME`) builds no
//! example, hence `cargo build -p micro-cli --examples` first in that case.

#![allow(dead_code)] // each test file uses part of this

pub(crate) mod cdp;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro::registry::{LocalRegistry, Registry};

/// The `micro` binary under test.
pub(crate) const MICRO: &str = env!("CARGO_BIN_EXE_micro");

/// The service name of `examples/shippy.rs server`.
pub(crate) const SHIPPY: &str = "shippy.service.consignment";

/// How long any one step may take before a test gives up (the machine may be busy).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// An example binary of this package, such as `demo`.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p micro-cli --examples` (a plain \
         `cargo test -p micro-cli` builds it)",
        path.display()
    );
    path
}

/// A child process, killed when dropped so that a failing test leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) child: Child,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a supervisor stopping it would.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the exit, at most [`PATIENCE`].
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "process {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world: a registry directory of its own, which every process it starts uses.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) dir: PathBuf,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub(crate) fn new() -> World {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "micro-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("registry directory");
        World { dir }
    }

    /// `program` with only this world's registry: every other `MICRO_*` variable is cleared.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MICRO_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("MICRO_REGISTRY_ADDRESS", &self.dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    /// `micro ARGS…`
    pub(crate) fn micro(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(MICRO);
        cmd.args(args);
        cmd
    }

    /// Runs `micro ARGS…` to its end (at most [`PATIENCE`]).
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        run(self.micro(args))
    }

    /// Starts the demo service as `name` and waits until it has registered `nodes` nodes.
    pub(crate) fn demo(&self, name: &str) -> Proc {
        let before = self.nodes(name);
        let mut cmd = self.command(example("demo"));
        cmd.args(["--server_name", name])
            .env("MICRO_SERVER_DRAIN", "0s")
            .env("MICRO_METRICS_ADDRESS", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Proc {
            child: cmd.spawn().expect("start the demo service"),
        };
        self.wait_for_nodes(name, before + 1);
        proc
    }

    /// Starts the feed example service (streams of every kind) and waits until it has
    /// registered.
    pub(crate) fn feed(&self) -> Proc {
        let before = self.nodes("feed");
        let mut cmd = self.command(example("feed"));
        cmd.env("MICRO_SERVER_DRAIN", "0s")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Proc {
            child: cmd.spawn().expect("start the feed service"),
        };
        self.wait_for_nodes("feed", before + 1);
        proc
    }

    /// Starts the shippy vessel and consignment services (`examples/shippy.rs vessel` and
    /// `server`) and waits until both have registered.
    pub(crate) fn shippy(&self) -> (Proc, Proc) {
        let start = |what: &str, name: &str| {
            let before = self.nodes(name);
            let mut cmd = self.command(example("cli-shippy"));
            cmd.arg(what)
                .env("MICRO_SERVER_DRAIN", "0s")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let proc = Proc {
                child: cmd.spawn().expect("start a shippy service"),
            };
            self.wait_for_nodes(name, before + 1);
            proc
        };
        let vessel = start("vessel", "shippy.service.vessel");
        (vessel, start("server", SHIPPY))
    }

    /// Nodes of `name` registered now.
    pub(crate) fn nodes(&self, name: &str) -> usize {
        block_on(self.registry().get_service(name))
            .map(|versions| versions.iter().map(|s| s.nodes.len()).sum())
            .unwrap_or(0)
    }

    /// The addresses of the nodes of `name`.
    pub(crate) fn addresses(&self, name: &str) -> Vec<String> {
        block_on(self.registry().get_service(name))
            .map(|versions| {
                versions
                    .into_iter()
                    .flat_map(|s| s.nodes)
                    .map(|n| n.address)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `name` has exactly `count` nodes.
    pub(crate) fn wait_for_nodes(&self, name: &str, count: usize) {
        let start = Instant::now();
        while self.nodes(name) != count {
            assert!(
                start.elapsed() < PATIENCE,
                "{name} never had {count} node(s)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn registry(&self) -> LocalRegistry {
        LocalRegistry::at(&self.dir)
    }

    /// Starts `micro ARGS…` as a server (`api`, `web`) and returns it with the URL it printed.
    pub(crate) fn serve(&self, args: &[&str]) -> (Proc, String) {
        serve(self.micro(args))
    }
}

/// Starts `cmd`, a `micro` server (`api`, `web`), and returns it with the URL it printed.
pub(crate) fn serve(mut cmd: Command) -> (Proc, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start micro");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .rsplit_once(" listening on ")
        .map(|(_, url)| url.to_owned())
        .unwrap_or_else(|| panic!("no listening line, got {line:?}"));
    (proc, url)
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        &self.stdout
    }

    /// stdout as JSON.
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the failure shape of `micro call` and friends: exit 1, nothing on stdout, and
    /// micro's error JSON on stderr, which is returned.
    #[track_caller]
    pub(crate) fn error(&self) -> micro::Error {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:?}");
        assert_eq!(self.stdout, "", "nothing on stdout on failure: {self:?}");
        let err: micro::Error = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not micro's error JSON ({e}): {self:?}"));
        assert!(err.code >= 400 && !err.status.is_empty(), "{err:?}");
        err
    }

    /// Asserts a usage error: exit 2, with `needle` in the message on stderr.
    #[track_caller]
    pub(crate) fn usage(&self, needle: &str) {
        assert_eq!(self.code, Some(2), "expected exit 2: {self:?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:?}"
        );
    }
}

/// Runs `cmd` to its end, at most [`PATIENCE`], feeding it `stdin` if given.
pub(crate) fn run(cmd: Command) -> Run {
    run_with_input(cmd, None)
}

pub(crate) fn run_with_input(mut cmd: Command, input: Option<&str>) -> Run {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run micro");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    // Read both pipes on threads, so that a full pipe never stalls the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut proc = Proc { child };
    let status = proc.wait();
    Run {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `Output` of a command, for when the exit status alone matters.
pub(crate) fn output(mut cmd: Command) -> Output {
    cmd.output().expect("run")
}

/// Runs a future to completion on a small runtime of its own.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// Asserts an error answer: `status`, JSON content, micro's error JSON with the same code.
    #[track_caller]
    pub(crate) fn error(&self, status: u16) -> micro::Error {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let err: micro::Error = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not micro's error JSON ({e}): {self:?}"));
        assert_eq!(err.code, status, "{err:?}");
        err
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), to `base` + `path`.
pub(crate) fn http(
    method: &str,
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let authority = base.strip_prefix("http://").expect("http URL");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    // The authority dialed, unless the test names another host.
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send head");
    // A server may answer (413) and close before taking a large body: that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `POST base/path` with a JSON body.
pub(crate) fn post(base: &str, path: &str, body: &str) -> Response {
    http(
        "POST",
        base,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// `GET base/path`.
pub(crate) fn get(base: &str, path: &str) -> Response {
    http("GET", base, path, &[], b"")
}
