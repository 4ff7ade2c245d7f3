//! Reading and writing frames on a stream: the piece client and server connections share.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::transport::BoxIo;
use crate::wire::{Frame, Outgoing};

/// Flush a batch once it reaches this size even if more frames are waiting.
const MAX_BATCH: usize = 256 * 1024;

/// How much room a read asks for at a time: buffers grow with the bytes that arrive, never
/// with the length a frame announces.
const READ_CHUNK: usize = 16 * 1024;

/// What a connection's write queue shares between its senders, its writer and its reader.
#[derive(Debug)]
struct QueueState {
    /// Bytes queued or being written.
    bytes: AtomicUsize,
    /// Past this many queued bytes, [`WriteQueue::space`] waits.
    limit: usize,
    /// Calls read (server) or sent (client) and not yet answered.
    in_flight: AtomicUsize,
    /// The writer has stopped: nothing queued will leave.
    closed: AtomicBool,
    /// Woken whenever bytes leave, a call ends, or the writer stops.
    changed: Notify,
    /// Tasks in [`wait_until`] past its first check: waking takes `changed`'s lock, which
    /// every call and every write would otherwise contend for with nobody waiting.
    waiting: AtomicUsize,
}

impl QueueState {
    /// Called after a change (bytes left, a call ended, the writer stopped).
    fn wake(&self) {
        // Pairs with the fence in `wait_until`: either the waiter's check sees the change,
        // or this load sees the waiter.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.changed.notify_waiters();
        }
    }
}

/// A connection's outgoing frames, bounded in bytes: senders may always queue (a reply must
/// never be lost), and whoever produces work waits on [`space`](Self::space) first, which
/// is the back-pressure.
#[derive(Debug, Clone)]
pub(crate) struct WriteQueue {
    tx: flume::Sender<(Outgoing, usize)>,
    state: Arc<QueueState>,
    /// Held by the reply path of one call: dropping the last clone ends the call.
    _call: Option<Arc<CallSlot>>,
}

/// A [`WriteQueue`] that does not keep its connection open.
#[derive(Debug, Clone)]
pub(crate) struct WeakWriteQueue {
    tx: flume::WeakSender<(Outgoing, usize)>,
    state: Arc<QueueState>,
}

impl WeakWriteQueue {
    /// The queue, unless every strong handle is gone.
    pub(crate) fn upgrade(&self) -> Option<WriteQueue> {
        Some(WriteQueue {
            tx: self.tx.upgrade()?,
            state: self.state.clone(),
            _call: None,
        })
    }
}

/// One call in flight; dropping it releases the slot.
#[derive(Debug)]
struct CallSlot(Arc<QueueState>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.wake();
    }
}

/// One call in flight, counted for as long as it is held; see [`WriteQueue::count_call`].
#[derive(Debug)]
pub(crate) struct CallCount<'a>(&'a QueueState);

impl Drop for CallCount<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.wake();
    }
}

impl WriteQueue {
    /// A queue and the task that writes it to `io`. A write that makes no progress for
    /// `stall` closes the connection (a peer that never reads cannot hold us).
    pub(crate) fn start(io: WriteHalf<BoxIo>, limit: usize, stall: Option<Duration>) -> Self {
        let (tx, rx) = flume::unbounded();
        let state = Arc::new(QueueState {
            bytes: AtomicUsize::new(0),
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
        });
        tokio::spawn(write_loop(io, rx, state.clone(), stall));
        Self {
            tx,
            state,
            _call: None,
        }
    }

    /// Queues a frame. `Err` when the connection is gone (the frame is dropped).
    pub(crate) fn send(&self, frame: Outgoing) -> Result<(), ()> {
        let size = frame.encoded_len();
        self.state.bytes.fetch_add(size, Ordering::AcqRel);
        self.tx.send((frame, size)).map_err(|_| {
            self.state.bytes.fetch_sub(size, Ordering::AcqRel);
        })
    }

