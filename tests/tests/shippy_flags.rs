//! The shippy flow across processes configured by flags only, with a registry other than
//! the default (etcd) and the NATS broker: the consignment service's handler calls the
//! vessel service through its own client (so through etcd, as its flags say), and
//! publishes through NATS to a subscriber in a third process.
//!
//! Regression: a service started with `--registry etcd` registered in etcd but looked its
//! dependencies up in the host-local registry (`404 service … not found`).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tests::{EtcdServer, NatsServer, command_without_micro_env};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

/// A child process whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = command_without_micro_env(NODE)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("test-node runs");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next line starting with `prefix`, waiting at most 30 s.
    fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no `{prefix}` line: {e}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_handler_calls_another_service_through_the_registry_its_flags_name() {
    let etcd = EtcdServer::start();
    let nats = NatsServer::start();
    let flags = [
        "--registry",
        "etcd",
        "--registry_address",
        etcd.endpoint.as_str(),
        "--broker",
        "nats",
        "--broker_address",
        nats.url.as_str(),
    ];
    let with = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .chain(flags.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| Proc::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let vessel = run(with(&["vessel"]));
    vessel.expect("serving ");
    let consignment = run(with(&["consignment"]));
    consignment.expect("serving ");
    let subscriber = run(with(&["sub", "consignment.created"]));
    subscriber.expect("ready");

    let creator = run(with(&["create", "3"]));
    let vessel_pid = vessel.child.id().to_string();
    for id in 0..3 {
        let line = creator.expect("created ");
        assert_eq!(
            line,
            format!("created {id} vessel-{id} {vessel_pid}"),
            "the vessel process chose the vessel"
        );
        // The body is the bincode encoding of the string: a length, then the text.
        let event = subscriber.expect("got ");
        assert!(event.ends_with(&format!("{id} on vessel-{id}")), "{event}");
    }
}
