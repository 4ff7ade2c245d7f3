//! One accepted connection: read request frames, route them, write replies.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::listen::ServerLimits;
use super::{Router, stream};
use crate::Error;
use crate::framed::{FrameReader, ReadError, WriteQueue};
use crate::stream::mux::Streams;
use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

/// How a connection learns that the service is stopping.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shutdown {
    /// Say go away, then serve what the peer sent before acknowledging it.
    pub(crate) drain: CancellationToken,
    /// Stop now, whatever is in flight.
    pub(crate) abort: CancellationToken,
}

/// Serves one connection until the peer closes it, it misbehaves, it idles, or shutdown
/// ends it. Everything the connection holds is released when this returns, except replies
/// still being computed, which are dropped as they finish if the writer is gone.
pub(crate) async fn serve(
    io: BoxIo,
    peer: String,
    router: Arc<Router>,
    limits: ServerLimits,
    shutdown: Shutdown,
) {
    let (read, write) = tokio::io::split(io);
    let idle = limits.get_idle_timeout();
    let tx = WriteQueue::start(write, limits.get_write_buffer(), Some(idle));
    let mut frames = FrameReader::new(read, router.max_frame, Some(limits.get_frame_timeout()));
    let peer: Arc<str> = peer.into();
    let max_in_flight = limits.get_max_in_flight();
    let mut going_away = false;
    // Acknowledged the go away while streams were open: serve them, then close.
    let mut acked = false;
    let streams = Arc::new(Streams::default());
    // The idle clock runs from the last frame read or the last call answered.
    let mut idle_since = Instant::now();
    loop {
        let quiet = tx.in_flight() == 0 && tx.queued_bytes() == 0;
        if acked && quiet {
            break;
        }
        let next = tokio::select! {
            biased;
            _ = shutdown.abort.cancelled() => {
                // Out of time: streams end with a reason rather than a cut connection.
                let error = Error::unavailable("micro.server", "the service is shutting down");
                streams.end_all(&tx, &error);
                break;
            }
            _ = tx.closed() => break,
            _ = shutdown.drain.cancelled(), if !going_away => {
                going_away = true;
                let _ = tx.send(Outgoing::GoAway);
                continue;
            }
            // Busy: wake when the last call is answered, to start the idle clock.
            _ = tx.quiet(), if !quiet => {
                idle_since = Instant::now();
                continue;
            }
            _ = tokio::time::sleep_until(idle_since + idle), if quiet => {
                if going_away {
                    // Told to go away an idle period ago and still not acknowledged.
                    tracing::debug!(%peer, "closing connection: idle after go away");
                    break;
                }
                // Go away rather than close, so a request already on its way is served.
                tracing::debug!(%peer, "connection idle for {idle:?}: asking the peer to go away");
                going_away = true;
                idle_since = Instant::now();
                let _ = tx.send(Outgoing::GoAway);
                continue;
            }
            next = async {
                // Back-pressure: read no more requests while the peer is not reading replies
                // or has too many calls in flight. With streams open, keep reading at the
                // call limit (their credit and cancel frames must get through) and turn new
                // calls away instead.
                let limit = if streams.is_empty() { max_in_flight } else { usize::MAX };
                if !tx.has_space(limit) {
                    if !tx.space(limit).await {
                        return Err(ReadError::Closed);
                    }
                    frames.restart_clock();
                }
                frames.next().await
            } => next,
        };
        idle_since = Instant::now();
        let next = match next {
            Ok(frame) => {
                let mut frame = Some(frame);
                match stream::frame(&streams, &mut frame) {
                    Ok(true) => continue,
                    Ok(false) => frame.map(Ok).unwrap_or(Err(ReadError::Closed)),
                    Err(violation) => {
                        reject(&tx, &peer, violation.0);
                        break;
                    }
                }
            }
            Err(e) => Err(e),
        };
        match next {
            Ok(Frame::Request(request) | Frame::StreamOpen(request))
                if tx.in_flight() >= max_in_flight =>
            {
                let error = Error::overloaded(
                    "micro.server",
                    format_args!("{max_in_flight} calls and streams in flight on this connection"),
                );
                let _ = tx.send(Outgoing::Error {
                    id: request.id,
                    error,
                    not_run: true,
                });
            }
            Ok(Frame::Request(request)) => {
                router.dispatch_frame(request, &peer, &tx.for_call());
            }
            Ok(Frame::StreamOpen(request)) => {
                stream::open(&router, &streams, request, &peer, tx.for_call());
            }
            // The peer has sent its last request: everything it sent before is being served,
            // and its open streams still need their credit and cancel frames read.
            Ok(Frame::GoAwayAck) if going_away => {
                if streams.is_empty() {
                    break;
                }
                acked = true;
            }
            Ok(_) => {
                reject(&tx, &peer, "unexpected frame from a client");
                break;
            }
            Err(ReadError::Closed) => break,
            Err(ReadError::Io(e)) => {
                tracing::debug!(%peer, "connection read failed: {e}");
                break;
            }
            Err(e) => {
                reject(&tx, &peer, &e.to_string());
                break;
            }
        }
    }
    // Streams still open end with an error (their senders stop), never as if complete.
    streams.close_all(&Error::unavailable("micro.server", "connection closed"));
    // Replies still being computed hold clones of `tx`; the writer sends them, then closes.
    drop(frames);
    tokio::select! {
        _ = tx.finish() => {}
        _ = shutdown.abort.cancelled() => {}
    }
}

/// Tells the peer why its connection is being closed, with call id 0 ("the connection").
fn reject(tx: &WriteQueue, peer: &str, why: &str) {
    tracing::warn!(%peer, "closing connection: {why}");
    let error = Error::bad_request("micro.server", format_args!("connection closed: {why}"));
    let _ = tx.send(Outgoing::Error {
        id: 0,
        error,
        not_run: false,
    });
}
