//! The NATS registry against a real nats-server: register, list, get, watch, expiry after
//! kill -9, and a server restart.

use std::process::Stdio;
use std::time::{Duration, Instant};

use micro::registry::{Action, NatsRegistry, Registry};
use tests::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_get_watch_and_deregister() {
    let nats = NatsServer::start();
    let registry = NatsRegistry::new(nats.url.as_str());
    let ttl = Some(Duration::from_secs(30));
    let mut watcher = registry.watch(Some("shippy.consignment")).await.unwrap();

    registry
        .register(
            &tests::one_node("shippy.consignment", "1.0.0", "n/1", "a"),
            ttl,
        )
        .await
        .unwrap();
    registry
        .register(
            &tests::one_node("shippy.consignment", "2.0.0", "n-2", "a"),
            ttl,
        )
        .await
        .unwrap();
    registry
        .register(&tests::one_node("other", "1", "o", "a"), None)
        .await
        .unwrap();

    let found = registry.get_service("shippy.consignment").await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].nodes[0].id, "n/1",
        "names round-trip through key escaping"
    );
    assert_eq!(registry.list_services().await.unwrap().len(), 3);
    assert!(registry.get_service("nobody").await.is_err());

    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);
    // Renewing the same record is no event; changing it is an update.
    registry
        .register(
            &tests::one_node("shippy.consignment", "1.0.0", "n/1", "a"),
            ttl,
        )
        .await
        .unwrap();
    registry
        .register(
            &tests::one_node("shippy.consignment", "1.0.0", "n/1", "b"),
            ttl,
        )
        .await
        .unwrap();
    let update = tests::next_event(&mut watcher).await;
    assert_eq!(update.action, Action::Update);
    assert_eq!(update.service.nodes[0].metadata["zone"], "b");
    registry
        .deregister(&tests::one_node("shippy.consignment", "1.0.0", "n/1", "b"))
        .await
        .unwrap();
    let delete = tests::next_event(&mut watcher).await;
    assert_eq!(
        (delete.action, delete.service.nodes[0].id.as_str()),
        (Action::Delete, "n/1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_expires_after_kill_9_and_survives_a_server_restart() {
    let mut nats = NatsServer::start();
    let registry = NatsRegistry::new(nats.url.as_str());
    let mut watcher = registry.watch(Some("leased")).await.unwrap();
    let mut cmd = tests::command_without_micro_env(env!("CARGO_BIN_EXE_test-node"));
    cmd.args(["serve", "leased"]);
    let mut child = cmd
        .env("MICRO_REGISTRY", "nats")
        .env("MICRO_REGISTRY_ADDRESS", &nats.url)
        .env("MICRO_REGISTER_TTL", "2s")
        .env("MICRO_REGISTER_INTERVAL", "500ms")
        .env("RUST_LOG", "micro=warn")
        .stdout(Stdio::null())
        .spawn()
        .map(tests::KillOnDrop)
        .unwrap();
    assert_eq!(tests::next_event(&mut watcher).await.action, Action::Create);

    // A restart of the server: the node re-registers into the stored bucket.
    nats.restart();
    let start = Instant::now();
    let fresh = NatsRegistry::new(nats.url.as_str());
    while fresh.get_service("leased").await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not back after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    child.kill();
    let killed = Instant::now();
    let mut watcher = fresh.watch(Some("leased")).await.unwrap();
    loop {
        if tests::next_event(&mut watcher).await.action == Action::Delete {
            break;
        }
    }
    assert!(
        killed.elapsed() < Duration::from_secs(2 + 2),
        "{:?}",
        killed.elapsed()
    );
    assert!(fresh.get_service("leased").await.is_err());
}