    /// Nobody will write what is queued any more.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.tx.is_disconnected() || self.state.closed.load(Ordering::Acquire)
    }

    /// A handle for answering one call: the call counts as in flight until the last clone of
    /// the returned queue is dropped.
    pub(crate) fn for_call(&self) -> Self {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            tx: self.tx.clone(),
            state: self.state.clone(),
            _call: Some(Arc::new(CallSlot(self.state.clone()))),
        }
    }

    /// Counts a call in flight until the returned guard is dropped: what
    /// [`for_call`](Self::for_call) does without a handle to answer with, so without
    /// allocating (a client's call is answered on its own channel).
    pub(crate) fn count_call(&self) -> CallCount<'_> {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        CallCount(&self.state)
    }

    /// A handle that does not keep the connection open.
    pub(crate) fn downgrade(&self) -> WeakWriteQueue {
        WeakWriteQueue {
            tx: self.tx.downgrade(),
            state: self.state.clone(),
        }
    }

    /// Calls in flight on this connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Acquire)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.bytes.load(Ordering::Acquire)
    }

    /// Waits until fewer than the limit's bytes are queued and fewer than `max_in_flight`
    /// calls are in flight. `false` when the writer stopped (the connection is dead).
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) async fn space(&self, max_in_flight: usize) -> bool {
        self.wait_until(|s| has_space(s, max_in_flight)).await
    }

    /// Whether [`space`](Self::space) would return at once.
    pub(crate) fn has_space(&self, max_in_flight: usize) -> bool {
        has_space(&self.state, max_in_flight)
    }

    /// Waits until no call is in flight and nothing is queued. `false` when the writer
    /// stopped.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) async fn quiet(&self) -> bool {
        self.wait_until(|s| {
            s.in_flight.load(Ordering::Acquire) == 0 && s.bytes.load(Ordering::Acquire) == 0
        })
        .await
    }

    /// Waits until the writer has stopped.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) async fn closed(&self) {
        self.wait_until(|_| false).await;
    }

    /// Lets go of this handle and waits until the writer has written what was queued (by
    /// this and every other handle) and stopped.
    pub(crate) async fn finish(self) {
        let state = self.state.clone();
        drop(self);
        wait_until(&state, |_| false).await;
    }

    async fn wait_until(&self, ready: impl Fn(&QueueState) -> bool) -> bool {
        wait_until(&self.state, ready).await
    }
}

fn has_space(s: &QueueState, max_in_flight: usize) -> bool {
    s.bytes.load(Ordering::Acquire) < s.limit && s.in_flight.load(Ordering::Acquire) < max_in_flight
}

async fn wait_until(state: &QueueState, ready: impl Fn(&QueueState) -> bool) -> bool {
    // Usually there is room: answer without touching `changed`, whose lock every
    // registration takes.
    if state.closed.load(Ordering::Acquire) {
        return false;
    }
    if ready(state) {
        return true;
    }
    let _waiting = Waiting::register(state);
    loop {
        let changed = state.changed.notified();
        tokio::pin!(changed);
        // Registered before the check, so a wake between the check and the wait is kept.
        changed.as_mut().enable();
        if state.closed.load(Ordering::Acquire) {
            return false;
        }
        if ready(state) {
            return true;
        }
        changed.await;
    }
}

/// A task counted in [`QueueState::waiting`] while it waits, including when its wait is
/// dropped.
struct Waiting<'a>(&'a QueueState);

impl<'a> Waiting<'a> {
    fn register(state: &'a QueueState) -> Self {
        state.waiting.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `wake`: a change made before a waker's fence is seen by
        // the checks after this one, or that waker sees this task counted and notifies.
        fence(Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes queued frames, coalescing whatever is queued into one write.
///
/// Ends when every sender is gone (after writing what they queued), the stream fails, or a
/// write stalls past `stall`.
async fn write_loop(
    mut io: WriteHalf<BoxIo>,
    rx: flume::Receiver<(Outgoing, usize)>,
    state: Arc<QueueState>,
    stall: Option<Duration>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Ok((first, size)) = rx.recv_async().await {
        // Woken by the first frame, this task would otherwise run before the tasks that are
        // about to queue more (tokio runs a freshly woken task next): let them, so that a
        // burst leaves in one write instead of one write per frame.
        tokio::task::yield_now().await;
        first.encode(&mut buf);
        let mut batch = size;
        while buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((frame, size)) => {
                    frame.encode(&mut buf);
                    batch += size;
                }
                Err(_) => break,
            }
        }
        let written = match stall {
            Some(stall) => tokio::time::timeout(stall, io.write_all(&buf))
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer read nothing for {stall:?}"),
                    ))
                }),
            None => io.write_all(&buf).await,
        };
        if let Err(e) = written {
            tracing::debug!("connection write failed: {e}");
            break;
        }
        state.bytes.fetch_sub(batch, Ordering::AcqRel);
        state.wake();
        buf.clear();
        if buf.capacity() > MAX_BATCH * 2 {
            // One large frame must not pin its buffer for the life of the connection.
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
    state.closed.store(true, Ordering::Release);
    // Frames still queued will never leave: drop them now, not when the last sender goes.
    drop(rx);
    state.wake();
    let _ = io.shutdown().await;
}

