//! `micro api`: the HTTP gateway.
//!
//! `POST /{service}/{endpoint}` with a JSON body calls the endpoint and answers with its JSON
//! reply. `POST /event/{topic}` with a JSON body publishes it on the topic through the broker
//! and answers 202 with `{}` once the broker took it (so no service named `event` is callable
//! here). Every failure answers with micro's error JSON and the error's code as the HTTP
//! status: a body that is not JSON is 400, a service outside `--allow` 403, an unknown
//! service or endpoint 404 (a topic outside `--allow_topics` 403 too), a body over `--body_limit` 413, a call past `--timeout` 408.
//! `GET /health` is 200 while the registry answers.
//!
//! A request's `Authorization` header goes with its call, for the service to verify. Before
//! any of this, the [guard](crate::http::Guard) refuses foreign `Host` names, cross-origin and
//! non-JSON state-changing requests, requests without a token (`--require_token`) and
//! requests past the concurrency and rate limits.
//!
//! `POST /stream/{service}/{endpoint}` with a JSON body opens a server stream and answers with
//! Server-Sent Events: each reply is a `message` event whose data is its JSON; the stream
//! ends with an `end` event (a clean end) or an `error` event whose data is micro's error
//! JSON. A stream that cannot open answers like a call that failed. Closing the response
//! cancels the stream, which stops its producer.
//!
//! `GET /stream/{service}/{endpoint}` upgraded to a WebSocket opens a stream of any kind (as
//! the registry describes the endpoint): the client sends each request as a text message of
//! JSON (a server stream takes one) and an empty text message when it has no more; the
//! gateway sends `{"message":REPLY}` per reply, then `{"end":{}}` or `{"error":ERROR}` (micro's
//! error JSON) and closes. Closing the socket cancels the stream. See [`crate::socket`].
//!
//! Each call, stream and event request is served in a span of its own (`POST /{service}/{endpoint}`
//! and so on, exported over OTLP with the `otel` feature): a child of the request's W3C
//! `traceparent` header when it carries a valid one, else the root of a new trace. The calls
//! and events it leads to are that span's children, so one request is one trace from the
//! gateway to the last subscriber; `tracestate` passes through unchanged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use micro::registry::Registry;
use micro::telemetry::{HttpSpan, TRACEPARENT, TRACESTATE, TraceParent};
use micro::{Client, Error};

use crate::Failure;
use crate::cli::ApiArgs;
use crate::env::Env;
use crate::http::{
    Guard, bearer_metadata, call_endpoint, error_response, exposed, guard, json_response,
    parse_json,
};
use crate::socket::Streams;

const ID: &str = "micro.api";

#[derive(Clone, Debug)]
struct Gateway {
    client: Client,
    registry: Arc<dyn Registry>,
    timeout: Option<Duration>,
    /// `None`: every service.
    allow: Option<Arc<HashSet<String>>>,
    /// `None`: every topic.
    allow_topics: Option<Arc<HashSet<String>>>,
    /// The WebSocket streams' share of all this.
    streams: Arc<Streams>,
}

impl FromRef<Gateway> for Arc<Streams> {
    fn from_ref(gw: &Gateway) -> Self {
        gw.streams.clone()
    }
}

