//! The gateway's WebSocket streams: `GET /stream/{service}/{endpoint}` upgraded to a
//! WebSocket opens a stream of the kind the registry lists for the endpoint.
//!
//! - Client → gateway: each request is a text message holding JSON; an empty text message
//!   says there are no more (a server stream takes the first request, `null` if the client
//!   ends before sending one). A message that is not JSON, or a binary message, fails the
//!   stream with 400.
//! - Gateway → client: `{"message":REPLY}` per reply, then exactly one of `{"end":{}}` (a
//!   clean end) and `{"error":ERROR}` (micro's error JSON), then a close frame.
//! - Closing the socket cancels the stream, which stops its producer.
//!
//! Messages are at most `--body_limit` bytes; requests wait for the service's credit, so a
//! fast sender is slowed down rather than buffered; sessions open at once are limited by
//! `--max_concurrent` (past it, 503 before the upgrade).

use axum::extract::rejection::PathRejection;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use micro::codec::ContentType;
use micro::registry::Registry;
use micro::{Client, Error, StreamKind, Streaming};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::trace_metadata;
use crate::http::{bearer_metadata, error_response, exposed, parse_json};
use crate::stream::kind_of;

/// Requests read ahead of the service's credit.
const READ_AHEAD: usize = 16;

/// What a server that opens WebSocket streams (the gateway, the dashboard) gives them.
#[derive(Debug)]
pub(crate) struct Streams {
    /// Names the server in its own errors (`micro.api`, `micro.web`).
    pub(crate) id: &'static str,
    pub(crate) client: Client,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) timeout: Option<Duration>,
    /// The services streams may reach; `None`: every one.
    pub(crate) allow: Option<Arc<HashSet<String>>>,
    /// Sessions open at once: each holds a stream past its request.
    pub(crate) sessions: Arc<tokio::sync::Semaphore>,
    /// The largest message, as the largest body.
    pub(crate) message_limit: usize,
}

/// Upgrades the request to a WebSocket carrying the stream, or answers why not (as a call
/// that failed would).
pub(crate) async fn open(
    State(streams): State<Arc<Streams>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let id = streams.id;
    let (service, endpoint) = match exposed(id, streams.allow.as_deref(), path) {
        Ok(exposed) => exposed,
        Err(e) => return error_response(&e),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => {
            return error_response(&Error::bad_request(
                id,
                format_args!(
                    "{}: open a WebSocket here, or POST for Server-Sent Events",
                    e.body_text()
                ),
            ));
        }
    };
    let kind = kind_of(&*streams.registry, &service, &endpoint).await;
    if kind == StreamKind::Unary {
        return error_response(&Error::bad_request(
            id,
            format_args!(
                "{service} {endpoint} is not a streaming endpoint in the registry: call it with POST /{service}/{endpoint}"
            ),
        ));
    }
    let Ok(permit) = streams.sessions.clone().try_acquire_owned() else {
        return error_response(&Error::new(
            id,
            503,
            "too many WebSocket streams at once: over --max_concurrent",
        ));
    };
    let mut metadata = bearer_metadata(&headers);
    metadata.extend(trace_metadata(&headers));
    let limit = streams.message_limit;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            session(&streams, socket, service, endpoint, kind, metadata).await;
            drop(permit);
        })
}

/// Why a session stops sending.
enum Stop {
    /// The stream failed: the client is told.
    Failed(Error),
    /// The client went away: nobody to tell.
    Gone,
}

async fn session(
    streams: &Streams,
    socket: WebSocket,
    service: String,
    endpoint: String,
    kind: StreamKind,
    metadata: micro::Metadata,
) {
    let id = streams.id;
    let (mut out, mut incoming) = socket.split();
    let gone = CancellationToken::new();
    let (tx, mut requests) = Streaming::<Value>::channel(READ_AHEAD);
    let reader = {
        let gone = gone.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Some(message) = incoming.next().await {
                let text = match message {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Binary(_)) => {
                        if let Some(tx) = tx.take() {
                            let error =
                                Error::bad_request(id, "send requests as text messages of JSON");
                            let _ = tx.fail(error).await;
                        }
                        continue;
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(Message::Close(_)) | Err(_) => break,
                };
                // Past the end of the requests, messages are ignored.
                let Some(sender) = &tx else { continue };
                if text.trim().is_empty() {
                    tx = None;
                    continue;
                }
                let sent = match parse_json(text.as_bytes()) {
                    Ok(request) => sender.send(request).await.is_ok(),
                    Err(e) => {
                        let error = Error::bad_request(
                            id,
                            format_args!("a request message is not valid JSON: {e}"),
                        );
                        let _ = sender.fail(error).await;
                        false
                    }
                };
                if !sent {
                    tx = None;
                }
            }
            gone.cancel();
        })
    };

    let service: std::sync::Arc<str> = service.into();
    let client = &streams.client;
    macro_rules! options {
        ($call:expr) => {{
            let mut call = $call.content_type(ContentType::Json);
            for (key, value) in metadata {
                call = call.metadata(key, value);
            }
            if let Some(timeout) = streams.timeout {
                call = call.timeout(timeout);
            }
            call
        }};
    }
    let streamed = async {
        let replies = match kind {
            StreamKind::Client => {
                let call =
                    options!(client.client_stream::<Value, Value>(service, endpoint, requests));
                let reply = call.await.map_err(Stop::Failed)?;
                return send(&mut out, format!(r#"{{"message":{reply}}}"#)).await;
            }
            StreamKind::Bidi => {
                options!(client.bidi_stream::<Value, Value>(service, endpoint, requests))
                    .await
                    .map_err(Stop::Failed)?
            }
            _ => {
                let first = requests.next().await;
                // Later messages are ignored, not queued: the reader keeps noticing a close.
                drop(requests);
                let request = match first {
                    Some(request) => request.map_err(Stop::Failed)?,
                    None => Value::Null,
                };
                options!(client.server_stream::<Value, Value>(service, endpoint, request))
                    .await
                    .map_err(Stop::Failed)?
            }
        };
        let mut replies = replies;
        while let Some(reply) = replies.next().await {
            let reply = reply.map_err(Stop::Failed)?;
            send(&mut out, format!(r#"{{"message":{reply}}}"#)).await?;
        }
        Ok(())
    };
    let outcome = tokio::select! {
        outcome = streamed => outcome,
        () = gone.cancelled() => Err(Stop::Gone),
    };
    let last = match outcome {
        Ok(()) => r#"{"end":{}}"#.to_owned(),
        Err(Stop::Failed(error)) => format!(r#"{{"error":{error:#}}}"#),
        Err(Stop::Gone) => {
            reader.abort();
            return;
        }
    };
    if send(&mut out, last).await.is_ok() {
        let _ = out
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    }
    reader.abort();
}

/// Sends one text message; a client that went away stops the session.
async fn send(
    out: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    text: String,
) -> Result<(), Stop> {
    out.send(Message::Text(text.into()))
        .await
        .map_err(|_| Stop::Gone)
}