/// Why a connection stopped reading.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the stream.
    Closed,
    /// A frame longer than the limit: the stream cannot be resynchronised.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A frame that does not parse.
    Malformed(String),
    /// A frame began and did not end in time.
    Stalled(Duration),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Stalled(after) => write!(f, "frame not completed within {after:?}"),
            Self::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Splits a stream into frames, reporting oversized ones with their length.
pub(crate) struct FrameReader {
    io: ReadHalf<BoxIo>,
    buf: BytesMut,
    codec: LengthPrefixed,
    /// A frame must be whole this long after its first byte arrived.
    frame_timeout: Option<Duration>,
    /// When the frame being read began to arrive.
    started: Option<Instant>,
}

impl FrameReader {
    pub(crate) fn new(
        io: ReadHalf<BoxIo>,
        max_frame: usize,
        frame_timeout: Option<Duration>,
    ) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            codec: LengthPrefixed { max: max_frame },
            frame_timeout,
            started: None,
        }
    }

    /// Restarts the clock of a partly read frame: we, not the peer, stopped reading it.
    pub(crate) fn restart_clock(&mut self) {
        self.started = None;
    }

    /// # Cancel safety
    /// Cancel safe: a partly read frame stays buffered, and its clock keeps running.
    pub(crate) async fn next(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(bytes) = self.codec.decode(&mut self.buf)? {
                self.started = None;
                if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
                    // Let a large frame's buffer go with the frame.
                    self.buf = BytesMut::new();
                }
                return Frame::decode(bytes.freeze())
                    .map_err(|e| ReadError::Malformed(e.to_string()));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let read = match (self.frame_timeout, self.buf.is_empty()) {
                (Some(limit), false) => {
                    let started = *self.started.get_or_insert_with(Instant::now);
                    tokio::time::timeout_at(started + limit, self.io.read_buf(&mut self.buf))
                        .await
                        .map_err(|_| ReadError::Stalled(limit))?
                }
                _ => self.io.read_buf(&mut self.buf).await,
            };
            if read? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }
}

/// `u32` big-endian length, then that many bytes. Stateless between calls: the prefix is
/// only consumed together with the whole frame, so a frame arriving in pieces is re-read
/// from its head, and an oversized one is reported with its length before any is buffered.
/// Nothing is reserved for an announced length: the buffer grows as bytes arrive.
struct LengthPrefixed {
    max: usize,
}

impl LengthPrefixed {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, ReadError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = (&src[..4]).get_u32() as usize;
        if len > self.max {
            return Err(ReadError::TooLarge { len, max: self.max });
        }
        if src.len() < 4 + len {
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(len)))
    }
}

/// The frame splitter as a function, for the fuzz targets: `Err` when the stream must close.
pub(crate) fn fuzz_reader(max: usize) -> impl FnMut(&mut BytesMut) -> Result<Option<BytesMut>, ()> {
    let mut codec = LengthPrefixed { max };
    move |buf| codec.decode(buf).map_err(drop)
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::ContentType;

    /// Regression: the size check once peeked at a "length" in the middle of a frame whose
    /// head had already been consumed, desynchronising the stream when a frame arrived in
    /// pieces. Feed frames split at every kind of point and expect them whole, in order.
    #[test]
    fn frames_split_at_any_point_decode_whole_and_in_order() {
        let mut stream = BytesMut::new();
        for id in 0..200u64 {
            Outgoing::Reply {
                id,
                content_type: ContentType::Bincode,
                body: Bytes::from(vec![id as u8; (id as usize * 37) % 5000]),
            }
            .encode(&mut stream);
        }
        let stream = stream.freeze();
        for step in [1, 3, 7, 64, 1000, 4093] {
            let mut codec = LengthPrefixed { max: 1 << 20 };
            let mut buf = BytesMut::new();
            let mut next = 0u64;
            for chunk in stream.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    match Frame::decode(frame.freeze()).unwrap() {
                        Frame::Reply { id, body, .. } => {
                            assert_eq!(id, next, "step {step}");
                            assert_eq!(body.len(), (id as usize * 37) % 5000);
                            next += 1;
                        }
                        other => panic!("step {step}: {other:?}"),
                    }
                }
            }
            assert_eq!(next, 200, "step {step}");
        }
    }

    #[test]
    fn an_oversized_frame_is_reported_with_its_length_before_it_is_buffered() {
        let mut codec = LengthPrefixed { max: 1024 };
        let mut buf = BytesMut::from(&5000u32.to_be_bytes()[..]);
        match codec.decode(&mut buf) {
            Err(ReadError::TooLarge {
                len: 5000,
                max: 1024,
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
