//! One accepted connection: read request frames, route them, write replies.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Router;
use crate::Error;
use crate::framed::{FrameReader, ReadError, write_loop};
use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

/// Replies (frames, not bytes) queued on one connection past which we stop reading its
/// requests, so a peer that sends without reading cannot grow our memory without bound.
const WRITE_HIGH_WATER: usize = 4096;

/// How a connection learns that the service is stopping.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shutdown {
    /// Say go away, then serve what the peer sent before acknowledging it.
    pub(crate) drain: CancellationToken,
    /// Stop now, whatever is in flight.
    pub(crate) abort: CancellationToken,
}

/// Serves one connection until the peer closes it, it misbehaves, or shutdown ends it.
pub(crate) async fn serve(io: BoxIo, peer: String, router: Arc<Router>, shutdown: Shutdown) {
    let (read, write) = tokio::io::split(io);
    let (tx, rx) = flume::unbounded();
    let writer = tokio::spawn(write_loop(write, rx));
    let mut frames = FrameReader::new(read, router.max_frame);
    let peer: Arc<str> = peer.into();
    let mut going_away = false;
    loop {
        while tx.len() > WRITE_HIGH_WATER && !shutdown.abort.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let next = tokio::select! {
            biased;
            _ = shutdown.abort.cancelled() => break,
            _ = shutdown.drain.cancelled(), if !going_away => {
                going_away = true;
                let _ = tx.send(Outgoing::GoAway);
                continue;
            }
            next = frames.next() => next,
        };
        match next {
            Ok(Frame::Request(request)) => router.dispatch_frame(request, &peer, &tx),
            // The peer has sent its last request: everything it sent before is being served.
            Ok(Frame::GoAwayAck) if going_away => break,
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
    // Replies still being computed hold clones of `tx`; the writer sends them, then closes.
    drop(tx);
    tokio::select! {
        _ = writer => {}
        _ = shutdown.abort.cancelled() => {}
    }
}

/// Tells the peer why its connection is being closed, with call id 0 ("the connection").
fn reject(tx: &flume::Sender<Outgoing>, peer: &str, why: &str) {
    tracing::warn!(%peer, "closing connection: {why}");
    let error = Error::bad_request("micro.server", format_args!("connection closed: {why}"));
    let _ = tx.send(Outgoing::Error {
        id: 0,
        error,
        not_run: false,
    });
}
