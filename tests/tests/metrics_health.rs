//! Metrics and health over HTTP: a real Prometheus server scrapes a service and its
//! per-endpoint counters and latency histogram are read back through Prometheus's HTTP API;
//! readiness follows user checks and turns false while the service drains.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Greeter;

#[micro::service(name = "metrics.greeter")]
impl Greeter {
    pub async fn hello(&self, name: String) -> micro::Result<String> {
        if name.is_empty() {
            return Err(micro::Error::bad_request("metrics.greeter", "no name"));
        }
        Ok(format!("hello {name}"))
    }
}

/// A runtime of its own (memory registry and broker) serving metrics on `port`.
fn runtime(port: u16) -> micro::Runtime {
    let address = format!("127.0.0.1:{port}");
    let options = micro::config::Options::resolve(
        |name: &str| (name == "MICRO_METRICS_ADDRESS").then(|| address.clone()),
        &[],
    )
    .unwrap();
    micro::Runtime::builder()
        .registry(Arc::new(micro::registry::MemoryRegistry::new()))
        .broker(Arc::new(micro::broker::MemoryBroker::new()))
        .build(options)
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0: status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    try_get(port, path).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"))
}

fn try_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(LIMIT))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `path` until `pred` holds for its answer (nothing listening yet is no answer);
/// returns it.
async fn until(port: u16, path: &str, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let start = Instant::now();
    loop {
        let owned = path.to_owned();
        let answer = tokio::task::spawn_blocking(move || try_get(port, &owned))
            .await
            .unwrap();
        if let Ok((status, body)) = &answer
            && pred(*status, body)
        {
            return (*status, body.clone());
        }
        assert!(start.elapsed() < LIMIT, "{path}: still {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_users_check() {
    let port = tests::free_port();
    let runtime = runtime(port);
    let healthy = Arc::new(AtomicBool::new(true));
    let seen = healthy.clone();
    let service = runtime
        .service("metrics.greeter")
        .handle(Greeter)
        .health_check("database", move || {
            if seen.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        })
        .start()
        .await
        .unwrap();
    assert_eq!(get(port, "/health/live").0, 200);
    assert_eq!(
        get(port, "/health/ready"),
        (200, r#"{"status":"ready"}"#.into())
    );

    healthy.store(false, Ordering::SeqCst);
    let (status, body) = get(port, "/health/ready");
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["failures"],
        serde_json::json!(["metrics.greeter: database: connection refused"])
    );
    assert_eq!(get(port, "/health/live").0, 200, "alive, only not ready");
    assert!(service.readiness().is_err());

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(get(port, "/health/ready").0, 200);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_false_while_the_service_drains() {
    let port = tests::free_port();
    let runtime = runtime(port);
    // The stop waits in its first hook until the test has seen readiness turn.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = Arc::new(tokio::sync::Mutex::new(Some(held)));
    let service = runtime
        .service("metrics.greeter")
        .handle(Greeter)
        .before_stop(move || {
            let held = held.clone();
            async move {
                if let Some(held) = held.lock().await.take() {
                    let _ = held.await;
                }
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    assert_eq!(get(port, "/health/ready").0, 200);
    let stopping = tokio::spawn(service.stop());
    let (_, body) = until(port, "/health/ready", |status, _| status == 503).await;
    assert!(body.contains("metrics.greeter: draining"), "{body}");
    release.send(()).unwrap();
    stopping.await.unwrap();
    // Nothing runs any more: still not ready.
    let (status, body) = get(port, "/health/ready");
    assert_eq!(status, 503);
    assert!(body.contains("no service is running"), "{body}");
}

/// A Prometheus server on a free loopback port scraping `target` every second, with a
/// directory of its own; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn start(target: u16) -> Option<Prometheus> {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("micro-prometheus-{}-{target}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: micro\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = tests::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Some(Prometheus { child, port, dir })
    }

    /// The value of the single series `query` selects, once Prometheus has one.
    async fn value(&self, query: &str, want: &str) {
        let path = format!("/api/v1/query?query={}", encode(query));
        let (_, body) = until(self.port, &path, |status, body| {
            status == 200
                && serde_json::from_str::<serde_json::Value>(body)
                    .is_ok_and(|v| v["data"]["result"][0]["value"][1].as_str() == Some(want))
        })
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["data"]["result"].as_array().map(Vec::len),
            Some(1),
            "{body}"
        );
    }
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_per_endpoint_requests_errors_and_latency() {
    let port = tests::free_port();
    let Some(prometheus) = Prometheus::start(port) else {
        println!("SKIPPED: prometheus not installed");
        return;
    };
    let runtime = runtime(port);
    let service = runtime
        .service("metrics.greeter")
        .handle(Greeter)
        .start()
        .await
        .unwrap();
    let client = GreeterClient::new(runtime.client());
    for _ in 0..5 {
        client.hello("ada".into()).await.unwrap();
    }
    for _ in 0..2 {
        assert_eq!(client.hello(String::new()).await.unwrap_err().code, 400);
    }
    let text = get(port, "/metrics").1;
    assert!(
        text.contains(
            r#"micro_server_requests_total{service="metrics.greeter",endpoint="Greeter.Hello"} 7"#
        ),
        "{text}"
    );

    let labels = r#"service="metrics.greeter",endpoint="Greeter.Hello""#;
    prometheus
        .value(&format!("micro_server_requests_total{{{labels}}}"), "7")
        .await;
    prometheus
        .value(&format!("micro_client_requests_total{{{labels}}}"), "7")
        .await;
    prometheus
        .value(
            &format!(r#"micro_server_errors_total{{{labels},code="400"}}"#),
            "2",
        )
        .await;
    prometheus
        .value(
            &format!("micro_server_request_duration_seconds_count{{{labels}}}"),
            "7",
        )
        .await;
    prometheus
        .value(
            &format!(r#"micro_server_request_duration_seconds_bucket{{{labels},le="+Inf"}}"#),
            "7",
        )
        .await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_names_nothing_serves_share_one_label() {
    let port = tests::free_port();
    let runtime = runtime(port);
    let service = runtime
        .service("metrics.greeter")
        .handle(Greeter)
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    for i in 0..10 {
        let endpoint = format!("Greeter.Nope{i}");
        let err = client
            .call_json("metrics.greeter", &endpoint, serde_json::json!(null))
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
        let err = client
            .call_json(&format!("nobody-{i}"), "X.Y", serde_json::json!(null))
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
    }
    let text = get(port, "/metrics").1;
    assert!(
        text.contains(r#"micro_client_requests_total{service="unknown",endpoint="unknown"} 20"#),
        "{text}"
    );
    assert!(!text.contains("Nope"), "{text}");
    assert!(!text.contains("nobody-"), "{text}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_and_refused_are_counted_per_service() {
    let port = tests::free_port();
    let runtime = runtime(port);
    let service = runtime
        .service("metrics.greeter")
        .handle(Greeter)
        .address("127.0.0.1:0")
        .limits(micro::ServerLimits::default().max_connections_per_ip(2))
        .start()
        .await
        .unwrap();
    let address = service.address().to_owned();
    let open = |n: usize| format!("micro_server_connections{{service=\"metrics.greeter\"}} {n}\n");
    let first = TcpStream::connect(&address).unwrap();
    let second = TcpStream::connect(&address).unwrap();
    until(port, "/metrics", |_, text| text.contains(&open(2))).await;

    // A third from the same address is over the limit: refused, and counted as such.
    let mut third = TcpStream::connect(&address).unwrap();
    third.set_read_timeout(Some(LIMIT)).unwrap();
    let mut refusal = Vec::new();
    third.read_to_end(&mut refusal).unwrap();
    assert!(
        String::from_utf8_lossy(&refusal).contains("too many connections"),
        "{refusal:?}"
    );
    let refused = r#"micro_server_connections_refused_total{service="metrics.greeter",limit="max_connections_per_ip"} 1"#;
    let (_, text) = until(port, "/metrics", |_, text| text.contains(refused)).await;
    assert!(text.contains(&open(2)), "{text}");

    drop((first, second));
    until(port, "/metrics", |_, text| text.contains(&open(0))).await;
    service.stop().await;
}
