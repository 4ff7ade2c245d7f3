//! The mDNS registry on the IPv4 loopback interface only, so that no multicast leaves the
//! machine: two registries in one process, a node in another process found and called, its
//! disappearance after kill -9, and the expiry of a registration that is not renewed.
//!
//! The mDNS daemon joins its multicast group on every interface for a moment before it is
//! told to use loopback only, and the kernel then reports leaving the group on each of them.
//! So these tests run only in a network namespace of their own, with `lo` as its only
//! interface: `.ci/run` runs them under `unshare -n`. Elsewhere, and where multicast on
//! 127.0.0.1 does not come back to this machine's own sockets, each test is skipped, saying
//! why on stderr.

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use micro::registry::{
    Action, Endpoint, MdnsRegistry, Registry, RegistryError, Service, Value, Watcher,
};

const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// Whether a datagram multicast on the loopback interface comes back to a socket of this
/// process. When not, says so (uncaptured, so it shows in `cargo test` output).
fn loopback_multicast_works(test: &str) -> bool {
    // /proc/net/dev lists the interfaces of this process's own network namespace.
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
        .collect();
    if interfaces.iter().any(|i| i != "lo") {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: interfaces besides lo ({interfaces:?}) could see mDNS group \
             reports; run in a network namespace of its own, as .ci/run does: \
             unshare -n sh -c 'ip link set lo up && cargo test -p tests --test registry_mdns'"
        );
        return false;
    }
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let rx = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        rx.join_multicast_v4(&MDNS_GROUP, &Ipv4Addr::LOCALHOST)
            .map_err(|e| format!("joining {MDNS_GROUP} on 127.0.0.1: {e}"))?;
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let port = rx.local_addr().map_err(|e| e.to_string())?.port();
        // A loopback source address makes the kernel send multicast on `lo`, and only there.
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        tx.set_multicast_ttl_v4(1).map_err(|e| e.to_string())?;
        tx.send_to(b"micro-probe", (MDNS_GROUP, port))
            .map_err(|e| format!("sending to {MDNS_GROUP} from 127.0.0.1: {e}"))?;
        let mut buf = [0; 32];
        loop {
            match rx.recv_from(&mut buf) {
                Ok((n, _)) if &buf[..n] == b"micro-probe" => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(format!("nothing came back: {e}")),
            }
        }
    });
    match probe {
        Ok(()) => true,
        Err(why) => {
            let flags = std::fs::read_to_string("/sys/class/net/lo/flags").unwrap_or_default();
            let multicast_flag = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
                .map(|f| f & 0x1000 != 0);
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: multicast on the loopback interface does not work here ({why}); \
                 lo MULTICAST flag: {multicast_flag:?} (as root: `ip link set lo up multicast on`)"
            );
            false
        }
    }
}

/// A service name no other test run on this machine uses: mDNS on loopback is shared by
/// every process of the machine.
fn unique(name: &str) -> String {
    format!("mdns-{}-{name}", std::process::id())
}

