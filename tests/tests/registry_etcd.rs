//! The etcd registry against a real etcd: register, list, get, watch, JSON layout, lease
//! expiry after kill -9, a registry restart, and calls served from the cache while etcd is
//! down.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::registry::{Action, EtcdRegistry, Registry};
use tests::EtcdServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_get_watch_and_deregister() {
    let etcd = EtcdServer::start();
    let registry = EtcdRegistry::new(&etcd.endpoint);
    let mut watcher = registry.watch(Some("greeter")).await.unwrap();

    registry
        .register(
            &tests::one_node("greeter", "1.0.0", "g-1", "a"),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    registry
        .register(
            &tests::one_node("greeter", "2.0.0", "g-2", "a"),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    registry
        .register(&tests::one_node("other", "1.0.0", "o-1", "a"), None)
        .await
        .unwrap();

    let found = registry.get_service("greeter").await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].version.as_str(), found[0].nodes[0].id.as_str()),
        ("1.0.0", "g-1")
    );
    assert_eq!(registry.list_services().await.unwrap().len(), 3);
    assert!(matches!(
        registry.get_service("nobody").await,
        Err(micro::registry::RegistryError::NotFound(_))
    ));

    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    // A changed record is an update; the same record again only keeps its lease alive.
    registry
        .register(
            &tests::one_node("greeter", "1.0.0", "g-1", "b"),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    registry
        .register(
            &tests::one_node("greeter", "1.0.0", "g-1", "b"),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let update = tests::next_event(&mut watcher).await;
    assert_eq!(update.action, Action::Update);
    assert_eq!(update.service.nodes[0].metadata["zone"], "b");
    registry
        .deregister(&tests::one_node("greeter", "1.0.0", "g-1", "b"))
        .await
        .unwrap();
    let delete = tests::next_event(&mut watcher).await;
    assert_eq!(
        (delete.action, delete.service.nodes[0].id.as_str()),
        (Action::Delete, "g-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_shows_go_micro_json() {
    let etcd = EtcdServer::start();
    let registry = EtcdRegistry::new(&etcd.endpoint);
    let mut record = tests::one_node("shippy.consignment", "1.0.0", "node-1", "a");
    record.endpoints.push(micro::registry::Endpoint {
        name: "Shipping.CreateConsignment".into(),
        request: Some(micro::registry::Value::named("Consignment")),
        response: Some(micro::registry::Value::named("Response")),
        ..Default::default()
    });
    registry
        .register(&record, Some(Duration::from_secs(30)))
        .await
        .unwrap();

    let out = Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd.endpoint,
            "get",
            "--prefix",
            "/micro/registry",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl is not installed: apt-get install -y etcd-client");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("/micro/registry/shippy.consignment/node-1")
    );
    let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(json["name"], "shippy.consignment");
    assert_eq!(json["version"], "1.0.0");
    assert_eq!(json["nodes"][0]["id"], "node-1");
    assert_eq!(json["nodes"][0]["address"], "127.0.0.1:9000");
    assert_eq!(json["nodes"][0]["metadata"]["zone"], "a");
    assert_eq!(json["endpoints"][0]["name"], "Shipping.CreateConsignment");
    assert_eq!(json["endpoints"][0]["request"]["type"], "Consignment");
    assert!(json["metadata"].is_object());
}

fn node_process(etcd: &EtcdServer, name: &str, ttl: &str) -> tests::KillOnDrop {
    let mut cmd = tests::command_without_micro_env(env!("CARGO_BIN_EXE_test-node"));
    cmd.args(["serve", name]);
    cmd.env("MICRO_REGISTRY", "etcd")
        .env("MICRO_REGISTRY_ADDRESS", &etcd.endpoint)
        .env("MICRO_REGISTER_TTL", ttl)
        .env("MICRO_REGISTER_INTERVAL", "1s")
        .env("RUST_LOG", "micro=warn")
        .stdout(Stdio::null())
        .spawn()
        .map(tests::KillOnDrop)
        .unwrap()
}

async fn until_registered(registry: &dyn Registry, name: &str) {
    let start = Instant::now();
    while registry.get_service(name).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_expires_after_kill_9() {
    let etcd = EtcdServer::start();
    let registry = EtcdRegistry::new(&etcd.endpoint);
    let mut watcher = registry.watch(Some("leased")).await.unwrap();
    let mut child = node_process(&etcd, "leased", "3s");
    until_registered(&registry, "leased").await;
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);

    child.kill();
    let killed = Instant::now();
    loop {
        let event = tests::next_event(&mut watcher).await;
        if event.action == Action::Delete {
            break;
        }
    }
    // The lease, not a deregistration, removed it: within the TTL plus etcd's lease tick.
    assert!(
        killed.elapsed() < Duration::from_secs(3 + 3),
        "{:?}",
        killed.elapsed()
    );
    assert!(registry.get_service("leased").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_restart_is_survived_and_calls_use_the_cache_meanwhile() {
    let mut etcd = EtcdServer::start();
    let registry: Arc<dyn Registry> = Arc::new(EtcdRegistry::new(&etcd.endpoint));
    let mut child = node_process(&etcd, "survivor", "10s");
    until_registered(&*registry, "survivor").await;
    let mut watcher = registry.watch(Some("late")).await.unwrap();

    let client = micro::Client::builder()
        .registry(registry.clone())
        .fast_path(false)
        .build();
    let call = || client.call::<u64, u32>("survivor".into(), "Work.Work", 0);
    let pid = call().await.unwrap();
    assert_eq!(pid, child.id());

    etcd.stop();
    // etcd is down: known services are still called, from the client's cache.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(call().await.unwrap(), pid);
    }

    etcd.restart();
    // The node's heartbeat puts it back (or its lease survived the restart), and the watch
    // re-established itself: a registration made now is seen.
    until_registered(&*registry, "survivor").await;
    registry
        .register(
            &tests::one_node("late", "1", "late-1", "a"),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let event = tests::next_event(&mut watcher).await;
    assert_eq!(
        (event.action, event.service.name.as_str()),
        (Action::Create, "late")
    );
    assert_eq!(call().await.unwrap(), pid);
    child.kill();
}
