//! What the gateway and the dashboard share: calling an endpoint for an HTTP request,
//! answering errors as micro's error JSON, and serving until a signal.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use micro::{Client, Error};

use crate::Failure;

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
    for (key, value) in metadata {
        call = call.metadata(key, value);
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
