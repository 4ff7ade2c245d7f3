//! Streams multiplexed on one connection: each stream's inbound items, its outbound credit,
//! and the task that sends a stream's items within that credit. Client and server
//! connections share this; only who opens a stream differs.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{Stream, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::PayloadStream;
use crate::codec::ContentType;
use crate::framed::WriteQueue;
use crate::server::HEADER_ALLOWANCE;
use crate::wire::Outgoing;
use crate::{Error, Payload};

/// Bytes of a stream's items a receiver takes without reading them: the sender waits for
/// credit past this. With the frame being read, the most one stream buffers at each end.
pub(crate) const WINDOW: u32 = 1 << 20;

/// The streams open on one connection, by id.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    state: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    open: HashMap<u64, Entry>,
    /// Set when the connection ended: nothing more opens.
    closed: bool,
}

#[derive(Debug, Default)]
struct Entry {
    /// Where the peer's items for this stream go, while we read them.
    inbound: Option<InboundTx>,
    /// The peer's credit for our items, while we send them.
    outbound: Option<Arc<Credit>>,
}

/// A frame broke the stream protocol: the connection must close.
#[derive(Debug)]
pub(crate) struct Violation(pub(crate) &'static str);

impl Streams {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers stream `id`, with an inbound side when the peer sends items and an outbound
    /// credit when we do. `None` when the connection ended or the id is taken.
    pub(crate) fn open(
        self: &Arc<Self>,
        id: u64,
        inbound: bool,
        outbound: bool,
        tx: &WriteQueue,
    ) -> Option<(Option<PayloadStream>, Option<Arc<Credit>>)> {
        let mut table = self.table();
        if table.closed || table.open.contains_key(&id) {
            return None;
        }
        let (inbound_tx, reader) = if inbound {
            let (items, rx) = flume::unbounded();
            let state = Arc::new(InboundState {
                granted: AtomicU64::new(u64::from(WINDOW)),
                end: Mutex::new(None),
            });
            let reader: PayloadStream = Box::pin(Inbound {
                id,
                items: rx.into_stream(),
                state: state.clone(),
                tx: tx.clone(),
                streams: self.clone(),
                unacked: 0,
                done: false,
            });
            (
                Some(InboundTx {
                    items,
                    state,
                    received: 0,
                }),
                Some(reader),
            )
        } else {
            (None, None)
        };
        let credit = outbound.then(|| Arc::new(Credit::new(WINDOW)));
        table.open.insert(
            id,
            Entry {
                inbound: inbound_tx,
                outbound: credit.clone(),
            },
        );
        Some((reader, credit))
    }

    /// Forgets stream `id`: frames for it that still arrive are ignored.
    pub(crate) fn remove(&self, id: u64) {
        let entry = self.table().open.remove(&id);
        if let Some(entry) = entry {
            entry.finish(Err(Error::unavailable("micro", "stream closed")));
        }
    }

    /// Whether any stream is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.table().open.is_empty()
    }

    /// An item for stream `id`.
    pub(crate) fn data(
        &self,
        id: u64,
        content_type: ContentType,
        body: Bytes,
    ) -> Result<(), Violation> {
        let mut table = self.table();
        let Some(inbound) = table.open.get_mut(&id).and_then(|e| e.inbound.as_mut()) else {
            // A stream we stopped reading: its items were in flight.
            return Ok(());
        };
        if inbound.received >= inbound.state.granted.load(Ordering::Acquire) {
            return Err(Violation("stream item sent without credit"));
        }
        let len = body.len() as u64;
        inbound.received += len.max(1);
        // The reader may be gone already; its Drop removes the entry.
        let _ = inbound
            .items
            .send((Payload::encoded(content_type, body), len.max(1)));
        Ok(())
    }

    /// The peer's direction of stream `id` ended, cleanly or with an error.
    pub(crate) fn end(&self, id: u64, result: Result<(), Error>) {
        let mut table = self.table();
        if let Some(entry) = table.open.get_mut(&id)
            && let Some(inbound) = entry.inbound.take()
        {
            inbound.finish(result);
        }
    }

    /// The peer granted `bytes` more of credit on stream `id`.
    pub(crate) fn credit(&self, id: u64, bytes: u32) {
        if let Some(credit) = self.table().open.get(&id).and_then(|e| e.outbound.clone()) {
            credit.grant(bytes);
        }
    }

    /// The peer stopped reading stream `id`; with `all`, it abandoned the whole stream.
    pub(crate) fn cancel(&self, id: u64, all: bool) {
        let mut table = self.table();
        let Some(entry) = table.open.get_mut(&id) else {
            return;
        };
        if let Some(credit) = &entry.outbound {
            credit.cancel();
        }
        if all && let Some(inbound) = entry.inbound.take() {
            inbound.finish(Err(Error::unavailable("micro", "the caller cancelled")));
        }
    }

    /// Ends every stream we send on with `error`, told to the peer, and reads no more of
    /// theirs: how a server that cannot wait any longer ends its streams.
    pub(crate) fn end_all(&self, tx: &WriteQueue, error: &Error) {
        let open = {
            let mut table = self.table();
            table.closed = true;
            std::mem::take(&mut table.open)
        };
        for (id, entry) in open {
            if entry.outbound.is_some() {
                let _ = tx.send(Outgoing::Error {
                    id,
                    error: error.clone(),
                    not_run: false,
                });
            }
            entry.finish(Err(error.clone()));
        }
    }

    /// The connection ended: every stream ends with `error`, and nothing more opens.
    pub(crate) fn close_all(&self, error: &Error) {
        let open = {
            let mut table = self.table();
            table.closed = true;
            std::mem::take(&mut table.open)
        };
        for (_, entry) in open {
            entry.finish(Err(error.clone()));
        }
    }
}

