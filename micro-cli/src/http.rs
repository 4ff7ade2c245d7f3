//! What the gateway and the dashboard share: calling an endpoint for an HTTP request,
//! answering errors as micro's error JSON, the guard in front of both, and serving until a
//! signal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use micro::{Client, Error};
use tokio::sync::Semaphore;

use crate::Failure;
use crate::cli::GuardArgs;

/// What stands in front of the gateway and the dashboard, before any handler runs:
///
/// - a `Host` that is not an IP address, `localhost` or one of `--allowed_hosts` is refused
///   (403): a web page whose name an attacker points at 127.0.0.1 (DNS rebinding) reaches
///   nothing;
/// - a state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from the
///   server's own origin or one allowed by `--cors` (else 403), and carry its body as
///   `application/json` (else 415): no form or `text/plain` request from another site can
///   call a service;
/// - with `--require_token`, a request without `Authorization: Bearer …` gets 401;
/// - past `--max_concurrent` requests at once, 503; past `--rate_limit` per second, 429.
#[derive(Debug)]
pub(crate) struct Guard {
    id: &'static str,
    hosts: Vec<String>,
    origins: Vec<String>,
    any_origin: bool,
    require_token: bool,
    concurrent: Arc<Semaphore>,
    rate: Option<Mutex<Bucket>>,
}

impl Guard {
    pub(crate) fn new(id: &'static str, args: &GuardArgs, cors: &[String]) -> Arc<Self> {
        Arc::new(Self {
            id,
            hosts: args
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            origins: cors
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any_origin: cors.iter().any(|o| o == "*"),
            require_token: args.require_token,
            concurrent: Arc::new(Semaphore::new(args.max_concurrent.max(1))),
            rate: (args.rate_limit > 0).then(|| Mutex::new(Bucket::new(args.rate_limit))),
        })
    }

    /// Why `request` is refused, if it is.
    fn check(&self, request: &Request) -> Result<(), Error> {
        let headers = request.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        if let Some(host) = &host {
            if !self.host_allowed(host) {
                return Err(Error::forbidden(
                    self.id,
                    format_args!("host `{host}` is not served here: add it with --allowed_hosts"),
                ));
            }
        }
        let changes_state =
            [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(request.method());
        // A WebSocket is opened with a GET, but what it carries changes state: a page of
        // another origin may not open one (cross-site WebSocket hijacking).
        let websocket = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if changes_state || websocket {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
                if !self.origin_allowed(&origin, host.as_deref()) {
                    return Err(Error::forbidden(
                        self.id,
                        format_args!(
                            "cross-origin request from `{origin}` refused: allow the origin with --cors"
                        ),
                    ));
                }
            }
            if changes_state && !json_body(headers) {
                return Err(Error::new(
                    self.id,
                    415,
                    "a request with a body must send it as Content-Type: application/json",
                ));
            }
        }
        if self.require_token
            && !matches!(micro::auth::bearer(&bearer_metadata(headers)), Some(Ok(_)))
        {
            return Err(Error::unauthorized(
                self.id,
                "this server requires Authorization: Bearer <token>",
            ));
        }
        if let Some(rate) = &self.rate {
            if !rate.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(Error::new(
                    self.id,
                    429,
                    "too many requests: over --rate_limit",
                ));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        // `[::1]:8080`, `127.0.0.1:8080`, `localhost:8080`, `localhost`
        let name = match host.strip_prefix('[') {
            Some(v6) => {
                return v6
                    .split(']')
                    .next()
                    .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
            }
            None => host.rsplit_once(':').map_or(host, |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    host
                }
            }),
        };
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.hosts.iter().any(|h| h == name || h == host)
    }

    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        });
        same || self.any_origin || self.origins.iter().any(|o| o == origin)
    }
}

/// Whether the body, if there is one, is declared JSON.
fn json_body(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        Some(ct) => ct.to_str().is_ok_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 5
                    && essence[..essence.len() - 5].contains('/')
                    && essence.to_ascii_lowercase().ends_with("+json"))
        }),
        // No declared type: only an empty body, which a tool sends for "no request".
        None => {
            !headers.contains_key(header::TRANSFER_ENCODING)
                && headers
                    .get(header::CONTENT_LENGTH)
                    .is_none_or(|n| n.as_bytes() == b"0")
        }
    }
}

/// The request's `Authorization` header as call metadata.
pub(crate) fn bearer_metadata(headers: &HeaderMap) -> micro::Metadata {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| micro::Metadata::from([(micro::auth::AUTHORIZATION.to_owned(), v.to_owned())]))
        .unwrap_or_default()
}

/// A token bucket: `rate` requests a second, bursts of up to one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The [`Guard`] as axum middleware.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = guard.check(&request) {
        let mut response = error_response(&e);
        if e.code == 429 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return response;
    }
    let Ok(_permit) = guard.concurrent.clone().try_acquire_owned() else {
        return error_response(&Error::new(
            guard.id,
            503,
            "too many requests at once: over --max_concurrent",
        ));
    };
    next.run(request).await
}

