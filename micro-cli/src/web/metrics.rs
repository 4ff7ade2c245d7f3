//! The per-endpoint numbers behind the dashboard's charts, read from each node's own
//! Prometheus metrics (the `metrics` address a node registers when it serves them).

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use micro::Error;
use micro::registry::Registry;
use serde::Serialize;

/// The largest metrics page read from a node.
const MAX_PAGE: usize = 4 << 20;
/// How long one node may take to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// One endpoint's counters, summed over the nodes that answered.
#[derive(Debug, Default, PartialEq, Serialize)]
pub(super) struct Endpoint {
    requests: f64,
    errors: f64,
    /// Cumulative latency buckets: (upper bound in seconds, calls at or below it).
    buckets: Vec<(f64, f64)>,
}

/// What `GET /api/metrics/{service}` answers.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    /// Nodes that serve metrics, and of those the ones that answered.
    nodes: usize,
    answered: usize,
    endpoints: BTreeMap<String, Endpoint>,
}

/// Reads every node's metrics and sums them per endpoint.
pub(super) async fn report(registry: &dyn Registry, service: &str) -> Result<Report, Error> {
    let versions = registry.get_service(service).await.map_err(Error::from)?;
    let addresses: Vec<String> = versions
        .iter()
        .flat_map(|v| &v.nodes)
        .filter_map(|n| n.metadata.get("metrics").cloned())
        .collect();
    let mut report = Report {
        nodes: addresses.len(),
        ..Report::default()
    };
    let pages = futures_util::future::join_all(addresses.iter().map(|a| fetch(a))).await;
    for page in pages.into_iter().flatten() {
        report.answered += 1;
        add(&mut report.endpoints, service, &page);
    }
    Ok(report)
}

async fn fetch(address: &str) -> Option<String> {
    let get = async {
        let stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let request = hyper::Request::get("/metrics")
            .header(hyper::header::HOST, address)
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = Limited::new(response.into_body(), MAX_PAGE)
            .collect()
            .await
            .ok()?;
        String::from_utf8(body.to_bytes().to_vec()).ok()
    };
    tokio::time::timeout(TIMEOUT, get).await.ok().flatten()
}

/// Adds one node's server-side metrics of `service` to `endpoints`.
fn add(endpoints: &mut BTreeMap<String, Endpoint>, service: &str, page: &str) {
    for line in page.lines() {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        if label(labels, "service") != Some(service) {
            continue;
        }
        let Some(endpoint) = label(labels, "endpoint") else {
            continue;
        };
        if !matches!(
            name,
            "micro_server_requests_total"
                | "micro_server_errors_total"
                | "micro_server_request_duration_seconds_bucket"
        ) {
            continue;
        }
        let entry = endpoints.entry(endpoint.to_owned()).or_default();
        match name {
            "micro_server_requests_total" => entry.requests += value,
            "micro_server_errors_total" => entry.errors += value,
            _ => {
                let Some(le) = label(labels, "le").and_then(|le| le.parse::<f64>().ok()) else {
                    continue;
                };
                let buckets = &mut entry.buckets;
                match buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, count)) => *count += value,
                    None => {
                        buckets.push((le, value));
                        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    }
                }
            }
        }
    }
}

/// `name{labels} value` (labels may be absent); comments and malformed lines are `None`.
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match head.split_once('{') {
        Some((name, labels)) => Some((name, labels.strip_suffix('}')?, value)),
        None => Some((head, "", value)),
    }
}

/// The value of label `key` in `k="v",…` (micro's values hold no quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metrics_page_sums_into_endpoints() {
        let page = r#"# HELP micro_server_requests Calls server side
# TYPE micro_server_requests counter
micro_server_requests_total{service="demo",endpoint="Greeter.Hello"} 7
micro_server_requests_total{service="other",endpoint="Greeter.Hello"} 100
micro_server_errors_total{service="demo",endpoint="Greeter.Hello",code="400"} 2
micro_server_errors_total{service="demo",endpoint="Greeter.Hello",code="500"} 1
micro_server_request_duration_seconds_bucket{le="0.001",service="demo",endpoint="Greeter.Hello"} 5
micro_server_request_duration_seconds_bucket{le="+Inf",service="demo",endpoint="Greeter.Hello"} 7
"#;
        let mut endpoints = BTreeMap::new();
        add(&mut endpoints, "demo", page);
        add(&mut endpoints, "demo", page);
        assert_eq!(
            endpoints["Greeter.Hello"],
            Endpoint {
                requests: 14.0,
                errors: 6.0,
                buckets: vec![(0.001, 10.0), (f64::INFINITY, 14.0)],
            }
        );
        assert_eq!(endpoints.len(), 1);
    }
}