impl Entry {
    fn finish(self, result: Result<(), Error>) {
        if let Some(credit) = &self.outbound {
            credit.cancel();
        }
        if let Some(inbound) = self.inbound {
            inbound.finish(result);
        }
    }
}

#[derive(Debug)]
struct InboundTx {
    items: flume::Sender<(Payload, u64)>,
    state: Arc<InboundState>,
    /// Bytes received (at least one per item, so empty items count against the window too).
    received: u64,
}

impl InboundTx {
    fn finish(self, result: Result<(), Error>) {
        let mut end = self.state.end.lock().unwrap_or_else(|e| e.into_inner());
        end.get_or_insert(result);
        // Dropping `items` now wakes the reader, which then finds the end.
    }
}

#[derive(Debug)]
struct InboundState {
    /// Bytes the reader allowed so far: the window plus every credit it sent.
    granted: AtomicU64,
    /// How the peer's direction ended; unset when it has not, or the entry was dropped.
    end: Mutex<Option<Result<(), Error>>>,
}

/// The reader of one stream's inbound items: grants credit as items are read, and tells the
/// peer when it is dropped before the end.
struct Inbound {
    id: u64,
    items: flume::r#async::RecvStream<'static, (Payload, u64)>,
    state: Arc<InboundState>,
    tx: WriteQueue,
    streams: Arc<Streams>,
    unacked: u64,
    done: bool,
}

impl Stream for Inbound {
    type Item = Result<Payload, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.items.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some((payload, len))) => {
                self.unacked += len;
                if self.unacked >= u64::from(WINDOW / 2) {
                    let bytes = u32::try_from(self.unacked).unwrap_or(u32::MAX);
                    self.unacked -= u64::from(bytes);
                    // Raised before the peer can hear of it, so its next item is in credit.
                    self.state
                        .granted
                        .fetch_add(u64::from(bytes), Ordering::AcqRel);
                    let _ = self.tx.send(Outgoing::StreamCredit { id: self.id, bytes });
                }
                Poll::Ready(Some(Ok(payload)))
            }
            Poll::Ready(None) => {
                self.done = true;
                self.streams.forget_inbound(self.id);
                let end = self
                    .state
                    .end
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match end {
                    Some(Ok(())) => Poll::Ready(None),
                    Some(Err(error)) => Poll::Ready(Some(Err(error))),
                    None => Poll::Ready(Some(Err(Error::unavailable(
                        "micro",
                        "stream broken before its end",
                    )))),
                }
            }
        }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.tx.send(Outgoing::StreamCancel { id: self.id });
            self.streams.forget_inbound(self.id);
        }
    }
}

impl Streams {
    fn forget_inbound(&self, id: u64) {
        let mut table = self.table();
        if let Some(entry) = table.open.get_mut(&id) {
            entry.inbound = None;
            if entry.outbound.is_none() {
                table.open.remove(&id);
            }
        }
    }
}

/// What the peer lets us send on one stream, in bytes; may go below zero by one item.
#[derive(Debug)]
pub(crate) struct Credit {
    available: Mutex<i64>,
    more: Notify,
    cancelled: CancellationToken,
}

