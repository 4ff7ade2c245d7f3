//! What a service prints when its program installs no subscriber: `Service::run`'s default
//! logs, as text or JSON, and start-up errors as one readable line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use micro::registry::Registry;

const PLAIN: &str = env!("CARGO_BIN_EXE_test-plain");
const LIMIT: Duration = Duration::from_secs(20);

/// A child process killed when dropped, so a failing test leaves nothing behind.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `test-plain` on a memory registry and broker (nothing shared with other tests),
    /// with these variables on top, reading its stderr line by line.
    fn start(vars: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(PLAIN);
        for (key, _) in std::env::vars() {
            if key.starts_with("MICRO_") || key.starts_with("RUST_LOG") {
                cmd.env_remove(key);
            }
        }
        cmd.envs([
            ("MICRO_REGISTRY", "memory"),
            ("MICRO_BROKER", "memory"),
            ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
        ]);
        cmd.envs(vars.iter().copied());
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn test-plain");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Lines until one contains `needle` (inclusive); fails after [`LIMIT`] or at the end.
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(LIMIT) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e}); saw {seen:#?}"),
            }
        }
    }

    fn sigterm_and_wait(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < LIMIT, "test-plain did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_service_with_no_subscriber_logs_start_and_stop_as_text() {
    let mut plain = Proc::start(&[]);
    let lines = plain.until("registered");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("listening on 127.0.0.1:")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "colour on a pipe"
    );
    assert!(plain.sigterm_and_wait().success());
    plain.until("stopped");
}

#[test]
fn micro_log_format_json_prints_one_object_per_line() {
    let mut plain = Proc::start(&[("MICRO_LOG_FORMAT", "json")]);
    let lines = plain.until("registered");
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["level"], "INFO", "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""service":"greeter""#) && l.contains("listening on")),
        "{lines:#?}"
    );
    assert!(plain.sigterm_and_wait().success());
}

#[tokio::test]
async fn rust_log_chooses_what_is_printed() {
    // Registered through the host's registry, so the test knows it started without a line.
    let salt = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let name = format!("logs-quiet-{}-{salt:x}", std::process::id());
    let mut quiet = Proc::start(&[
        ("RUST_LOG", "warn"),
        ("MICRO_REGISTRY", "local"),
        ("MICRO_SERVER_NAME", &name),
    ]);
    let registry = micro::registry::LocalRegistry::new();
    let start = std::time::Instant::now();
    while !registry
        .get_service(&name)
        .await
        .is_ok_and(|s| s.iter().any(|s| !s.nodes.is_empty()))
    {
        assert!(start.elapsed() < LIMIT, "{name} never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(quiet.sigterm_and_wait().success());
    let printed: Vec<String> = quiet.lines.iter().collect();
    assert_eq!(
        printed,
        Vec::<String>::new(),
        "info lines below RUST_LOG=warn"
    );
}

#[test]
fn a_start_up_error_prints_as_one_readable_line() {
    let out = Command::new(PLAIN)
        .env("MICRO_REGISTRY", "zookeeper")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "Error: micro.config: invalid MICRO_REGISTRY `zookeeper`: expected one of local, memory"
        ),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("(400 Bad Request)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("Error {"), "{stderr}");
}
