//! `micro web`: the dashboard.
//!
//! Pages are rendered on the server from the registry; a little JavaScript (`app.js`) calls
//! endpoints from the form and polls every node's `Debug.Stats` for the live numbers.
//!
//! | route | what |
//! |-------|------|
//! | `GET /` | every service, with live counters; topics with subscribers |
//! | `GET /service/{name}` | versions, nodes, endpoints, the call form, live stats |
//! | `POST /api/call/{service}/{endpoint}` | the gateway's call, for the form |
//! | `GET /api/stream/{service}/{endpoint}` | a WebSocket stream, as the gateway's (see [`crate::socket`]), for the form |
//! | `GET /api/stats/{service}` | `Debug.Stats` of every node, as `micro stats --output json` |
//! | `GET /api/metrics/{service}` | per endpoint, calls, errors and latency buckets summed from the Prometheus metrics of every node that serves them (`MICRO_METRICS_ADDRESS`), for the charts |
//! | `GET /health` | 200 while the registry answers |
//!
//! The same [guard](crate::http::Guard) as the gateway's stands in front: foreign `Host`
//! names, cross-origin or non-JSON calls, missing tokens (`--require_token`) and requests
//! past the limits are refused before any handler runs. A call's `Authorization` header goes
//! with it.

mod metrics;
mod page;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use micro::registry::{Registry, RegistryError};
use micro::{Client, Error, Stats};

use crate::Failure;
use crate::cli::WebArgs;
use crate::env::Env;
use crate::http::{Guard, bearer_metadata, call_endpoint, error_response, guard, json_response};
use crate::probe::each_node;
use crate::socket::Streams;

const ID: &str = "micro.web";

#[derive(Clone, Debug)]
struct Dashboard {
    client: Client,
    registry: Arc<dyn Registry>,
    timeout: Option<Duration>,
    /// The form's streams, over WebSockets.
    streams: Arc<Streams>,
}

impl FromRef<Dashboard> for Arc<Streams> {
    fn from_ref(d: &Dashboard) -> Self {
        d.streams.clone()
    }
}

/// Serves the dashboard until Ctrl-C or SIGTERM.
pub(crate) async fn run(env: Env, args: WebArgs) -> Result<(), Failure> {
    let streams = Arc::new(Streams {
        id: ID,
        client: env.client.clone(),
        registry: env.registry.clone(),
        timeout: args.timeout,
        allow: None,
        sessions: Arc::new(tokio::sync::Semaphore::new(args.guard.max_concurrent)),
        message_limit: args.body_limit,
    });
    let dashboard = Dashboard {
        client: env.client,
        registry: env.registry,
        timeout: args.timeout,
        streams,
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/service/{name}", get(service))
        .route("/api/call/{service}/{endpoint}", post(call))
        .route("/api/stream/{service}/{endpoint}", get(crate::socket::open))
        .route("/api/stats/{service}", get(stats))
        .route("/api/metrics/{service}", get(endpoint_metrics))
        .route("/health", get(health))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(args.body_limit))
        .with_state(dashboard)
        .layer(axum::middleware::from_fn_with_state(
            Guard::new(ID, &args.guard, &[]),
            guard,
        ));
    crate::http::serve("web", &args.address, app).await
}

async fn index(State(d): State<Dashboard>) -> Response {
    match d.registry.list_services().await {
        Ok(services) => Html(page::index(d.registry.name(), &services)).into_response(),
        Err(e) => problem(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

async fn service(State(d): State<Dashboard>, Path(name): Path<String>) -> Response {
    match d.registry.get_service(&name).await {
        Ok(versions) => Html(page::service(d.registry.name(), &name, &versions)).into_response(),
        Err(RegistryError::NotFound(_)) => problem(
            StatusCode::NOT_FOUND,
            &format!("No node of service {name} is registered."),
        ),
        Err(e) => problem(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

async fn call(
    State(d): State<Dashboard>,
    headers: axum::http::HeaderMap,
    Path((service, endpoint)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metadata = bearer_metadata(&headers);
    match body {
        Ok(body) => {
            call_endpoint(
                &d.client, ID, &service, &endpoint, &body, d.timeout, metadata,
            )
            .await
        }
        Err(e) => error_response(&Error::new(ID, e.status().as_u16(), e.body_text())),
    }
}

async fn stats(State(d): State<Dashboard>, Path(service): Path<String>) -> Response {
    match each_node::<Stats>(&d.registry, &d.client, &service, "Debug.Stats").await {
        Ok(reports) => match serde_json::to_string(&reports) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(e) => error_response(&Error::internal(ID, e)),
        },
        Err(e) => error_response(&e),
    }
}

async fn endpoint_metrics(State(d): State<Dashboard>, Path(service): Path<String>) -> Response {
    match metrics::report(&*d.registry, &service).await {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(e) => error_response(&Error::internal(ID, e)),
        },
        Err(e) => error_response(&e),
    }
}

async fn health(State(d): State<Dashboard>) -> Response {
    match d.registry.list_services().await {
        Ok(_) => json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        Err(e) => error_response(&e.into()),
    }
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("style.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("app.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "There is no such page.")
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (status, Html(page::problem(status, detail))).into_response()
}