impl Credit {
    fn new(initial: u32) -> Self {
        Self {
            available: Mutex::new(i64::from(initial)),
            more: Notify::new(),
            cancelled: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, i64> {
        self.available.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn grant(&self, bytes: u32) {
        *self.lock() += i64::from(bytes);
        self.more.notify_one();
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.cancel();
    }

    /// Waits until the peer's credit is positive; `false` when it stopped reading.
    async fn ready(&self) -> bool {
        loop {
            if self.cancelled.is_cancelled() {
                return false;
            }
            if *self.lock() > 0 {
                return true;
            }
            tokio::select! {
                _ = self.more.notified() => {}
                _ = self.cancelled.cancelled() => return false,
            }
        }
    }

    fn spend(&self, bytes: usize) {
        *self.lock() -= i64::try_from(bytes.max(1)).unwrap_or(i64::MAX);
    }
}

/// Where a stream's items go, and in what codec.
pub(crate) struct Outbound {
    pub(crate) tx: WriteQueue,
    pub(crate) id: u64,
    pub(crate) content_type: ContentType,
    pub(crate) max_frame: usize,
    pub(crate) credit: Arc<Credit>,
    /// When the stream must end; a `timeout` error then.
    pub(crate) deadline: Option<Instant>,
    /// Who is sending, for errors.
    pub(crate) source: &'static str,
}

/// How a pumped stream ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// Its end (clean or an error) was sent.
    Ended,
    /// The peer stopped reading, or the connection ended: the rest was dropped.
    Cancelled,
}

/// Sends `items` on the stream within the peer's credit and the connection's write buffer,
/// then its end: a clean end, or the first error. Dropping `items` (when the peer cancels)
/// is what stops its producer.
pub(crate) async fn pump(out: Outbound, mut items: PayloadStream) -> Pumped {
    let sleep = async {
        match out.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        let next = tokio::select! {
            biased;
            _ = out.credit.cancelled.cancelled() => return Pumped::Cancelled,
            _ = &mut sleep => {
                let error = Error::timeout(out.source, "stream passed its deadline");
                let _ = out.tx.send(Outgoing::Error { id: out.id, error, not_run: false });
                return Pumped::Ended;
            }
            next = async {
                if !out.credit.ready().await {
                    return None;
                }
                // The connection's byte bound: the write queue is shared with every call.
                if !out.tx.space(usize::MAX).await {
                    return None;
                }
                Some(items.next().await)
            } => match next {
                Some(next) => next,
                None => return Pumped::Cancelled,
            },
        };
        let frame = match next {
            Some(Ok(payload)) => match encode(&payload, &out) {
                Ok(body) => {
                    out.credit.spend(body.len());
                    Outgoing::StreamData {
                        id: out.id,
                        content_type: out.content_type,
                        body,
                    }
                }
                Err(error) => Outgoing::Error {
                    id: out.id,
                    error,
                    not_run: false,
                },
            },
            Some(Err(error)) => Outgoing::Error {
                id: out.id,
                error,
                not_run: false,
            },
            None => Outgoing::StreamEnd { id: out.id },
        };
        let last = !matches!(frame, Outgoing::StreamData { .. });
        if out.tx.send(frame).is_err() {
            return Pumped::Cancelled;
        }
        if last {
            return Pumped::Ended;
        }
    }
}

fn encode(payload: &Payload, out: &Outbound) -> Result<Bytes, Error> {
    let ct = out.content_type;
    let body = payload.to_bytes(ct).map_err(|e| {
        Error::internal(
            out.source,
            format_args!("cannot encode a stream item as {ct}: {e}"),
        )
    })?;
    if body.len() + HEADER_ALLOWANCE > out.max_frame {
        return Err(Error::internal(
            out.source,
            format_args!(
                "stream item of {} bytes exceeds the {}-byte frame limit",
                body.len(),
                out.max_frame
            ),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::framed::FrameReader;
    use crate::wire::Frame;

    /// A write queue whose frames the test reads back.
    fn queue() -> (WriteQueue, FrameReader) {
        let (ours, theirs) = tokio::io::duplex(1 << 22);
        let (_, write) = tokio::io::split(Box::new(ours) as crate::transport::BoxIo);
        let (read, _) = tokio::io::split(Box::new(theirs) as crate::transport::BoxIo);
        (
            WriteQueue::start(write, 1 << 22, None),
            FrameReader::new(read, 1 << 22, None),
        )
    }

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![7; len])
    }

    #[tokio::test]
    async fn an_item_past_the_window_without_credit_breaks_the_protocol() {
        let (tx, _frames) = queue();
        let streams = Arc::new(Streams::default());
        let (reader, _) = streams.open(1, true, false, &tx).unwrap();
        let _reader = reader.unwrap();
        // The window fills exactly; the next item had no credit.
        let half = (WINDOW / 2) as usize;
        streams.data(1, ContentType::Json, body(half)).unwrap();
        streams.data(1, ContentType::Json, body(half)).unwrap();
        assert!(streams.data(1, ContentType::Json, body(1)).is_err());
    }

    #[tokio::test]
    async fn reading_grants_credit_back_to_the_sender() {
        let (tx, mut frames) = queue();
        let streams = Arc::new(Streams::default());
        let (reader, _) = streams.open(3, true, false, &tx).unwrap();
        let mut reader = reader.unwrap();
        let half = (WINDOW / 2) as usize;
        streams.data(3, ContentType::Json, body(half)).unwrap();
        streams.data(3, ContentType::Json, body(half)).unwrap();
        reader.next().await.unwrap().unwrap();
        match frames.next().await.unwrap() {
            Frame::StreamCredit { id: 3, bytes } => assert_eq!(bytes as usize, half),
            other => panic!("{other:?}"),
        }
        // Within the credit just granted.
        streams.data(3, ContentType::Json, body(half)).unwrap();
    }

    #[tokio::test]
    async fn a_clean_end_an_error_end_and_a_lost_connection_read_differently() {
        let (tx, _frames) = queue();
        let streams = Arc::new(Streams::default());
        let (clean, _) = streams.open(1, true, false, &tx).unwrap();
        let (failed, _) = streams.open(2, true, false, &tx).unwrap();
        let (lost, _) = streams.open(3, true, false, &tx).unwrap();
        let (mut clean, mut failed, mut lost) = (clean.unwrap(), failed.unwrap(), lost.unwrap());
        streams.data(1, ContentType::Json, body(1)).unwrap();
        streams.end(1, Ok(()));
        streams.end(2, Err(Error::conflict("t", "no")));
        streams.close_all(&Error::unavailable("t", "connection closed"));

        assert!(clean.next().await.unwrap().is_ok());
        assert!(clean.next().await.is_none(), "a clean end");
        assert_eq!(failed.next().await.unwrap().unwrap_err().code, 409);
        assert!(failed.next().await.is_none());
        let error = lost.next().await.unwrap().unwrap_err();
        assert_eq!(error.detail, "connection closed");
        assert!(streams.is_empty(), "every stream forgotten");
        assert!(
            streams.open(4, true, false, &tx).is_none(),
            "nothing opens after"
        );
    }

    #[tokio::test]
    async fn dropping_a_reader_tells_the_sender_and_forgets_the_stream() {
        let (tx, mut frames) = queue();
        let streams = Arc::new(Streams::default());
        let (reader, _) = streams.open(5, true, false, &tx).unwrap();
        drop(reader);
        assert!(matches!(
            frames.next().await.unwrap(),
            Frame::StreamCancel { id: 5 }
        ));
        assert!(streams.is_empty());
        // Items still in flight are dropped, not a violation.
        streams.data(5, ContentType::Json, body(1)).unwrap();
    }

    #[tokio::test]
    async fn a_pump_waits_for_credit_and_stops_when_cancelled() {
        let (tx, mut frames) = queue();
        let streams = Arc::new(Streams::default());
        let (_, credit) = streams.open(9, false, true, &tx).unwrap();
        let credit = credit.unwrap();
        let items: PayloadStream = Box::pin(futures_util::stream::repeat_with(move || {
            Ok(Payload::encoded(ContentType::Json, body(WINDOW as usize)))
        }));
        let out = Outbound {
            tx: tx.clone(),
            id: 9,
            content_type: ContentType::Json,
            max_frame: 1 << 22,
            credit: credit.clone(),
            deadline: None,
            source: "test",
        };
        let pump = tokio::spawn(pump(out, items));
        // One window-sized item spends all the credit: exactly one is sent.
        assert!(matches!(
            frames.next().await.unwrap(),
            Frame::StreamData { id: 9, .. }
        ));
        // Out of credit, it waits; the peer stopping it ends it without another item.
        streams.cancel(9, false);
        assert_eq!(pump.await.unwrap(), Pumped::Cancelled);
    }
}
