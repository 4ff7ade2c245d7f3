//! Test hosts: network namespaces joined by a bridge, for tests across machines.
//!
//! [`Network::new`] makes, as root, a namespace holding a bridge and one namespace per host,
//! each with an `eth0` (a veth whose other end is on the bridge) and `lo`. Hosts get
//! `10.231.0.1`, `10.231.0.2`, …; the range exists only inside these namespaces, so nothing
//! touches the machine's own interfaces, and networks of tests running at once never meet.
//! Names carry the test process's id and a counter, so parallel tests and reruns never
//! collide; a network left behind by a test process that was killed is removed by the next
//! one.
//!
//! Processes run inside a host with `ip netns exec`. Everything is removed when the
//! [`Network`] is dropped, a failing or panicking test included: its processes are killed,
//! its namespaces (and with them the veths and the bridge) deleted, and when the test
//! panicked, the last lines each process wrote to stderr are printed.
//!
//! Without root or without `ip` (iproute2), [`Network::new`] prints `SKIPPED: …` and
//! returns `None`.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where namespace names start; followed by the owning process id.
const PREFIX: &str = "mh";

static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// One test host: a network namespace with an address on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name, for `ip netns exec`.
    pub ns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

/// Hosts on a bridge, removed on drop. See the [module docs](self).
#[derive(Debug)]
pub struct Network {
    bridge: String,
    hosts: Vec<Host>,
    dir: PathBuf,
    node: PathBuf,
    servers: Mutex<Vec<Proc>>,
    logs: Arc<Mutex<Vec<(String, PathBuf)>>>,
    procs: AtomicU32,
}

/// Why test hosts cannot be made here, if they cannot.
fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some("network namespaces need root (CI runs as root)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`ip` is missing: apt-get install -y iproute2".into()),
    }
}

/// Runs `ip ARGS`; panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Kills every process in namespace `ns` (all of them ours) and deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Removes namespaces left behind by test processes that no longer run.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let owner = ns
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('n'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            remove_namespace(ns);
        }
    }
}

