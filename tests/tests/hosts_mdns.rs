//! The mDNS registry across test hosts (network namespaces on a bridge, see
//! `tests::hosts`): a service on one host is found and called from another with no server
//! at all. Its multicast stays inside the namespaces: every interface they have is the
//! test's own. Skipped (saying why) unless run as root.

use std::time::Duration;

use tests::hosts::Network;

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

#[test]
fn mdns_finds_a_service_on_another_host() {
    let Some(net) = Network::new("mdns_finds_a_service_on_another_host", 3, NODE) else {
        return;
    };
    let env = [("MICRO_SERVER_ADDRESS", ":0"), ("MICRO_REGISTRY", "mdns")];
    let servers: Vec<_> = (1..3)
        .map(|i| net.spawn(i, &net.node(&["host-serve", "work"]), &env))
        .collect();
    for (i, server) in servers.iter().enumerate() {
        let at = server.expect("serving ", Duration::from_secs(30));
        assert!(
            at.starts_with(&format!("{}:", net.host(i + 1).ip)),
            "registered {at}"
        );
    }
    let mut caller = net.spawn(
        0,
        &net.node(&["load", "work", "200", "5", "2000"]),
        &env[1..],
    );
    let mut seen = [0; 2];
    for _ in 0..200 {
        let line = caller
            .line(Duration::from_secs(10))
            .expect("a reply within 10 s");
        let pid = line
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("call failed: {line}"));
        let which = servers
            .iter()
            .position(|s| s.pid().to_string() == pid)
            .unwrap_or_else(|| panic!("reply from unknown process {pid}"));
        seen[which] += 1;
    }
    assert_eq!(
        caller.line(Duration::from_secs(10)).as_deref(),
        Some("done")
    );
    assert!(caller.wait_exit(Duration::from_secs(10)).success());
    assert!(seen.iter().all(|&n| n > 0), "calls per host: {seen:?}");
}