/// Polls `lookup` every 20 ms until `done` holds of its result, for at most 10 s.
async fn eventually<T, F>(what: &str, mut lookup: impl FnMut() -> F, done: impl Fn(&T) -> bool) -> T
where
    F: std::future::Future<Output = T>,
{
    let start = Instant::now();
    loop {
        let value = lookup().await;
        if done(&value) {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_delete(watcher: &mut Watcher) -> Service {
    // Bounded: each wait is, and renewals of unchanged records are no events.
    for _ in 0..10 {
        let event = tests::next_event(watcher).await;
        if event.action == Action::Delete {
            return event.service;
        }
    }
    panic!("no delete among 10 events");
}

/// A child process killed (SIGKILL) when dropped, so that a failing test leaves none behind.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn test_node(args: &[&str]) -> std::process::Command {
    let mut cmd = tests::command_without_micro_env(env!("CARGO_BIN_EXE_test-node"));
    cmd.args(args)
        .env("MICRO_REGISTRY", "mdns")
        .env("MICRO_REGISTRY_ADDRESS", "loopback");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_in_one_process_register_get_list_watch_and_deregister() {
    if !loopback_multicast_works("two_registries_in_one_process") {
        return;
    }
    let (a, b) = (MdnsRegistry::loopback(), MdnsRegistry::loopback());
    assert!(a.is_loopback());
    let name = unique("greeter");
    let mut watcher = b.watch(Some(&name)).await.unwrap();
    let ttl = Some(Duration::from_secs(30));

    // Big enough to need many TXT strings, and a packet of its own.
    let mut big = tests::one_node(&name, "1.0.0", "n/1", "a");
    big.endpoints = (0..20)
        .map(|i| Endpoint {
            name: format!("Greeter.Method{i}"),
            request: Some(Value::named("HelloRequest")),
            response: Some(Value::named("HelloReply")),
            metadata: Default::default(),
        })
        .collect();
    big.metadata.insert("note".into(), "ü".repeat(1500));
    // Metadata cannot be cut (type descriptions would be): too large for a packet.
    let mut too_big = big.clone();
    too_big.metadata.insert("note".into(), "ü".repeat(4500));
    assert!(matches!(
        a.register(&too_big, ttl).await,
        Err(RegistryError::Invalid(_))
    ));
    a.register(&big, ttl).await.unwrap();
    a.register(&tests::one_node(&name, "2.0.0", "n-2", "a"), ttl)
        .await
        .unwrap();
    a.register(&tests::one_node(&unique("other"), "1", "o", "a"), ttl)
        .await
        .unwrap();
    assert_eq!(
        a.get_service(&name).await.unwrap().len(),
        2,
        "its own registry sees a node at once"
    );

    let found = eventually(
        "both versions in the other registry",
        || b.get_service(&name),
        |r| r.as_ref().is_ok_and(|s| s.len() == 2),
    )
    .await
    .unwrap();
    assert_eq!(found[0], big, "the whole record round-trips");
    assert_eq!(found[1].nodes[0].id, "n-2");
    let listed = b.list_services().await.unwrap();
    assert_eq!(listed.iter().filter(|s| s.name == name).count(), 2);
    assert!(listed.iter().any(|s| s.name == unique("other")));
    assert!(matches!(
        b.get_service(&unique("nobody")).await,
        Err(RegistryError::NotFound(_))
    ));

    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    // Renewing the same record is no event; changing it is an update.
    a.register(&big, ttl).await.unwrap();
    let mut changed = big.clone();
    changed.nodes[0].metadata.insert("zone".into(), "b".into());
    a.register(&changed, ttl).await.unwrap();
    let update = tests::next_event(&mut watcher).await;
    assert_eq!(update.action, Action::Update);
    assert_eq!(update.service, changed);

    a.deregister(&changed).await.unwrap();
    let gone = next_delete(&mut watcher).await;
    assert_eq!(gone.nodes[0].id, "n/1");
    let left = eventually(
        "only 2.0.0 left",
        || b.get_service(&name),
        |r| r.as_ref().is_ok_and(|s| s.len() == 1),
    )
    .await
    .unwrap();
    assert_eq!(left[0].version, "2.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_not_renewed_within_its_ttl_expires_everywhere() {
    if !loopback_multicast_works("a_registration_not_renewed") {
        return;
    }
    let (a, b) = (MdnsRegistry::loopback(), MdnsRegistry::loopback());
    let name = unique("short");
    let mut watcher = b.watch(Some(&name)).await.unwrap();
    // Let `b` start browsing first: with a TTL this short, a node it heard of only from its
    // next query (a second later) would be gone by then.
    b.list_services().await.unwrap();
    let ttl = Duration::from_secs(1);
    a.register(&tests::one_node(&name, "1", "s-1", "a"), Some(ttl))
        .await
        .unwrap();
    let registered = Instant::now();
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    next_delete(&mut watcher).await;
    assert!(
        registered.elapsed() < ttl + Duration::from_secs(2),
        "{:?}",
        registered.elapsed()
    );
    assert!(b.get_service(&name).await.is_err());
    assert!(
        a.get_service(&name).await.is_err(),
        "withdrawn by its own registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_another_process_is_found_called_and_dropped_after_kill_9() {
    if !loopback_multicast_works("a_node_in_another_process") {
        return;
    }
    let registry = MdnsRegistry::loopback();
    let name = unique("leased");
    let mut watcher = registry.watch(Some(&name)).await.unwrap();
    let mut node = Node(
        test_node(&["serve", &name])
            .env("MICRO_REGISTER_TTL", "2s")
            .env("MICRO_REGISTER_INTERVAL", "500ms")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let created = tests::next_event(&mut watcher).await;
    assert_eq!(created.action, Action::Create);
    assert_eq!(created.service.name, name);

    // A third process finds it through mDNS too, and calls it.
    let call = test_node(&["call", &name, "2"]).output().unwrap();
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
    let replies = String::from_utf8_lossy(&call.stdout);
    assert_eq!(
        replies.lines().collect::<Vec<_>>(),
        vec![format!("reply from {}", node.0.id()); 2]
    );

    node.0.kill().unwrap();
    let killed = Instant::now();
    let _ = node.0.wait();
    next_delete(&mut watcher).await;
    assert!(
        killed.elapsed() < Duration::from_secs(2 + 2),
        "{:?}",
        killed.elapsed()
    );
    assert!(registry.get_service(&name).await.is_err());
}