/// The service and endpoint of a request's path, when `allow` (`None`: every service) lets
/// the service through; `id` names the server in the error.
pub(crate) fn exposed(
    id: &str,
    allow: Option<&std::collections::HashSet<String>>,
    path: Result<axum::extract::Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<(String, String), Error> {
    let axum::extract::Path((service, endpoint)) =
        path.map_err(|e| Error::bad_request(id, e.body_text()))?;
    if allow.is_some_and(|allow| !allow.contains(&service)) {
        return Err(Error::forbidden(
            id,
            format_args!("service {service} is not exposed by this gateway"),
        ));
    }
    Ok((service, endpoint))
}

/// JSON from a request body or argument; empty (or only whitespace) is `null`, which is how
/// tools say "no request".
pub(crate) fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(bytes)
}

/// The HTTP status for a micro error: its code when that is an error status, else 500.
pub(crate) fn status_of(err: &Error) -> StatusCode {
    StatusCode::from_u16(err.code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// micro's error JSON with the error's code as the status.
pub(crate) fn error_response(err: &Error) -> Response {
    json_response(status_of(err), format!("{err:#}"))
}

/// A response whose body is already JSON text.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// Calls `endpoint` of `service` with the JSON in `body`, answering with the JSON reply or
/// the error. `id` names the caller in errors of its own (`micro.api`, `micro.web`).
pub(crate) async fn call_endpoint(
    client: &Client,
    id: &str,
    service: &str,
    endpoint: &str,
    body: &[u8],
    timeout: Option<Duration>,
    metadata: micro::Metadata,
) -> Response {
    let request = match parse_json(body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(&Error::bad_request(
                id,
                format_args!("the request body is not valid JSON: {e}"),
            ));
        }
    };
    let mut call = client.call_json(service, endpoint, request);
    for (k, v) in metadata {
        call = call.metadata(k, v);
    }
    if let Some(timeout) = timeout {
        call = call.timeout(timeout);
    }
    match call.await {
        Ok(reply) => json_response(StatusCode::OK, reply.to_string()),
        Err(err) => error_response(&err),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Listens on `address`, prints `micro {command} listening on http://ADDR` on stdout (so a
/// script or a test can use port 0), and serves `app` until Ctrl-C or SIGTERM.
pub(crate) async fn serve(command: &str, address: &str, app: Router) -> Result<(), Failure> {
    let parsed = micro::addr::ListenAddr::parse(address)
        .map_err(|e| Error::bad_request(format!("micro.{command}"), e))?;
    let listener = parsed.bind().await.map_err(|e| {
        Error::internal(
            format!("micro.{command}"),
            format_args!("cannot listen on {address}: {e}"),
        )
    })?;
    let bound = listener.local_addr()?;
    crate::output::print(&format!("micro {command} listening on http://{bound}\n"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allowed: &[&str], cors: &[&str]) -> Arc<Guard> {
        let args = GuardArgs {
            allowed_hosts: allowed.iter().map(|h| (*h).to_owned()).collect(),
            require_token: false,
            max_concurrent: 1,
            rate_limit: 0,
        };
        let cors: Vec<String> = cors.iter().map(|o| (*o).to_owned()).collect();
        Guard::new("test", &args, &cors)
    }

    #[test]
    fn hosts_are_ip_addresses_localhost_or_allowed_names() {
        let g = guard(&["gw.internal"], &[]);
        for ok in [
            "127.0.0.1:8080",
            "10.0.0.7",
            "[::1]:8080",
            "[fd00::7]",
            "localhost:8080",
            "app.localhost",
            "gw.internal:8080",
            "gw.internal",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[not-an-ip]",
            "gw.internal.evil.example",
        ] {
            assert!(!g.host_allowed(refused), "{refused}");
        }
    }

    #[test]
    fn origins_are_the_servers_own_or_given() {
        let g = guard(&[], &["http://app.test"]);
        assert!(g.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(g.origin_allowed("https://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(g.origin_allowed("http://app.test", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("http://evil.example", None));
        assert!(guard(&[], &["*"]).origin_allowed("http://evil.example", None));
    }

    #[test]
    fn bodies_must_be_declared_json() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(json_body(&headers(&[("content-type", "application/json")])));
        assert!(json_body(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(json_body(&headers(&[(
            "content-type",
            "application/vnd.api+json"
        )])));
        assert!(!json_body(&headers(&[("content-type", "text/plain")])));
        assert!(!json_body(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(json_body(&headers(&[])), "no body, no type");
        assert!(json_body(&headers(&[("content-length", "0")])));
        assert!(!json_body(&headers(&[("content-length", "2")])));
        assert!(!json_body(&headers(&[("transfer-encoding", "chunked")])));
    }

    #[test]
    fn the_rate_limit_allows_a_seconds_worth_at_once_then_the_rate() {
        let mut bucket = Bucket::new(5);
        let start = bucket.last;
        assert_eq!((0..10).filter(|_| bucket.take_at(start)).count(), 5);
        let later = start + Duration::from_millis(400);
        assert_eq!((0..10).filter(|_| bucket.take_at(later)).count(), 2);
        // Idle for long: still one second's worth, no more.
        let much_later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take_at(much_later)).count(), 5);
    }

    #[test]
    fn empty_bodies_are_null_and_codes_map_to_statuses() {
        assert_eq!(parse_json(b" \n").unwrap(), serde_json::Value::Null);
        assert!(parse_json(b"{").is_err());
        assert_eq!(
            status_of(&Error::not_found("x", "y")),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&Error::new("x", 0, "y")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_of(&Error::new("x", 200, "y")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_of(&Error::timeout("x", "y")),
            StatusCode::REQUEST_TIMEOUT
        );
    }
}
