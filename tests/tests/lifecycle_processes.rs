//! Real processes: zero-config discovery, SIGKILL, SIGTERM with calls in flight, two
//! instances, and configuration errors at start-up.

use std::collections::HashSet;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::registry::{LocalRegistry, Registry};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

/// A child process killed when dropped, so a failing test leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "process {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A unique service name, so runs never see each other's entries.
fn unique(tag: &str) -> String {
    format!("life-{tag}-{}-{:x}", std::process::id(), fastrand_u64())
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// A `test-node` command with no `MICRO_*` variable from this environment.
fn node(args: &[&str]) -> Command {
    let mut cmd = tests::command_without_micro_env(NODE);
    cmd.args(args);
    cmd
}

fn spawn(mut cmd: Command) -> Proc {
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn test-node"),
    )
}

/// Polls the default registry until `name` has `count` nodes; returns them.
async fn nodes_of(
    registry: &Arc<dyn Registry>,
    name: &str,
    count: usize,
) -> Vec<micro::registry::Node> {
    let start = Instant::now();
    loop {
        if let Ok(services) = registry.get_service(name).await {
            let nodes: Vec<_> = services.into_iter().flat_map(|s| s.nodes).collect();
            if nodes.len() == count {
                return nodes;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never had {count} node(s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn default_registry() -> Arc<dyn Registry> {
    Arc::new(LocalRegistry::new())
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_client_processes_find_each_other_with_no_configuration() {
    let name = unique("zero-config");
    let mut server = spawn(node(&["serve", &name]));
    nodes_of(&default_registry(), &name, 1).await;

    let out: Output = node(&["call", &name, "3"]).output().expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!("reply from {}", server.pid());
    assert_eq!(
        stdout.lines().filter(|l| *l == expected).count(),
        3,
        "{stdout}"
    );

    sigterm(server.pid());
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    // Deregistered on the way out.
    assert!(default_registry().get_service(&name).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_sigkill_disappears_within_its_ttl() {
    let name = unique("sigkill");
    let ttl = Duration::from_secs(2);
    let mut cmd = node(&["serve", &name]);
    cmd.env("MICRO_REGISTER_TTL", "2s")
        .env("MICRO_REGISTER_INTERVAL", "500ms");
    let mut server = spawn(cmd);
    let registry = default_registry();
    nodes_of(&registry, &name, 1).await;

    server.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = server.0.wait();
    // Bounded: the entry must be gone by the TTL (plus the poll and a little slack).
    while registry.get_service(&name).await.is_ok() {
        assert!(
            killed.elapsed() < ttl + Duration::from_millis(1500),
            "still registered {:?} after SIGKILL",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_calls_in_flight_loses_none_and_exits_0() {
    let name = unique("sigterm");
    let mut cmd = node(&["serve", &name]);
    cmd.env("MICRO_SERVER_DRAIN", "300ms");
    let mut server = spawn(cmd);
    nodes_of(&default_registry(), &name, 1).await;

    let client = micro::Client::builder()
        .registry(default_registry())
        .fast_path(false)
        .timeout(Duration::from_secs(30))
        .build();
    let service: Arc<str> = name.as_str().into();
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let (client, service) = (client.clone(), service.clone());
            tokio::spawn(async move { client.call::<u64, u32>(service, "Work.Work", 5).await })
        })
        .collect();

    // Wait until the server holds most of them, then ask it to stop.
    let stats_client = client.clone();
    let start = Instant::now();
    loop {
        let stats: micro::Stats = stats_client
            .call(name.as_str().into(), "Debug.Stats", ())
            .await
            .unwrap();
        if stats.in_flight >= 100 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "calls never piled up: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigterm(server.pid());

    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(pid) => {
                assert_eq!(pid, server.pid());
                ok += 1;
            }
            Err(e) => panic!("a call in flight was lost: {e}"),
        }
    }
    assert_eq!(ok, 200);
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "server exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_one_service_both_receive_calls() {
    let name = unique("two");
    let a = spawn(node(&["serve", &name]));
    let b = spawn(node(&["serve", &name]));
    nodes_of(&default_registry(), &name, 2).await;

    let client = micro::Client::builder()
        .registry(default_registry())
        .selector(micro::selector::RoundRobin::default())
        .build();
    let mut pids = HashSet::new();
    for _ in 0..10 {
        let pid: u32 = client
            .call(name.as_str().into(), "Work.Work", 0u64)
            .await
            .unwrap();
        pids.insert(pid);
    }
    assert_eq!(pids, HashSet::from([a.pid(), b.pid()]));
}

#[test]
fn a_bad_setting_stops_start_up_naming_it() {
    for (var, value, expected) in [
        (
            "MICRO_REGISTRY",
            "zookeeper",
            "invalid MICRO_REGISTRY `zookeeper`: expected one of local, memory",
        ),
        (
            "MICRO_REGISTER_TTL",
            "forever",
            "invalid MICRO_REGISTER_TTL `forever`",
        ),
        (
            "MICRO_SERVER_ADDRESS",
            "nowhere",
            "invalid MICRO_SERVER_ADDRESS `nowhere`",
        ),
        (
            "MICRO_TRANSPORT",
            "smoke",
            "invalid MICRO_TRANSPORT `smoke`: expected one of tcp, memory",
        ),
    ] {
        let out = node(&["serve", "bad-config"])
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{var}: {stderr}");
    }
    let out = node(&["serve", "bad-config", "--client_retries", "many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --client_retries `many`"));
}

#[test]
fn help_lists_every_variable_and_flag() {
    let out = node(&["serve", "help", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "server_address",
        "server_name",
        "server_version",
        "server_advertise",
        "server_metadata",
        "registry",
        "registry_address",
        "register_ttl",
        "register_interval",
        "client_request_timeout",
        "client_retries",
        "transport",
        "broker",
        "broker_address",
    ] {
        assert!(
            help.contains(&format!("--{name} ")),
            "--{name} missing:\n{help}"
        );
        let var = format!("MICRO_{}", name.to_uppercase());
        assert!(help.contains(&var), "{var} missing:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_variables_in_a_real_process() {
    let name = unique("flags");
    let dir = std::env::temp_dir().join(format!("micro-flags-{}", std::process::id()));
    let mut cmd = node(&[
        "serve",
        "ignored",
        "--server_name",
        &name,
        "--server_version=2.0.0",
        "--server_metadata",
        "zone=a",
        "--registry_address",
        dir.to_str().unwrap(),
    ]);
    cmd.env("MICRO_SERVER_VERSION", "1.0.0")
        .env("MICRO_SERVER_NAME", "also-ignored");
    let mut server = spawn(cmd);
    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::at(&dir));
    nodes_of(&registry, &name, 1).await;
    let found = registry.get_service(&name).await.unwrap();
    assert_eq!(found[0].version, "2.0.0");
    assert_eq!(
        found[0].nodes[0].metadata.get("zone").map(String::as_str),
        Some("a")
    );
    sigterm(server.pid());
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let _ = std::fs::remove_dir_all(&dir);
}
