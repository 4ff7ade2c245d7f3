//! One outgoing multiplexed connection: many calls in flight, replies matched by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::Error;
use crate::framed::{FrameReader, ReadError, write_loop};
use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

type Waiter = oneshot::Sender<Result<Frame, Error>>;

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Waiter>>,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self, error: &Error) {
        self.closed.store(true, Ordering::SeqCst);
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, waiter) in pending {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// A client connection. Dropping the last handle closes it once queued frames are written.
#[derive(Debug)]
pub(crate) struct Conn {
    tx: flume::Sender<Outgoing>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    addr: Arc<str>,
}

impl Conn {
    pub(crate) fn start(io: BoxIo, addr: &str, max_frame: usize) -> Arc<Conn> {
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = flume::unbounded();
        tokio::spawn(write_loop(write, rx));
        let shared = Arc::new(Shared::default());
        let addr: Arc<str> = addr.into();
        tokio::spawn(read_loop(
            FrameReader::new(read, max_frame),
            shared.clone(),
            addr.clone(),
        ));
        Arc::new(Conn {
            tx,
            shared,
            // 0 is reserved for errors about the connection itself.
            next_id: AtomicU64::new(1),
            addr,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst) || self.tx.is_disconnected()
    }

    /// Sends a request built around a fresh call id and waits for its reply frame.
    ///
    /// # Cancel safety
    /// Dropping the future forgets the call: a late reply is discarded.
    pub(crate) async fn call(&self, request: impl FnOnce(u64) -> Outgoing) -> Result<Frame, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, reply) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, waiter);
        let _forget = Forget {
            shared: &self.shared,
            id,
        };
        if self.is_closed() || self.tx.send(request(id)).is_err() {
            return Err(self.lost());
        }
        reply.await.unwrap_or_else(|_| Err(self.lost()))
    }

    fn lost(&self) -> Error {
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
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

async fn read_loop(mut frames: FrameReader, shared: Arc<Shared>, addr: Arc<str>) {
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
        let id = match &frame {
            Frame::Reply { id, .. } | Frame::Error { id, .. } => *id,
            Frame::Request(_) => {
                tracing::warn!(%addr, "closing connection: server sent a request frame");
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
        let waiter = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(frame));
        }
    };
    shared.fail_all(&error);
}
