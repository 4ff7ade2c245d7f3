//! One outgoing multiplexed connection: many calls in flight, replies matched by id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Failure;
use crate::Error;
use crate::Payload;
use crate::codec::ContentType;
use crate::framed::{FrameReader, ReadError, WriteQueue};
use crate::stream::PayloadStream;
use crate::stream::mux::{Outbound, Streams, pump};
use crate::transport::BoxIo;
use crate::wire::{FLAG_REPLY_STREAM, Frame, Outgoing};

type Waiter = oneshot::Sender<Result<Frame, Error>>;

#[derive(Debug, Default)]
struct Calls {
    waiting: HashMap<u64, Waiter, BuildHasherDefault<IdHasher>>,
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

/// Hashes call ids, which this side hands out one after the other: SipHash's defence against
/// keys chosen to collide buys nothing here (a peer only names ids to look up), and it cost
/// a few percent of a call, hashed twice each.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: consecutive ids spread over the whole table, high bits too.
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
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
    streams: Arc<Streams>,
}

impl Conn {
    pub(crate) fn start(io: BoxIo, addr: &str, max_frame: usize) -> Arc<Conn> {
        let (read, write) = tokio::io::split(io);
        let tx = WriteQueue::start(write, WRITE_BUFFER, None);
        let shared = Arc::new(Shared::default());
        let addr: Arc<str> = addr.into();
        let streams = Arc::new(Streams::default());
        tokio::spawn(read_loop(
            FrameReader::new(read, max_frame, None),
            shared.clone(),
            tx.downgrade(),
            addr.clone(),
            streams.clone(),
        ));
        Arc::new(Conn {
            tx,
            shared,
            // 0 is reserved for frames about the connection itself.
            next_id: AtomicU64::new(1),
            addr,
            streams,
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
        // The wait is boxed (and usually skipped), so that every call's future does not
        // carry it.
        if !self.tx.has_space(MAX_IN_FLIGHT) && !Box::pin(self.tx.space(MAX_IN_FLIGHT)).await {
            return Err(Failure::NotRun(self.lost()));
        }
        // Counted from here until the call's future ends, by reply or by being dropped.
        let _slot = self.tx.count_call();
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
        let mut forget = Forget {
            shared: &self.shared,
            id,
            armed: true,
        };
        let reply = reply.await;
        // Whoever answered (or failed) the call took its waiter out of the table already.
        forget.armed = false;
        match reply {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(error)) => Err(Failure::Final(error)),
            Err(_) => Err(Failure::Final(self.lost())),
        }
    }

    /// Opens a stream with `open` (an open frame around a fresh id), sends `requests` on it
    /// within the server's credit, and waits for the handler's answer: the stream of replies
    /// when `flags` asks for one, else its single reply. The inner `Err` is the server's
    /// answer, `true` when it turned the stream away before running the handler.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the stream: the server is told to stop.
    pub(crate) async fn open_stream(
        &self,
        flags: u16,
        open: impl FnOnce(u64) -> Outgoing,
        requests: Option<PayloadStream>,
        content_type: ContentType,
        max_frame: usize,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Result<Payload, (Error, bool)>, Failure> {
        if !self.tx.space(MAX_IN_FLIGHT).await {
            return Err(Failure::NotRun(self.lost()));
        }
        // Counted in flight until the stream of replies is dropped or ends.
        let slot = self.tx.for_call();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let replies = flags & FLAG_REPLY_STREAM != 0;
        let Some((reader, credit)) = self.streams.open(id, replies, requests.is_some(), &slot)
        else {
            return Err(Failure::NotRun(self.lost()));
        };
        let mut guard = Abandon {
            conn: self,
            id,
            armed: true,
        };
        let (waiter, reply) = oneshot::channel();
        {
            let mut calls = self.shared.calls();
            if calls.draining || self.shared.closed.load(Ordering::SeqCst) {
                guard.armed = false;
                self.streams.remove(id);
                return Err(Failure::NotRun(self.lost()));
            }
            if self.tx.send(open(id)).is_err() {
                guard.armed = false;
                self.streams.remove(id);
                return Err(Failure::NotRun(self.lost()));
            }
            calls.waiting.insert(id, waiter);
        }
        if let (Some(items), Some(credit)) = (requests, credit) {
            let out = Outbound {
                tx: slot.clone(),
                id,
                content_type,
                max_frame,
                credit,
                deadline,
                source: "micro.client",
            };
            tokio::spawn(pump(out, items));
        }
        let answer = match reply.await {
            Ok(Ok(frame)) => frame,
            Ok(Err(error)) => return Err(Failure::Final(error)),
            Err(_) => return Err(Failure::Final(self.lost())),
        };
        match (answer, reader) {
            (Frame::StreamAccept { .. }, Some(reader)) => {
                // The reader owns the stream from here: dropping it cancels.
                guard.armed = false;
                Ok(Ok(Payload::payloads(reader)))
            }
            (
                Frame::Reply {
                    content_type, body, ..
                },
                None,
            ) => Ok(Ok(Payload::encoded(content_type, body))),
            (Frame::Error { error, not_run, .. }, _) => Ok(Err((error, not_run))),
            _ => Err(Failure::Final(Error::internal(
                "micro.client",
                format_args!("{} answered a stream with the wrong frame", self.addr),
            ))),
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

/// Tells the server to stop a stream whose opening was abandoned or failed, and forgets it.
struct Abandon<'a> {
    conn: &'a Conn,
    id: u64,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.conn.shared.calls().waiting.remove(&self.id);
        if self.armed {
            let _ = self.conn.tx.send(Outgoing::StreamCancel { id: self.id });
            self.conn.streams.remove(self.id);
        }
    }
}

/// Removes a call's waiter when its future is dropped before the answer.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
    armed: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.calls().waiting.remove(&self.id);
        }
    }
}

async fn read_loop(
    mut frames: FrameReader,
    shared: Arc<Shared>,
    tx: crate::framed::WeakWriteQueue,
    addr: Arc<str>,
    streams: Arc<Streams>,
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
            Frame::Reply { id, .. } | Frame::Error { id, .. } | Frame::StreamAccept { id } => {
                (id, frame)
            }
            Frame::StreamData {
                id,
                content_type,
                body,
            } => match streams.data(id, content_type, body) {
                Ok(()) => continue,
                Err(violation) => {
                    tracing::warn!(%addr, "closing connection: {}", violation.0);
                    break Error::unavailable(
                        "micro.client",
                        format_args!("{addr} broke the protocol: {}", violation.0),
                    );
                }
            },
            Frame::StreamEnd { id } => {
                streams.end(id, Ok(()));
                continue;
            }
            Frame::StreamCredit { id, bytes } => {
                streams.credit(id, bytes);
                continue;
            }
            Frame::StreamCancel { id } => {
                streams.cancel(id, false);
                continue;
            }
            Frame::GoAway => {
                let mut calls = shared.calls();
                calls.draining = true;
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.send(Outgoing::GoAwayAck);
                }
                tracing::debug!(%addr, "server going away; {} call(s) still waiting", calls.waiting.len());
                continue;
            }
            Frame::Request(_) | Frame::StreamOpen(_) | Frame::GoAwayAck => {
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
        match (waiter, frame) {
            (Some(waiter), frame) => {
                let _ = waiter.send(Ok(frame));
            }
            // An error after a stream was accepted ends the stream.
            (None, Frame::Error { error, .. }) => streams.end(id, Err(error)),
            (None, _) => {}
        }
    };
    streams.close_all(&error);
    shared.fail_all(&error);
}
