//! The Prometheus registry of a runtime, and its HTTP listener.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Observe, Side};
use crate::runtime::Hosted;

type Labels = [(&'static str, String); 2];
type CodeLabels = [(&'static str, String); 3];
/// One label: a topic, or a service.
type TopicLabels = [(&'static str, String); 1];

fn latency() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// An endpoint's request counter and latency histogram.
type Handles = (Counter, Histogram);

/// One side's (client or server) call metrics.
struct Calls {
    requests: Family<Labels, Counter>,
    errors: Family<CodeLabels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    /// Per service and endpoint, its request counter and latency histogram (handles to the
    /// families' own), found by name: a call records without building labels or looking
    /// through the families. Holds no more entries than the families do.
    handles: dashmap::DashMap<Box<str>, HashMap<Box<str>, Handles>>,
}

impl Calls {
    fn new(registry: &mut Registry, side: &str) -> Self {
        let calls = Self {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency),
            handles: dashmap::DashMap::new(),
        };
        registry.register(
            format!("micro_{side}_requests"),
            format!("Calls {side} side, by service and endpoint"),
            calls.requests.clone(),
        );
        registry.register(
            format!("micro_{side}_errors"),
            format!("Failed calls {side} side, by service, endpoint and error code"),
            calls.errors.clone(),
        );
        registry.register(
            format!("micro_{side}_request_duration_seconds"),
            format!("Call latency {side} side, by service and endpoint"),
            calls.latency.clone(),
        );
        calls
    }
}

/// The metrics of one runtime, in the Prometheus text format on scrape.
pub(crate) struct Metrics {
    registry: Registry,
    client: Calls,
    server: Calls,
    rejections: Family<Labels, Counter>,
    publishes: Family<TopicLabels, Counter>,
    deliveries: Family<CodeLabels, Counter>,
    mailbox: Family<Labels, Gauge>,
    reads: Family<Labels, Gauge>,
    connections: Family<TopicLabels, Gauge>,
    refused: Family<Labels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let client = Calls::new(&mut registry, "client");
        let server = Calls::new(&mut registry, "server");
        let rejections = Family::<Labels, Counter>::default();
        let publishes = Family::<TopicLabels, Counter>::default();
        let deliveries = Family::<CodeLabels, Counter>::default();
        let mailbox = Family::<Labels, Gauge>::default();
        let reads = Family::<Labels, Gauge>::default();
        let connections = Family::<TopicLabels, Gauge>::default();
        let refused = Family::<Labels, Counter>::default();
        registry.register(
            "micro_server_connections",
            "Connections open on a service's listener",
            connections.clone(),
        );
        registry.register(
            "micro_server_connections_refused",
            "Connections a service's listener refused, by the limit they reached",
            refused.clone(),
        );
        registry.register(
            "micro_server_rejections",
            "Requests turned away before they ran (full mailbox), by service and endpoint",
            rejections.clone(),
        );
        registry.register(
            "micro_broker_publishes",
            "Events published, by topic",
            publishes.clone(),
        );
        registry.register(
            "micro_broker_deliveries",
            "Events delivered to subscriber endpoints, by topic, endpoint and outcome",
            deliveries.clone(),
        );
        registry.register(
            "micro_server_mailbox_depth",
            "Requests waiting in a handler's mailbox, by service and handler",
            mailbox.clone(),
        );
        registry.register(
            "micro_server_reads_running",
            "Read turns running in a handler's actors, by service and handler",
            reads.clone(),
        );
        Self {
            registry,
            client,
            server,
            rejections,
            publishes,
            deliveries,
            mailbox,
            reads,
            connections,
            refused,
        }
    }

    pub(crate) fn connection(&self, service: &str, open: bool) {
        let gauge = self
            .connections
            .get_or_create(&[("service", service.to_owned())]);
        if open {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    pub(crate) fn connection_refused(&self, service: &str, limit: &'static str) {
        self.refused
            .get_or_create(&[("service", service.to_owned()), ("limit", limit.to_owned())])
            .inc();
    }

    pub(crate) fn call(
        &self,
        side: Side,
        service: &str,
        endpoint: &str,
        took: Duration,
        code: u16,
    ) {
        let calls = match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        };
        let secs = took.as_secs_f64();
        let recorded = calls.handles.get(service).is_some_and(|endpoints| {
            endpoints.get(endpoint).is_some_and(|(requests, latency)| {
                requests.inc();
                latency.observe(secs);
                true
            })
        });
        if !recorded {
            let labels = [
                ("service", service.to_owned()),
                ("endpoint", endpoint.to_owned()),
            ];
            let requests = calls.requests.get_or_create(&labels).clone();
            let latency = calls.latency.get_or_create(&labels).clone();
            requests.inc();
            latency.observe(secs);
            calls
                .handles
                .entry(service.into())
                .or_default()
                .insert(endpoint.into(), (requests, latency));
        }
        if code != 0 {
            let labels = [
                ("service", service.to_owned()),
                ("endpoint", endpoint.to_owned()),
                ("code", code.to_string()),
            ];
            calls.errors.get_or_create(&labels).inc();
        }
    }

    pub(crate) fn rejection(&self, service: &str, endpoint: &str) {
        self.rejections
            .get_or_create(&[
                ("service", service.to_owned()),
                ("endpoint", endpoint.to_owned()),
            ])
            .inc();
    }

    pub(crate) fn publish(&self, topic: &str) {
        self.publishes
            .get_or_create(&[("topic", topic.to_owned())])
            .inc();
    }

    pub(crate) fn delivery(&self, topic: &str, endpoint: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.deliveries
            .get_or_create(&[
                ("topic", topic.to_owned()),
                ("endpoint", endpoint.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// The text format, with the gauges read from the hosted services now.
    fn scrape(&self, hosted: &Hosted) -> String {
        self.mailbox.clear();
        self.reads.clear();
        for router in hosted.iter() {
            let mut seen = std::collections::HashSet::new();
            for route in router.routes.values() {
                let handler = route.def.name.split('.').next().unwrap_or_default();
                if !seen.insert(handler) {
                    continue;
                }
                let labels = [
                    ("service", router.service.to_string()),
                    ("handler", handler.to_owned()),
                ];
                let depth = i64::try_from(route.mailbox.len()).unwrap_or(i64::MAX);
                self.mailbox.get_or_create(&labels).set(depth);
                let reads = route.stats.reads.load(std::sync::atomic::Ordering::Relaxed);
                self.reads
                    .get_or_create(&labels)
                    .set(i64::try_from(reads).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Connections served at once: scrapers and probes are few; more are turned away.
const MAX_CONNECTIONS: usize = 64;

/// Answers `/metrics`, `/health/live` and `/health/ready` until the runtime is dropped.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    observe: Weak<Observe>,
    hosted: Hosted,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (observe, hosted) = (observe.clone(), hosted.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(req.method(), req.uri().path(), &observe, &hosted);
                async move { Ok::<_, Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, service)
                .await;
        });
    }
}

fn answer(
    method: &hyper::Method,
    path: &str,
    observe: &Weak<Observe>,
    hosted: &Hosted,
) -> Response<Full<Bytes>> {
    let Some(observe) = observe.upgrade() else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "stopped\n".into(),
        );
    };
    if method != hyper::Method::GET && method != hyper::Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match path {
        "/metrics" => match &observe.metrics {
            Some(metrics) => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.scrape(hosted),
            ),
            None => respond(StatusCode::NOT_FOUND, "text/plain", "no metrics\n".into()),
        },
        "/health/live" => respond(
            StatusCode::OK,
            "application/json",
            r#"{"status":"ok"}"#.into(),
        ),
        "/health/ready" => {
            let failures = observe.health.readiness();
            if failures.is_empty() {
                respond(
                    StatusCode::OK,
                    "application/json",
                    r#"{"status":"ready"}"#.into(),
                )
            } else {
                let body = serde_json::json!({"status": "not ready", "failures": failures});
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    body.to_string(),
                )
            }
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /health/live or /health/ready\n".into(),
        ),
    }
}

/// Binds `address` (`host:port`, or `:port` for every interface) and serves on it.
pub(crate) async fn start(
    address: &str,
    observe: &Arc<Observe>,
    hosted: Hosted,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::AbortHandle)> {
    let address = match address.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => address.to_owned(),
    };
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, Arc::downgrade(observe), hosted));
    Ok((bound, task.abort_handle()))
}
