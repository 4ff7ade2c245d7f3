//! One host cut off during steady load (test hosts are network namespaces on a bridge, see
//! `tests::hosts`): host 0 runs etcd and a caller, hosts 1 and 2 an instance each of the
//! same service. While host 1's link is down, calls to it fail within their deadline and
//! the others go to host 2; nothing hangs; once the link is back, host 1 takes calls again
//! within one registration interval plus the client's cache refresh. Prints its figures.
//! Skipped (saying why) unless run as root.

use std::time::{Duration, Instant};

use micro::client::DEFAULT_EJECTION;
use tests::hosts::{Network, Proc};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");
/// Deadline of each call, in milliseconds.
const TIMEOUT_MS: u64 = 500;
/// Calls observed while the link is down.
const DURING: usize = 100;

/// One call's outcome, from a `load` line: the replying process, or the error's code.
fn outcome(line: &str) -> Result<u32, u16> {
    if let Some(pid) = line.strip_prefix("ok ") {
        return Ok(pid.parse().expect("a pid"));
    }
    let code = line
        .strip_prefix("err ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a load line: {line}"));
    Err(code)
}

/// The next call's outcome. A call never takes longer than its deadline plus the
/// period, so a wait of ten times that means the caller hangs.
fn next(load: &Proc) -> Result<u32, u16> {
    let line = load
        .line(Duration::from_millis(10 * (TIMEOUT_MS + 20)))
        .expect("the caller hangs: no call finished within ten deadlines");
    outcome(&line)
}

#[test]
fn a_host_cut_off_during_load_fails_over_and_comes_back() {
    let Some(net) = Network::new(
        "a_host_cut_off_during_load_fails_over_and_comes_back",
        3,
        NODE,
    ) else {
        return;
    };
    let etcd = net.start_etcd(0);
    let env = [
        ("MICRO_SERVER_ADDRESS", ":0"),
        ("MICRO_REGISTRY", "etcd"),
        ("MICRO_REGISTRY_ADDRESS", etcd.as_str()),
    ];
    let servers: Vec<Proc> = (1..3)
        .map(|i| net.spawn(i, &net.node(&["host-serve", "work"]), &env))
        .collect();
    for s in &servers {
        s.expect("serving ", Duration::from_secs(30));
    }
    let (cut, other) = (servers[0].pid(), servers[1].pid());
    let load = net.spawn(
        0,
        &net.node(&["load", "work", "5000", "20", &TIMEOUT_MS.to_string()]),
        &env[1..],
    );

    // Steady: both instances answer.
    let mut seen = (false, false);
    for _ in 0..500 {
        match next(&load) {
            Ok(pid) if pid == cut => seen.0 = true,
            Ok(pid) if pid == other => seen.1 = true,
            other => panic!("before the cut: {other:?}"),
        }
        if seen.0 && seen.1 {
            break;
        }
    }
    assert_eq!(seen, (true, true), "both instances answer before the cut");

    net.link(1, false);
    let (mut to_other, mut to_cut, mut failed) = (0, 0, 0);
    for _ in 0..DURING {
        match next(&load) {
            Ok(pid) if pid == other => to_other += 1,
            Ok(pid) if pid == cut => to_cut += 1,
            Ok(pid) => panic!("reply from unknown process {pid}"),
            // The deadline passed, or the client knew at once the node was unreachable.
            Err(408 | 503) => failed += 1,
            Err(code) => panic!("a call to the cut host failed with {code}, not a timeout"),
        }
    }
    // The one call in flight at the cut may still have been answered.
    assert!(to_cut <= 1, "{to_cut} replies from a host that is cut off");
    assert!(
        failed >= 1,
        "no call went to the cut host: the test proved nothing"
    );
    assert!(
        to_other > failed,
        "calls went on to the cut host instead of the other: {to_other} ok, {failed} failed"
    );

    net.link(1, true);
    let restored = Instant::now();
    let mut after = 0;
    let mut failed_after = 0;
    // The node's registration never lapsed (the cut is shorter than the TTL), so it is
    // back once the client stops avoiding it: its ejection period, within the bound below.
    let bound = micro::DEFAULT_REGISTER_INTERVAL + DEFAULT_EJECTION + Duration::from_secs(30);
    loop {
        after += 1;
        match next(&load) {
            Ok(pid) if pid == cut => break,
            Ok(_) => {}
            Err(_) => failed_after += 1,
        }
        assert!(
            restored.elapsed() < bound,
            "the host took no call within {bound:?} of its link coming back"
        );
    }
    let recovered = restored.elapsed();
    println!(
        "partition figures: {} calls while cut off: {to_other} answered by the other host, \
         {failed} failed (timeout or unavailable), {to_cut} answered by the cut host; link back: \
         the host answered again after {after} calls, {recovered:?} ({failed_after} failed meanwhile)",
        DURING
    );
}