/// Serves the gateway until Ctrl-C or SIGTERM.
pub(crate) async fn run(env: Env, args: ApiArgs) -> Result<(), Failure> {
    let cors = Cors::new(&args.cors)?;
    let guarded = Guard::new(ID, &args.guard, &args.cors);
    let allow: Option<Arc<HashSet<String>>> =
        (!args.allow.is_empty()).then(|| Arc::new(args.allow.into_iter().collect()));
    let streams = Arc::new(Streams {
        id: ID,
        client: env.client.clone(),
        registry: env.registry.clone(),
        timeout: args.timeout,
        allow: allow.clone(),
        sessions: Arc::new(tokio::sync::Semaphore::new(args.guard.max_concurrent)),
        message_limit: args.body_limit,
    });
    let gateway = Gateway {
        client: env.client,
        registry: env.registry,
        timeout: args.timeout,
        // A gateway limited to some services publishes only on topics it was given: limiting
        // calls must not leave publishing open.
        allow_topics: (allow.is_some() || !args.allow_topics.is_empty())
            .then(|| Arc::new(args.allow_topics.into_iter().collect())),
        allow,
        streams,
    };
    let mut app = Router::new()
        .route("/event/{topic}", post(event))
        .route(
            "/stream/{service}/{endpoint}",
            post(stream).get(crate::socket::open),
        )
        .route("/{service}/{endpoint}", post(call))
        // A span for each request the routes above serve (probes of /health make none).
        .route_layer(middleware::from_fn(trace_request))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(args.body_limit))
        .with_state(gateway);
    if let Some(cors) = cors {
        app = app.layer(middleware::from_fn_with_state(Arc::new(cors), cors_layer));
    }
    // Outermost: a refused request reaches nothing, not even the CORS layer.
    let app = app.layer(middleware::from_fn_with_state(guarded, guard));
    crate::http::serve("api", &args.address, app).await
}

/// The service, endpoint and body of a call or stream request that this gateway exposes;
/// otherwise why not.
fn admit(
    gw: &Gateway,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, String, Bytes), Error> {
    let (service, endpoint) = exposed(ID, gw.allow.as_deref(), path)?;
    let body = body.map_err(|e| Error::new(ID, e.status().as_u16(), e.body_text()))?;
    Ok((service, endpoint, body))
}

async fn call(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (service, endpoint, body) = match admit(&gw, path, body) {
        Ok(admitted) => admitted,
        Err(e) => return error_response(&e),
    };
    let mut metadata = bearer_metadata(&headers);
    metadata.extend(trace_metadata(&headers));
    call_endpoint(
        &gw.client, ID, &service, &endpoint, &body, gw.timeout, metadata,
    )
    .await
}

async fn stream(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;

    let (service, endpoint, body) = match admit(&gw, path, body) {
        Ok(admitted) => admitted,
        Err(e) => return error_response(&e),
    };
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        match parse_json(&body) {
            Ok(request) => request,
            Err(e) => {
                return error_response(&Error::bad_request(
                    ID,
                    format_args!("the request body is not valid JSON: {e}"),
                ));
            }
        }
    };
    let mut call = gw
        .client
        .server_stream::<serde_json::Value, serde_json::Value>(service.into(), endpoint, request)
        .content_type(micro::codec::ContentType::Json);
    // The caller's token goes with the stream, as with a call.
    for (key, value) in bearer_metadata(&headers)
        .into_iter()
        .chain(trace_metadata(&headers))
    {
        call = call.metadata(key, value);
    }
    if let Some(timeout) = gw.timeout {
        call = call.timeout(timeout);
    }
    let replies = match call.await {
        Ok(replies) => replies,
        Err(err) => return error_response(&err),
    };
    // Each reply an event; then exactly one `end` or `error` event, and the response ends.
    let events = replies
        .map(Some)
        .chain(futures_util::stream::iter([None]))
        .scan(false, |done, item| {
            if *done {
                return std::future::ready(None);
            }
            let event = match item {
                Some(Ok(reply)) => Event::default().data(reply.to_string()),
                Some(Err(err)) => {
                    *done = true;
                    Event::default().event("error").data(format!("{err:#}"))
                }
                None => {
                    *done = true;
                    Event::default().event("end").data("{}")
                }
            };
            std::future::ready(Some(Ok::<_, std::convert::Infallible>(event)))
        });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Serves the request inside its own span, a child of the caller's `traceparent` if it sent a
