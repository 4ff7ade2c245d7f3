//! Streams on a server connection: opening one runs its handler as a turn of the actor, then
//! a task of its own sends the stream the handler returned.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Router, reply_frame};
use crate::framed::WriteQueue;
use crate::middleware::Request;
use crate::stream::mux::{Outbound, Streams, Violation, pump};
use crate::wire::{FLAG_REPLY_STREAM, FLAG_REQUEST_STREAM, Frame, Outgoing, RequestFrame};
use crate::{Error, Payload};

/// Opens the stream `frame` asks for. `tx` counts the stream as a call in flight until it
/// ends, so a draining connection waits for it.
pub(super) fn open(
    router: &Arc<Router>,
    streams: &Arc<Streams>,
    frame: RequestFrame,
    caller: &Arc<str>,
    tx: WriteQueue,
) {
    let id = frame.id;
    let route = match router.route(frame.service(), frame.endpoint()) {
        Ok(route) => route,
        Err(error) => {
            let _ = tx.send(Outgoing::Error {
                id,
                error,
                not_run: false,
            });
            return;
        }
    };
    let requests = frame.flags & FLAG_REQUEST_STREAM != 0;
    let replies = frame.flags & FLAG_REPLY_STREAM != 0;
    let Some((reader, credit)) = streams.open(id, requests, replies, &tx) else {
        let error = Error::bad_request("micro.server", "stream id already in use");
        let _ = tx.send(Outgoing::Error {
            id,
            error,
            not_run: false,
        });
        return;
    };
    let payload = match reader {
        Some(reader) => Payload::payloads(reader),
        None => Payload::encoded(frame.content_type, frame.body),
    };
    // For a stream, the caller's timeout bounds the whole stream.
    let deadline = (frame.timeout_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(u64::from(frame.timeout_ms)));
    let mut request = Request::new(
        router.service.clone(),
        route.def.name.into(),
        frame.metadata,
        deadline,
        payload,
    );
    request.caller = caller.clone();
    let (content_type, max_frame) = (frame.content_type, router.max_frame);
    let (router, streams) = (router.clone(), streams.clone());
    tokio::spawn(async move {
        let result = router.call_routed(request).await;
        match (result, credit) {
            (Ok(reply), Some(credit)) => match reply.into_payloads() {
                Ok(items) => {
                    if tx.send(Outgoing::StreamAccept { id }).is_ok() {
                        let out = Outbound {
                            tx: tx.clone(),
                            id,
                            content_type,
                            max_frame,
                            credit,
                            deadline,
                            source: "micro.server",
                        };
                        pump(out, items).await;
                    }
                }
                Err(e) => {
                    let error = Error::internal(
                        "micro.server",
                        format_args!("the handler returned no stream: {e}"),
                    );
                    let _ = tx.send(Outgoing::Error {
                        id,
                        error,
                        not_run: false,
                    });
                }
            },
            (result, _) => {
                let _ = tx.send(reply_frame(id, content_type, max_frame, result));
            }
        }
        streams.remove(id);
    });
}

/// Hands a stream frame from the client to its stream. `Ok(false)` when `frame` is not
/// about a stream.
pub(super) fn frame(streams: &Streams, frame: &mut Option<Frame>) -> Result<bool, Violation> {
    match frame.take() {
        Some(Frame::StreamData {
            id,
            content_type,
            body,
        }) => streams.data(id, content_type, body)?,
        Some(Frame::StreamEnd { id }) => streams.end(id, Ok(())),
        Some(Frame::Error { id, error, .. }) if id != 0 => streams.end(id, Err(error)),
        Some(Frame::StreamCredit { id, bytes }) => streams.credit(id, bytes),
        Some(Frame::StreamCancel { id }) => streams.cancel(id, true),
        other => {
            *frame = other;
            return Ok(false);
        }
    }
    Ok(true)
}
