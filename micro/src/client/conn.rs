//! One outgoing multiplexed connection: many calls in flight, replies matched by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Failure;
use crate::Error;
use crate::framed::{FrameReader, ReadError, WriteQueue};
use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

type Waiter = oneshot::Sender<Result<Frame, Error>>;

#[derive(Debug, Default)]
struct Calls {
    waiting: HashMap<u64, Waiter>,
    /// Set when the server said go away: nothing more may be sent. Kept under the same lock
    /// as sending, so no request can slip onto the wire after the acknowledgement.
    draining: bool,
}

#[derive(Debug, Default)]
struct Shared {
    calls: Mutex<Calls>,
    closed: AtomicBool,
    /// Why the connection failed, for calls that come after: a server that refuses a TLS
    /// client certificate says so before the first call is even sent.
    why: std::sync::OnceLock<Error>,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail_all(&self, error: &Error) {
        let _ = self.why.set(error.clone());
        self.closed.store(true, Ordering::SeqCst);
        let waiting = std::mem::take(&mut self.calls().waiting);
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// Requests queued on one connection past which a caller waits before sending: 8 MiB.
pub(crate) const WRITE_BUFFER: usize = 8 * 1024 * 1024;
/// Calls in flight on one connection past which a caller waits for one to end.
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

/// A client connection. Dropping the last handle closes it once queued frames are written.
///
/// A caller waits, within its own deadline, while the connection has [`MAX_IN_FLIGHT`] calls
/// in flight or [`WRITE_BUFFER`] bytes of requests not yet written: a server that stops
/// reading slows its callers down instead of growing their memory.
#[derive(Debug)]
pub(crate) struct Conn {
    tx: WriteQueue,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    addr: Arc<str>,
}

impl Conn {
    pub(crate) fn start(io: BoxIo, addr: &str, max_frame: usize) -> Arc<Conn> {
        let (read, write) = tokio::io::split(io);
        let tx = WriteQueue::start(write, WRITE_BUFFER, None);
        let shared = Arc::new(Shared::default());
        let addr: Arc<str> = addr.into();
        tokio::spawn(read_loop(
            FrameReader::new(read, max_frame, None),
            shared.clone(),
            tx.downgrade(),
            addr.clone(),
        ));
        Arc::new(Conn {
            tx,
            shared,
            // 0 is reserved for frames about the connection itself.
            next_id: AtomicU64::new(1),
            addr,
        })
    }

    /// Whether new calls must go elsewhere: the connection failed or the server is leaving.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
            || self.tx.is_disconnected()
            || self.shared.calls().draining
    }

    /// Sends a request built around a fresh call id and waits for its reply frame.
    ///
    /// A failure before the request was handed to the connection is [`Failure::NotRun`].
    ///
    /// # Cancel safety
    /// Dropping the future forgets the call: a late reply is discarded.
    pub(crate) async fn call(
        &self,
        request: impl FnOnce(u64) -> Outgoing,
    ) -> Result<Frame, Failure> {
        if !self.tx.space(MAX_IN_FLIGHT).await {
            return Err(Failure::NotRun(self.lost()));
        }
        // Counted from here until the call's future ends, by reply or by being dropped.
        let _slot = self.tx.for_call();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, reply) = oneshot::channel();
        {
            let mut calls = self.shared.calls();
            if calls.draining || self.shared.closed.load(Ordering::SeqCst) {
                return Err(Failure::NotRun(self.lost()));
            }
            if self.tx.send(request(id)).is_err() {
                return Err(Failure::NotRun(self.lost()));
            }
            calls.waiting.insert(id, waiter);
        }
        let _forget = Forget {
            shared: &self.shared,
            id,
        };
        match reply.await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(error)) => Err(Failure::Final(error)),
            Err(_) => Err(Failure::Final(self.lost())),
        }
    }

    fn lost(&self) -> Error {
        if let Some(why) = self.shared.why.get() {
            return why.clone();
        }
        Error::unavailable(
            "micro.client",
            format_args!("connection to {} closed", self.addr),
        )
    }
}

/// Removes a call's waiter when its future ends, by reply or by being dropped.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.calls().waiting.remove(&self.id);
    }
}

async fn read_loop(
    mut frames: FrameReader,
    shared: Arc<Shared>,
    tx: crate::framed::WeakWriteQueue,
    addr: Arc<str>,
) {
    // Weak, so that the connection closes when the pool lets go of it.
    let error = loop {
        let frame = match frames.next().await {
            Ok(frame) => frame,
            Err(ReadError::Closed) => {
                break Error::unavailable(
                    "micro.client",
                    format_args!("connection to {addr} closed"),
                );
            }
            Err(e) => {
                tracing::warn!(%addr, "closing connection: {e}");
                break Error::unavailable(
                    "micro.client",
                    format_args!("connection to {addr} failed: {e}"),
                );
            }
        };
        let (id, frame) = match frame {
            Frame::Reply { id, .. } | Frame::Error { id, .. } => (id, frame),
            Frame::GoAway => {
                let mut calls = shared.calls();
                calls.draining = true;
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.send(Outgoing::GoAwayAck);
                }
                tracing::debug!(%addr, "server going away; {} call(s) still waiting", calls.waiting.len());
                continue;
            }
            Frame::Request(_) | Frame::GoAwayAck => {
                tracing::warn!(%addr, "closing connection: unexpected frame from the server");
                break Error::unavailable(
                    "micro.client",
                    format_args!("{addr} broke the protocol"),
                );
            }
        };
        if id == 0 {
            // The server is closing the connection and says why.
            if let Frame::Error { error, .. } = frame {
                break error;
            }
            continue;
        }
        let waiter = shared.calls().waiting.remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(frame));
        }
    };
    shared.fail_all(&error);
}