/// valid one: the header the handlers pass on becomes this span's context, so the calls and
/// events the request leads to are the gateway span's children. An invalid header is dropped.
async fn trace_request(matched: MatchedPath, mut request: Request, next: Next) -> Response {
    use tracing::Instrument;

    let parent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let span = HttpSpan::server(
        request.method().as_str(),
        matched.as_str(),
        request.uri().path(),
        parent,
    );
    let headers = request.headers_mut();
    match span.context() {
        Some(context) => {
            let value = HeaderValue::from_str(&context.to_string())
                .expect("a traceparent is a valid header value");
            headers.insert(TRACEPARENT, value);
        }
        None => {
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
        }
    }
    let response = next.run(request).instrument(span.span().clone()).await;
    span.record_status(response.status().as_u16());
    response
}

/// The request's W3C trace context, when it carries a valid one: the call (or event) it
/// leads to joins the caller's trace. Anything else is dropped rather than passed on.
pub(crate) fn trace_metadata(headers: &HeaderMap) -> micro::Metadata {
    let mut metadata = micro::Metadata::new();
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(parent) = header(TRACEPARENT).filter(|v| TraceParent::parse(v).is_some()) {
        metadata.insert(TRACEPARENT.to_owned(), parent.to_owned());
        if let Some(state) = header(TRACESTATE) {
            metadata.insert(TRACESTATE.to_owned(), state.to_owned());
        }
    }
    metadata
}

async fn event(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Path(topic) = match path {
        Ok(path) => path,
        Err(e) => return error_response(&Error::bad_request(ID, e.body_text())),
    };
    if let Some(allow) = &gw.allow_topics {
        if !allow.contains(&topic) {
            return error_response(&Error::forbidden(
                ID,
                format_args!("topic {topic} is not exposed by this gateway"),
            ));
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => return error_response(&Error::new(ID, e.status().as_u16(), e.body_text())),
    };
    let event = match parse_json(&body) {
        Ok(event) => event,
        Err(e) => {
            return error_response(&Error::bad_request(
                ID,
                format_args!("the event is not valid JSON: {e}"),
            ));
        }
    };
    let mut publish = gw.client.publish(&topic, &event);
    for (key, value) in trace_metadata(&headers) {
        publish = publish.metadata(key, value);
    }
    match publish.await {
        Ok(()) => json_response(StatusCode::ACCEPTED, "{}".to_owned()),
        Err(err) => error_response(&err),
    }
}

async fn health(State(gw): State<Gateway>) -> Response {
    match gw.registry.list_services().await {
        Ok(_) => json_response(
            StatusCode::OK,
            format!(r#"{{"status":"ok","registry":"{}"}}"#, gw.registry.name()),
        ),
        Err(e) => error_response(&e.into()),
    }
}

async fn not_found(request: Request) -> Response {
    error_response(&Error::not_found(
        ID,
        format_args!(
            "no route for {} {}: call endpoints with POST /{{service}}/{{endpoint}}, publish with POST /event/{{topic}}",
            request.method(),
            request.uri().path()
        ),
    ))
}

async fn method_not_allowed(request: Request) -> Response {
    error_response(&Error::new(
        ID,
        405,
        format_args!("{} is not allowed here: use POST", request.method()),
    ))
}

/// Which origins may call the gateway from a browser.
#[derive(Debug)]
struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// `None` when no origin is allowed: then no CORS header is ever sent.
    fn new(origins: &[String]) -> Result<Option<Self>, Failure> {
        if origins.is_empty() {
            return Ok(None);
        }
        let any = origins.iter().any(|o| o == "*");
        let origins = origins
            .iter()
            .filter(|o| *o != "*")
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| Failure::Usage(format!("--cors: `{o}` is not an origin")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { any, origins }))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any {
            Some(HeaderValue::from_static("*"))
        } else {
            self.origins.iter().find(|o| *o == origin).cloned()
        }
    }
}

async fn cors_layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|origin| cors.allow(origin));
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        if allowed.is_some() {
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            let asked = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
                .unwrap_or(HeaderValue::from_static("content-type"));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Some(allowed) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    }
    if !cors.any {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}
