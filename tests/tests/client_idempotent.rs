//! `#[micro(idempotent)]` end to end: the generated client resends a marked call after a
//! lost connection and fails an unmarked one, and the registry says which is which.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use micro::registry::Service as Record;

const NAME: &str = "client-idempotent.stock";

/// Answers with its tag from both endpoints; only the read is marked.
struct Stock {
    tag: &'static str,
}

#[micro::service(name = "client-idempotent.stock")]
impl Stock {
    /// Reads the stock level: harmless to repeat.
    #[micro(idempotent)]
    pub async fn level(&self) -> micro::Result<String> {
        Ok(self.tag.to_owned())
    }

    /// Takes an item from stock: a repeat would take two.
    pub async fn take(&self) -> micro::Result<String> {
        Ok(self.tag.to_owned())
    }
}

/// A "node" that reads a request and then drops the connection: the request may have run.
/// Counts the requests it swallowed.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let swallowed = Arc::new(AtomicUsize::new(0));
    let count = swallowed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, swallowed)
}

/// The endpoint's registry metadata `idempotent`, if any.
fn idempotent<'a>(record: &'a Record, endpoint: &str) -> Option<&'a str> {
    let endpoint = record
        .endpoints
        .iter()
        .find(|e| e.name == endpoint)
        .unwrap_or_else(|| panic!("{endpoint} is not registered"));
    endpoint.metadata.get("idempotent").map(String::as_str)
}

#[tokio::test]
async fn the_registry_lists_idempotent_endpoints_in_their_metadata() {
    let name = "client-idempotent.registry";
    let service = tests::service(name)
        .handle(Stock { tag: "live" })
        .start()
        .await
        .unwrap();
    let registered = tests::registry().get_service(name).await.unwrap();
    let record = &registered[0];
    assert_eq!(idempotent(record, "Stock.Level"), Some("true"));
    assert_eq!(idempotent(record, "Stock.Take"), None);
    // The debug endpoints every service has only read.
    assert_eq!(idempotent(record, "Debug.Health"), Some("true"));
    assert_eq!(idempotent(record, "Debug.Stats"), Some("true"));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_retries_only_idempotent_endpoints_after_a_lost_connection() {
    let live = tests::service(NAME)
        .handle(Stock { tag: "live" })
        .start()
        .await
        .unwrap();
    let (hole, swallowed) = black_hole().await;
    let mut record: Record = live.record().clone();
    record.nodes[0].id = "black-hole".into();
    record.nodes[0].address = hole;
    tests::registry().register(&record, None).await.unwrap();

    // Round-robin over the two nodes, ejection off, so each client's calls alternate
    // between the live node and the black hole.
    let mut lost = 0;
    for _ in 0..3 {
        let client = tests::client_builder()
            .fast_path(false)
            .selector(micro::selector::RoundRobin::default())
            .ejection(Duration::ZERO)
            .build();
        let stock = StockClient::new(client);
        for _ in 0..2 {
            match stock.take().await {
                Ok(tag) => assert_eq!(tag, "live"),
                Err(e) => {
                    assert!(e.is_unavailable(), "{e}");
                    lost += 1;
                }
            }
        }
        // One of each pair of calls lands on the black hole, and is sent again.
        let before = swallowed.load(Ordering::SeqCst);
        for _ in 0..2 {
            let level = stock.level().await;
            assert_eq!(level.unwrap(), "live", "an idempotent call failed");
        }
        assert!(swallowed.load(Ordering::SeqCst) > before);
        // The caller may mark any call.
        let before = swallowed.load(Ordering::SeqCst);
        for _ in 0..2 {
            let taken = stock.take().idempotent().await;
            assert_eq!(taken.unwrap(), "live", "a call marked by its caller failed");
        }
        assert!(swallowed.load(Ordering::SeqCst) > before);
    }
    assert_eq!(
        lost, 3,
        "each client's plain call to the black hole fails, once"
    );
    tests::registry().deregister(&record).await.unwrap();
    live.stop().await;
}
