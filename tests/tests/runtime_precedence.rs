//! The runtime as a value: objects given in code are used whatever the settings say; the
//! attribute's name and version are what registers; inputs out of range are errors.

use std::sync::Arc;
use std::time::Duration;

use micro::config::Options;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};

#[derive(Default)]
struct Versioned;

#[micro::service(name = "versioned", version = "2.1.0")]
impl Versioned {
    pub async fn ping(&self) -> micro::Result<String> {
        Ok("pong".into())
    }
}

fn settings(pairs: &[(&str, String)]) -> Options {
    let pairs = pairs.to_vec();
    Options::resolve(
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        },
        &[],
    )
    .unwrap()
}

/// Regression: `MICRO_REGISTRY=memory` silently replaced a registry passed to `.registry()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_given_in_code_is_used_whatever_the_settings_name() {
    let dir = std::env::temp_dir().join(format!("micro-precedence-{}", std::process::id()));
    let opts = settings(&[
        ("MICRO_REGISTRY", "local".into()),
        ("MICRO_REGISTRY_ADDRESS", dir.display().to_string()),
    ]);
    let mine: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let service = Service::new("versioned")
        .options(opts.clone())
        .registry(mine.clone())
        .handle(Versioned)
        .start()
        .await
        .unwrap();
    assert_eq!(mine.get_service("versioned").await.unwrap().len(), 1);
    let theirs = micro::registry::from_options(&opts);
    assert_eq!(theirs.name(), "local");
    assert!(theirs.get_service("versioned").await.is_err());

    // The same through a runtime: its registry object wins over its settings.
    let runtime = micro::Runtime::builder().registry(mine.clone()).build(opts);
    assert!(Arc::ptr_eq(runtime.registry(), &mine));
    let reply = VersionedClient::new(runtime.client()).ping().await.unwrap();
    assert_eq!(reply, "pong");
    service.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression: the attribute's `version = "2.1.0"` did not register (`latest` did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attributes_version_registers_unless_overridden() {
    let runtime = micro::Runtime::in_memory();
    let service = runtime
        .service("versioned")
        .handle(Versioned)
        .start()
        .await
        .unwrap();
    let versions = runtime.registry().get_service("versioned").await.unwrap();
    assert_eq!(versions[0].version, "2.1.0");
    assert_eq!(service.record().version, "2.1.0");
    let pinned = VersionedClient::new(runtime.client())
        .ping()
        .version("2.1.0")
        .await;
    assert_eq!(pinned.unwrap(), "pong");
    service.stop().await;

    let runtime = micro::Runtime::in_memory();
    let service = runtime
        .service("versioned")
        .version("3.0.0")
        .handle(Versioned)
        .start()
        .await
        .unwrap();
    assert_eq!(service.record().version, "3.0.0");
    service.stop().await;
}

/// Regression: a service named apart from its attribute registered a name that its
/// generated client never called: a silent 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_name_that_its_client_would_not_call_is_refused() {
    let runtime = micro::Runtime::in_memory();
    let err = runtime
        .service("versioned-typo")
        .handle(Versioned)
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("declares `versioned`"), "{err}");
    assert!(runtime.registry().list_services().await.unwrap().is_empty());
}

/// Regression: `.timeout(Duration::MAX)` panicked adding it to the time now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_timeout_is_an_error_not_a_panic() {
    let runtime = micro::Runtime::in_memory();
    let service = runtime
        .service("versioned")
        .handle(Versioned)
        .start()
        .await
        .unwrap();
    let client = VersionedClient::new(runtime.client());
    let err = client.ping().timeout(Duration::MAX).await.unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    assert!(err.detail.contains("too long"), "{err}");
    let slow = VersionedClient::new(runtime.client_builder().timeout(Duration::MAX).build());
    assert_eq!(slow.ping().await.unwrap_err().code, 400);
    // A long but representable one is fine.
    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(client.ping().timeout(week).await.unwrap(), "pong");
    service.stop().await;
}

/// Dropping a running service stops its accept loop, connections and actors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_service_ends_its_tasks() {
    let runtime = micro::Runtime::in_memory();
    let service = runtime
        .service("versioned")
        .handle(Versioned)
        .start()
        .await
        .unwrap();
    let address = service.address().to_owned();
    let wire = VersionedClient::new(runtime.client_builder().fast_path(false).build());
    assert_eq!(wire.ping().await.unwrap(), "pong");
    drop(service);
    // The listener closes once the aborted accept loop is dropped.
    let mut refused = false;
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(refused, "{address} still accepts connections");
    // In-process, the service is gone from the runtime too: no node answers.
    let local = VersionedClient::new(runtime.client());
    let err = local
        .ping()
        .timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err.code, 502 | 503), "{err}");
}

/// A client can open its connections before the first call; dropping it closes them (its
/// reader and writer tasks end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connects_eagerly_and_dropping_it_closes_its_connections() {
    use tokio::io::AsyncReadExt;

    let runtime = micro::Runtime::in_memory();
    // A node that is only a socket: it shows what the client does with its connection.
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let record = micro::registry::Service {
        name: "bare".into(),
        nodes: vec![micro::registry::Node {
            id: "bare-1".into(),
            address: socket.local_addr().unwrap().to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    runtime.registry().register(&record, None).await.unwrap();
    let client = runtime.client_builder().build();
    assert_eq!(client.connect("bare").await.unwrap(), 1);
    let (mut accepted, _) = tokio::time::timeout(Duration::from_secs(10), socket.accept())
        .await
        .expect("the client dialled before any call")
        .unwrap();
    drop(client);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), accepted.read(&mut buf))
        .await
        .expect("the connection closes when the client is dropped");
    assert_eq!(read.unwrap(), 0, "end of stream");
    assert!(runtime.client().connect("nobody").await.is_err());
}