impl Network {
    /// Makes `hosts` test hosts on a bridge, for the test named `test`, whose processes are
    /// `node` (the `test-node` binary). `None`, after printing `SKIPPED: …`, where that
    /// cannot be done.
    ///
    /// # Panics
    /// When an `ip` command fails (what was made so far is removed).
    pub fn new(test: &str, hosts: usize, node: &str) -> Option<Network> {
        if let Some(why) = unsupported() {
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
            return None;
        }
        assert!((1..250).contains(&hosts));
        sweep_stale();
        let id = format!(
            "{PREFIX}{}n{}",
            std::process::id(),
            NETWORKS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("micro-{id}"));
        std::fs::create_dir_all(&dir).expect("create the network's directory");
        let mut net = Network {
            bridge: format!("{id}b"),
            hosts: Vec::new(),
            dir,
            node: node.into(),
            servers: Mutex::new(Vec::new()),
            logs: Arc::new(Mutex::new(Vec::new())),
            procs: AtomicU32::new(0),
        };
        // Created before the hosts, so that a failure below is cleaned up by `drop`.
        ip(&["netns", "add", &net.bridge]);
        ip(&["-n", &net.bridge, "link", "set", "lo", "up"]);
        ip(&["-n", &net.bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.bridge, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let host = Host {
                ns: format!("{id}h{i}"),
                ip: Ipv4Addr::new(10, 231, 0, i as u8 + 1),
            };
            ip(&["netns", "add", &host.ns]);
            net.hosts.push(host.clone());
            let port = format!("v{i}");
            ip(&[
                "-n",
                &net.bridge,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.ns,
            ]);
            ip(&["-n", &net.bridge, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &net.bridge, "link", "set", &port, "up"]);
            ip(&["-n", &host.ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &host.ns, "link", "set", "eth0", "up"]);
        }
        Some(net)
    }

    /// Host `i` (from 0).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// The command line of `test-node` with `args`, for [`Network::spawn`].
    pub fn node(&self, args: &[&str]) -> Vec<String> {
        std::iter::once(self.node.display().to_string())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect()
    }

    /// Starts `argv` on host `i` with exactly the variables `env` (plus `PATH`, `HOME` and
    /// `RUST_LOG`). Its stdout is read line by line ([`Proc::line`]); its stderr goes to a log
    /// printed if the test panics.
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn spawn(&self, i: usize, argv: &[String], env: &[(&str, &str)]) -> Proc {
        let n = self.procs.fetch_add(1, Ordering::Relaxed);
        let label = format!(
            "h{i}:{}#{n}",
            argv.iter()
                .skip(1)
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        );
        let log = self.dir.join(format!("{n}.log"));
        let stderr = std::fs::File::create(&log).expect("create a log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i].ns])
            .args(argv)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.as_os_str())
            .env("RUST_LOG", "micro=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.logs.lock().unwrap().push((label.clone(), log));
        Proc {
            child,
            lines,
            label,
        }
    }

    /// Starts etcd on host `i` and waits until it accepts connections; returns its
    /// endpoint, `IP:2379` (every port is free in a namespace of our own). It stops with
    /// the network.
    pub fn start_etcd(&self, i: usize) -> String {
        let host = &self.hosts[i];
        let client = format!("http://{}:2379", host.ip);
        let peer = format!("http://{}:2380", host.ip);
        let data = self.dir.join(format!("etcd-{i}"));
        let argv: Vec<String> = vec![
            "etcd".into(),
            "--name=hosts-test".into(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=hosts-test={peer}"),
        ];
        let endpoint = format!("{}:2379", host.ip);
        self.start_server(i, &argv, &endpoint);
        endpoint
    }

    /// Starts nats-server on host `i` and waits until it accepts connections; returns its
    /// URL, `nats://IP:4222`. It stops with the network.
    pub fn start_nats(&self, i: usize) -> String {
        let host = &self.hosts[i];
        let argv: Vec<String> = ["nats-server", "-a", "0.0.0.0", "-p", "4222"]
            .map(String::from)
            .to_vec();
        self.start_server(i, &argv, &format!("{}:4222", host.ip));
        format!("nats://{}:4222", host.ip)
    }

    fn start_server(&self, i: usize, argv: &[String], endpoint: &str) {
        let server = self.spawn(i, argv, &[]);
        self.servers.lock().unwrap().push(server);
        let mut wait = self.spawn(i, &self.node(&["wait-tcp", endpoint]), &[]);
        let status = wait.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{} never listened on {endpoint}", argv[0]);
    }

    /// Whether something on host `from` can open a TCP connection to `addr` within `limit`.
    pub fn reachable(&self, from: usize, addr: &str, limit: Duration) -> bool {
        let ms = limit.as_millis().to_string();
        let mut probe = self.spawn(from, &self.node(&["wait-tcp", addr, &ms]), &[]);
        probe.wait_exit(limit + Duration::from_secs(10)).success()
    }

    /// Cuts host `i` off the network (its `eth0` goes down), or puts it back.
    pub fn link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hosts[i].ns, "link", "set", "eth0", state]);
    }

    /// Makes host `to` unreachable from host `from` (packets to it are dropped), or
    /// reachable again. Other hosts are not affected. Open TCP connections from `from` to
    /// `to` are aborted too, as a firewall that forgets them would: an idle connection
    /// would otherwise notice nothing for minutes.
    pub fn block(&self, from: usize, to: usize, blocked: bool) {
        let target = self.hosts[to].ip.to_string();
        let op = if blocked { "add" } else { "del" };
        let ns = &self.hosts[from].ns;
        ip(&["-n", ns, "route", op, "blackhole", &format!("{target}/32")]);
        if blocked {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "ss", "-K", "dst", &target])
                .output()
                .expect("run ss");
            assert!(
                out.status.success(),
                "ss -K: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.servers.lock().unwrap().clear();
        if std::thread::panicking() {
            for (label, log) in self.logs.lock().unwrap().iter() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let _ = writeln!(std::io::stderr(), "--- {label} stderr (last lines):");
                for line in tail.iter().rev() {
                    let _ = writeln!(std::io::stderr(), "    {line}");
                }
            }
        }
        for host in &self.hosts {
            remove_namespace(&host.ns);
        }
        remove_namespace(&self.bridge);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process on a test host, killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    lines: Receiver<String>,
    label: String,
}

impl Proc {
    /// Its process id (`ip netns exec` becomes the program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it writes on stdout, waiting at most `limit`; `None` when it wrote
    /// none in time or closed stdout.
    pub fn line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Reads lines until one starts with `prefix`, waiting at most `limit` in all; returns
    /// the rest of that line.
    ///
    /// # Panics
    /// When none comes in time.
    pub fn expect(&self, prefix: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self.line(left) {
                Some(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                None => panic!(
                    "{}: no line starting with `{prefix}` within {limit:?}",
                    self.label
                ),
            }
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.label);
    }

    /// Waits at most `limit` for it to exit.
    ///
    /// # Panics
    /// When it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "{} still runs after {limit:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
