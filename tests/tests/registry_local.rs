//! `LocalRegistry` across processes and under concurrent writers.
//!
//! The other process is this test binary run again: `std::env::current_exe()` with the
//! ignored test `child_node` selected and its orders in the `MICRO_TEST_CHILD_*`
//! variables. The child registers one node with a short TTL, refreshes it, and
//! deregisters when its stdin closes; or it is killed with SIGKILL and leaves its file.
//!
//! Every wait is a bounded poll that fails only when the thing never happens, so a slow
//! machine makes the tests slower, not flaky.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro::registry::{Action, LocalRegistry, Node, Registry, RegistryError, Service, Watcher};

const DIR_VAR: &str = "MICRO_TEST_CHILD_DIR";
const NODE_VAR: &str = "MICRO_TEST_CHILD_NODE";
const SERVICE: &str = "child.service";
/// The child's TTL; it refreshes four times per TTL.
const TTL: Duration = Duration::from_secs(2);
/// How long any wait may take before the test gives up: a guard against hangs.
const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh directory under the temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("micro-registry-local-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed if the test fails while it runs.
struct ChildNode(Option<Child>);

impl ChildNode {
    fn spawn(dir: &Path, node: &str) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["child_node", "--exact", "--ignored", "--test-threads=1"])
            .env(DIR_VAR, dir)
            .env(NODE_VAR, node)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    /// Panics, with the child's output, if it has exited.
    fn assert_running(&mut self) {
        let child = self.0.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            let output = self.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "child exited early ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
        }
    }

    fn take(&mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn service(node: &str) -> Service {
    Service {
        name: SERVICE.into(),
        version: "1".into(),
        nodes: vec![Node {
            id: node.into(),
            address: format!("{node}:1"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn node_ids(registry: &LocalRegistry, name: &str) -> Vec<String> {
    match registry.get_service(name).await {
        Ok(versions) => versions
            .into_iter()
            .flat_map(|s| s.nodes)
            .map(|n| n.id)
            .collect(),
        Err(RegistryError::NotFound(_)) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

/// Polls until `done`, giving up after `limit`.
async fn eventually(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `node` is present in the watcher's view, after reading events until `until`
/// (a node id) is created. Asserts that every event is about `SERVICE`.
async fn watched(watcher: &mut Watcher, node: &str, until: &str, mut present: bool) -> bool {
    loop {
        let event = tokio::time::timeout(PATIENCE, watcher.next())
            .await
            .expect("no watch event")
            .expect("watch closed");
        assert_eq!(event.service.name, SERVICE);
        let id = &event.service.nodes[0].id;
        if id == node {
            present = event.action != Action::Delete;
        }
        if id == until && event.action == Action::Create {
            return present;
        }
    }
}

/// The child's side: register, refresh, and deregister when stdin closes. Does nothing
/// when run by hand.
#[tokio::test]
#[ignore = "the other tests run it in a child process"]
async fn child_node() {
    let (Ok(dir), Ok(node)) = (std::env::var(DIR_VAR), std::env::var(NODE_VAR)) else {
        return;
    };
    let registry = LocalRegistry::at(dir);
    let service = service(&node);
    registry.register(&service, Some(TTL)).await.unwrap();
    let mut closed =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()));
    loop {
        tokio::select! {
            _ = &mut closed => break,
            () = tokio::time::sleep(TTL / 4) => registry.register(&service, Some(TTL)).await.unwrap(),
        }
    }
    registry.deregister(&service).await.unwrap();
}

#[tokio::test]
async fn a_child_process_registers_then_deregisters() {
    let dir = Scratch::new();
    let registry = LocalRegistry::at(&dir.0);
    let mut watcher = registry.watch(Some(SERVICE)).await.unwrap();
    let mut child = ChildNode::spawn(&dir.0, "child-1");

    eventually(PATIENCE, "the child's node appears", async || {
        child.assert_running();
        node_ids(&registry, SERVICE).await == ["child-1"]
    })
    .await;
    let found = registry.get_service(SERVICE).await.unwrap();
    assert_eq!(found[0].nodes[0].address, "child-1:1");
    assert!(watched(&mut watcher, "child-1", "child-1", false).await);

    // Closing its stdin tells the child to deregister and exit.
    let mut process = child.take();
    drop(process.stdin.take());
    let output = process.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(node_ids(&registry, SERVICE).await.is_empty());

    // A node registered now is seen by a poll that no longer finds the child's: by then
    // the watcher must have seen it go.
    registry.register(&service("sentinel"), None).await.unwrap();
    assert!(!watched(&mut watcher, "child-1", "sentinel", true).await);
}

#[cfg(unix)]
#[tokio::test]
async fn a_child_killed_with_sigkill_expires() {
    use std::os::unix::process::ExitStatusExt;

    let dir = Scratch::new();
    let registry = LocalRegistry::at(&dir.0);
    let mut watcher = registry.watch(Some(SERVICE)).await.unwrap();
    let mut child = ChildNode::spawn(&dir.0, "child-2");
    eventually(PATIENCE, "the child's node appears", async || {
        child.assert_running();
        node_ids(&registry, SERVICE).await == ["child-2"]
    })
    .await;
    assert!(watched(&mut watcher, "child-2", "child-2", false).await);

    let mut process = child.take();
    process.kill().unwrap();
    assert_eq!(process.wait().unwrap().signal(), Some(9));
    eventually(
        TTL + PATIENCE,
        "the killed child's node expires",
        async || node_ids(&registry, SERVICE).await.is_empty(),
    )
    .await;
    // It expired: its file is still there, too recently expired to be collected.
    let files = std::fs::read_dir(dir.0.join(SERVICE)).unwrap().count();
    assert_eq!(files, 1);

    registry.register(&service("sentinel"), None).await.unwrap();
    assert!(!watched(&mut watcher, "child-2", "sentinel", true).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_show_a_partial_entry() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 100;

    let dir = Scratch::new();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            // A handle each, as separate processes would have.
            let registry = LocalRegistry::at(&dir.0);
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let mut s = service(&format!("node-{w}"));
                    s.nodes[0]
                        .metadata
                        .insert("round".into(), round.to_string());
                    registry
                        .register(&s, Some(Duration::from_secs(3600)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();

    let service_dir = dir.0.join(SERVICE);
    let registry = LocalRegistry::at(&dir.0);
    let mut reads = 0;
    let mut seen = 0;
    while reads == 0 || !writers.iter().all(|w| w.is_finished()) {
        reads += 1;
        // Every file a reader can see parses: renames replace whole files.
        if let Ok(files) = std::fs::read_dir(&service_dir) {
            for file in files {
                let name = file.unwrap().file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let bytes = std::fs::read(service_dir.join(&name)).unwrap();
                let entry: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{name:?}: {e}: {bytes:?}"));
                assert_eq!(entry["service"]["nodes"].as_array().unwrap().len(), 1);
            }
        }
        // Nodes only come, never go.
        let now = node_ids(&registry, SERVICE).await.len();
        assert!(now >= seen, "{now} nodes after {seen}");
        seen = now;
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let found = registry.get_service(SERVICE).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].nodes.len(), WRITERS);
    for (w, node) in found[0].nodes.iter().enumerate() {
        assert_eq!(node.id, format!("node-{w}"));
        assert_eq!(node.metadata["round"], (ROUNDS - 1).to_string());
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&service_dir).unwrap().count(), WRITERS);
}

#[test]
fn local_registry_is_a_shareable_registry() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LocalRegistry>();
    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::at("unused"));
    assert_eq!(registry.name(), "local");
}
