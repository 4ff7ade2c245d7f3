//! A rolling restart under steady load (test hosts are network namespaces on a bridge, see
//! `tests::hosts`): three instances of an idempotent service on hosts 1 to 3, a caller and
//! etcd on host 0. Each instance in turn gets SIGTERM, exits, and starts again; the next
//! goes once the new one has answered a call. Not one call fails. Prints its figures.
//! Skipped (saying why) unless run as root.

use std::time::Duration;

use tests::hosts::{Network, Proc};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

/// The next call's replying process; panics on a failed call, or when the caller hangs.
fn next(load: &Proc) -> u32 {
    let line = load
        .line(Duration::from_secs(20))
        .expect("the caller hangs: no call finished within 20 s");
    line.strip_prefix("ok ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("a call failed during the rolling restart: {line}"))
}

#[test]
fn a_rolling_restart_under_load_fails_no_call() {
    let Some(net) = Network::new("a_rolling_restart_under_load_fails_no_call", 4, NODE) else {
        return;
    };
    let etcd = net.start_etcd(0);
    let env = [
        ("MICRO_SERVER_ADDRESS", ":0"),
        ("MICRO_REGISTRY", "etcd"),
        ("MICRO_REGISTRY_ADDRESS", etcd.as_str()),
    ];
    let serve = net.node(&["host-serve", "work"]);
    let mut instances: Vec<Proc> = (1..4).map(|i| net.spawn(i, &serve, &env)).collect();
    for p in &instances {
        p.expect("serving ", Duration::from_secs(30));
    }
    let load = net.spawn(
        0,
        &net.node(&["load", "work", "20000", "10", "2000"]),
        &env[1..],
    );
    let mut calls = 0;
    // Steady first: every instance answers.
    let mut seen = [false; 3];
    while !seen.iter().all(|s| *s) {
        let pid = next(&load);
        calls += 1;
        if let Some(i) = instances.iter().position(|p| p.pid() == pid) {
            seen[i] = true;
        }
        assert!(calls < 2000, "not every instance answered: {seen:?}");
    }

    let before = calls;
    for (i, instance) in instances.iter_mut().enumerate() {
        instance.sigterm();
        let status = instance.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "instance {i} exited with {status}");
        *instance = net.spawn(i + 1, &serve, &env);
        instance.expect("serving ", Duration::from_secs(30));
        let fresh = instance.pid();
        let mut waited = 0;
        while next(&load) != fresh {
            waited += 1;
            assert!(waited < 5000, "the restarted instance {i} took no call");
        }
        calls += waited + 1;
    }
    println!(
        "rolling restart figures: {} calls during the restart of three instances, 0 failed",
        calls - before
    );
}
