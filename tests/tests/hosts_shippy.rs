//! The shippy-like flow across three test hosts (network namespaces on a bridge, see
//! `tests::hosts`): a caller on host 2 books consignments with the service on host 0, whose
//! handler asks the vessel service on host 1; each booking is announced to a subscriber on
//! host 2. Every process is configured only with `MICRO_SERVER_ADDRESS=:0` and the
//! registry and broker variables. Skipped (saying why) unless run as root.

use std::collections::BTreeSet;
use std::time::Duration;

use tests::hosts::{Network, Proc};

const NODE: &str = env!("CARGO_BIN_EXE_test-node");
const BOOKINGS: usize = 20;

/// The `serving ADDRESS` line of a service process: the address it registered.
fn registered(p: &Proc) -> String {
    p.expect("serving ", Duration::from_secs(30))
}

fn shippy(test: &str, nats: bool) {
    let Some(net) = Network::new(test, 3, NODE) else {
        return;
    };
    let etcd = net.start_etcd(0);
    let nats_url = if nats {
        net.start_nats(0)
    } else {
        String::new()
    };
    let mut env = vec![
        ("MICRO_SERVER_ADDRESS", ":0"),
        ("MICRO_REGISTRY", "etcd"),
        ("MICRO_REGISTRY_ADDRESS", etcd.as_str()),
    ];
    if nats {
        env.push(("MICRO_BROKER", "nats"));
        env.push(("MICRO_BROKER_ADDRESS", nats_url.as_str()));
    }

    let vessel = net.spawn(1, &net.node(&["vessel"]), &env);
    let consignment = net.spawn(0, &net.node(&["consignment"]), &env);
    let at = registered(&vessel);
    assert!(
        at.starts_with(&format!("{}:", net.host(1).ip)),
        "vessel registered {at}, not its host's bridge address"
    );
    let at = registered(&consignment);
    assert!(
        at.starts_with(&format!("{}:", net.host(0).ip)),
        "consignment registered {at}"
    );
    let subscriber = net.spawn(2, &net.node(&["sub", "consignment.created"]), &env);
    subscriber.expect("ready", Duration::from_secs(30));

    let mut caller = net.spawn(2, &net.node(&["create", &BOOKINGS.to_string()]), &env);
    for id in 0..BOOKINGS {
        let line = caller.expect("created ", Duration::from_secs(30));
        assert_eq!(
            line,
            format!("{id} vessel-{id} {}", vessel.pid()),
            "booking {id} went elsewhere"
        );
    }
    assert!(caller.wait_exit(Duration::from_secs(30)).success());

    let mut events = BTreeSet::new();
    while events.len() < BOOKINGS {
        let line = subscriber.expect("got ", Duration::from_secs(30));
        let id: usize = (0..BOOKINGS)
            .find(|id| line.ends_with(&format!("{id} on vessel-{id}")))
            .unwrap_or_else(|| panic!("unexpected event {line:?}"));
        assert!(events.insert(id), "event {id} delivered twice");
    }
}

#[test]
fn shippy_across_hosts_with_etcd_and_nats() {
    shippy("shippy_across_hosts_with_etcd_and_nats", true);
}

#[test]
fn shippy_across_hosts_with_the_embedded_broker() {
    shippy("shippy_across_hosts_with_the_embedded_broker", false);
}

/// The tutorial's configuration on two hosts: `MICRO_SERVER_ADDRESS=:0` and a registry,
/// nothing else, and the service is called from the other host.
#[test]
fn a_service_on_colon_zero_is_called_from_another_host() {
    let Some(net) = Network::new(
        "a_service_on_colon_zero_is_called_from_another_host",
        2,
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
    let at = registered(&server);
    assert!(
        at.starts_with(&format!("{}:", net.host(1).ip)),
        "registered {at}"
    );
    let env = &env[1..];
    let mut caller = net.spawn(0, &net.node(&["call", "work", "3"]), env);
    for _ in 0..3 {
        let pid = caller.expect("reply from ", Duration::from_secs(30));
        assert_eq!(pid, server.pid().to_string());
    }
    assert!(caller.wait_exit(Duration::from_secs(30)).success());
}
