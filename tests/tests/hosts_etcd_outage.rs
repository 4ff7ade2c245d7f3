//! etcd unreachable from one host for a while (test hosts are network namespaces on a
//! bridge, see `tests::hosts`): etcd on host 0, a service on host 1, a caller on host 2.
//! While host 2 cannot reach host 0, it keeps calling the service it already knows, from
//! its cache; and after. Skipped (saying why) unless run as root.

use std::time::Duration;

use tests::hosts::{Network, Proc};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");

/// Calls made while etcd is out of reach: at one every 20 ms, several seconds, past the
/// client's cache lifetime without a watch.
const DURING: usize = 300;

fn next(load: &Proc) -> String {
    load.line(Duration::from_secs(20))
        .expect("the caller hangs: no call finished within 20 s")
}

#[test]
fn a_host_that_loses_etcd_keeps_calling_known_services() {
    let Some(net) = Network::new(
        "a_host_that_loses_etcd_keeps_calling_known_services",
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
    let server = net.spawn(1, &net.node(&["host-serve", "work"]), &env);
    server.expect("serving ", Duration::from_secs(30));
    let ok = format!("ok {}", server.pid());
    let load = net.spawn(
        2,
        &net.node(&["load", "work", "2000", "20", "1000"]),
        &env[1..],
    );
    for _ in 0..20 {
        assert_eq!(next(&load), ok, "before the outage");
    }

    net.block(2, 0, true);
    assert!(
        !net.reachable(2, &etcd, Duration::from_millis(300)),
        "etcd is still reachable from host 2"
    );
    let mut answered = 0;
    for _ in 0..DURING {
        let line = next(&load);
        assert_eq!(
            line, ok,
            "a call failed while etcd was out of reach ({answered} answered)"
        );
        answered += 1;
    }
    net.block(2, 0, false);
    assert!(net.reachable(2, &etcd, Duration::from_secs(10)));
    for _ in 0..50 {
        assert_eq!(next(&load), ok, "after the outage");
    }
    println!("etcd outage figures: {answered} calls answered from the cache, 0 failed");
}
