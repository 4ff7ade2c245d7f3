//! Traces exported over OTLP: three service processes (consignment, vessel, audit) export
//! their spans to an OTLP/HTTP receiver built here on the official protobuf definitions; a
//! call that arrives with a W3C `traceparent` (as the gateway passes one on), the call it
//! makes and the event it publishes are one trace, parent to child, across the processes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

const NODE: &str = env!("CARGO_BIN_EXE_test-node");
const LIMIT: Duration = Duration::from_secs(30);
const ROOT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// An exported span, as the receiver got it.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP trace receiver on a free loopback port: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, answered 200.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Exported>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let kept = kept.clone();
                std::thread::spawn(move || serve(conn, &kept));
            }
        });
        Receiver { port, spans }
    }
}

/// Answers requests on one connection until the peer closes it.
fn serve(conn: TcpStream, spans: &Mutex<Vec<Exported>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        let mut got = Vec::new();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    got.push(Exported {
                        service: service.clone(),
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
        spans.lock().unwrap().extend(got);
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A `test-node` process, killed when dropped; its stdout read line by line.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(mode: &str, registry: &std::path::Path, otlp: u16) -> Proc {
        let mut child = tests::command_without_micro_env(NODE)
            .arg(mode)
            .env("MICRO_REGISTRY", "local")
            .env("MICRO_REGISTRY_ADDRESS", registry)
            .env("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
            .env("MICRO_BROKER_ADDRESS", "127.0.0.1:0")
            .env("MICRO_SERVER_DRAIN", "0s")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp}"),
            )
            .env("OTEL_SERVICE_NAME", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn test-node");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(LIMIT) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line starting {prefix:?}: {e}"),
            }
        }
    }

    /// SIGTERM, then the exit: the process exports what it still holds before it ends.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            assert!(start.elapsed() < LIMIT, "test-node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A registry directory of this test's own: only its processes meet there.
fn registry_dir() -> std::path::PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let salt = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let dir = std::env::temp_dir().join(format!("micro-otlp-{}-{salt:x}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_its_call_and_its_event_are_one_exported_trace_across_processes() {
    let receiver = Receiver::start();
    let dir = registry_dir();
    let vessel = Proc::start("vessel", &dir, receiver.port);
    let consignment = Proc::start("consignment", &dir, receiver.port);
    let audit = Proc::start("audit", &dir, receiver.port);
    for p in [&vessel, &consignment, &audit] {
        p.expect("serving ");
    }

    // The gateway's part: a call carrying the caller's `traceparent`.
    let runtime = micro::Runtime::new(
        micro::config::Options::resolve(
            |name: &str| match name {
                "MICRO_REGISTRY" => Some("local".into()),
                "MICRO_REGISTRY_ADDRESS" => Some(dir.display().to_string()),
                _ => None,
            },
            &[],
        )
        .unwrap(),
    );
    let reply: serde_json::Value = runtime
        .client()
        .call_json("consignment", "Consignments.Create", serde_json::json!(7))
        .metadata("traceparent", ROOT)
        .timeout(LIMIT)
        .await
        .unwrap();
    assert_eq!(reply["id"], "vessel-7");
    let audited = audit.expect("audited ");
    assert!(audited.ends_with(TRACE), "{audited}");

    for p in [consignment, vessel, audit] {
        p.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);

    let spans = receiver.spans.lock().unwrap().clone();
    let find = |service: &str, name: &str| -> Exported {
        let found: Vec<&Exported> = spans
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "{service} {name}: {spans:#?}");
        found[0].clone()
    };
    let serve_consignment = find("consignment", "consignment/Consignments.Create");
    let call_vessel = find("consignment", "vessel/Vessels.FindAvailable");
    let publish = find("consignment", "consignment.created publish");
    let serve_vessel = find("vessel", "vessel/Vessels.FindAvailable");
    let deliver = find("audit", "consignment.created deliver");
    let serve_audit = find("audit", "audit/Audit.OnCreated");
    for (span, parent, kind) in [
        (&serve_consignment, "00f067aa0ba902b7", SpanKind::Server),
        (
            &call_vessel,
            serve_consignment.span_id.as_str(),
            SpanKind::Client,
        ),
        (
            &serve_vessel,
            call_vessel.span_id.as_str(),
            SpanKind::Server,
        ),
        (
            &publish,
            serve_consignment.span_id.as_str(),
            SpanKind::Producer,
        ),
        (&deliver, publish.span_id.as_str(), SpanKind::Consumer),
        (&serve_audit, deliver.span_id.as_str(), SpanKind::Server),
    ] {
        assert_eq!(span.trace_id, TRACE, "{span:#?}");
        assert_eq!(span.parent_id, parent, "{span:#?}");
        assert_eq!(span.kind, kind as i32, "{span:#?}");
        assert_eq!(span.attributes["rpc.system"], "micro", "{span:#?}");
    }
    assert_eq!(
        serve_vessel.attributes["rpc.method"],
        "Vessels.FindAvailable"
    );
}
