//! Streams of requests or replies: [`Streaming`], and how they travel.
//!
//! A handler streams its replies by returning `micro::Result<Streaming<Resp>>`, and takes a
//! stream of requests by taking a `Streaming<Req>`; see the
//! [handlers guide](crate::docs::handlers#streams) and the [wire format](crate::wire).

pub(crate) mod mux;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Error, Message, Payload};

/// A stream of payloads, as the runtime moves a typed stream between its parts.
pub(crate) type PayloadStream = Pin<Box<dyn Stream<Item = Result<Payload, Error>> + Send>>;

/// A stream of `T`s, each a `micro::Result`: the replies of a streaming handler, or the
/// requests a handler reads.
///
/// A stream ends in one of three ways, and the reader can tell them apart: the stream
/// yields `None` after its last item (a clean end); it yields an `Err` and then `None` (the
/// other side ended it with that error, a deadline passed, or the connection broke: a
/// broken connection is an `unavailable` error, never a clean end); or the reader drops it,
/// which tells the other side to stop producing.
///
/// Make one from any `'static` [`Stream`] with [`new`](Self::new), from values with
/// [`iter`](Self::iter), or push items into one with [`channel`](Self::channel):
///
/// ```
/// use futures_util::StreamExt;
/// use micro::Streaming;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let (tx, mut rx) = Streaming::channel(8);
/// tokio::spawn(async move {
///     for n in 0..3u32 {
///         if tx.send(n).await.is_err() {
///             return; // the reader dropped the stream
///         }
///     }
/// });
/// let mut got = Vec::new();
/// while let Some(n) = rx.next().await {
///     got.push(n?);
/// }
/// assert_eq!(got, [0, 1, 2]);
///
/// let doubled: Vec<u32> = Streaming::iter([1u32, 2]).map(|n| n.unwrap() * 2).collect().await;
/// assert_eq!(doubled, [2, 4]);
/// # Ok(()) }
/// ```
#[must_use = "a stream does nothing unless polled"]
pub struct Streaming<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("item", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Streaming<T> {
    /// A stream of the items `stream` yields. It must be `'static`: it lives on after the
    /// handler's turn, so it owns what it uses (clone an `Arc` out of `self`, never borrow).
    ///
    /// ```
    /// let s = micro::Streaming::new(futures_util::stream::iter([Ok(1u8), Ok(2)]));
    /// # drop(s);
    /// ```
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, Error>> + Send + 'static,
    {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// A stream of these values, then a clean end.
    ///
    /// See the [type-level example](Self).
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures_util::stream::iter(items.into_iter().map(Ok)))
    }

    /// A stream with no items: a clean end at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures_util::StreamExt;
    /// assert!(micro::Streaming::<u8>::empty().next().await.is_none());
    /// # }
    /// ```
    pub fn empty() -> Self {
        Self::new(futures_util::stream::empty())
    }

    /// A stream fed through the returned [`StreamSender`], which waits while `capacity`
    /// items are unread. The stream ends cleanly when every sender is dropped.
    ///
    /// See the [type-level example](Self).
    pub fn channel(capacity: usize) -> (StreamSender<T>, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (StreamSender { tx }, Self::new(Receiver { rx }))
    }

    /// The same stream, ended with a `timeout` error when `deadline` passes.
    pub(crate) fn until(self, deadline: Option<Instant>, what: String) -> Self {
        let Some(deadline) = deadline else {
            return self;
        };
        let mut inner = self.inner;
        let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
        let mut done = false;
        Self::new(futures_util::stream::poll_fn(move |cx| {
            if done {
                return Poll::Ready(None);
            }
            if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
                done = item.is_none();
                return Poll::Ready(item);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                done = true;
                return Poll::Ready(Some(Err(Error::timeout(
                    "micro.client",
                    format_args!("{what} passed its deadline"),
                ))));
            }
            Poll::Pending
        }))
    }
}

use std::future::Future as _;

impl<T: Message> Streaming<T> {
    /// The stream as payloads, for the runtime to carry.
    pub(crate) fn erase(self) -> PayloadStream {
        Box::pin(self.map(|item| item.map(Payload::new)))
    }

    /// Typed items from payloads: each decoded as a `T`, a failure naming `what`.
    pub(crate) fn decoding(payloads: PayloadStream, what: &'static str) -> Self {
        Self::new(payloads.map(move |item| {
            item.and_then(|payload| {
                payload.decode::<T>().map_err(|e| {
                    Error::bad_request(
                        "micro",
                        format_args!(
                            "cannot decode an item of {what} as {}: {e}",
                            std::any::type_name::<T>()
                        ),
                    )
                })
            })
        }))
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Feeds a [`Streaming`] made by [`Streaming::channel`]. Cheap to clone.
#[derive(Debug)]
pub struct StreamSender<T> {
    tx: mpsc::Sender<Result<T, Error>>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

/// The reader of a stream dropped it: the item sent is handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream closed")
    }
}

impl<T: fmt::Debug> std::error::Error for Closed<T> {}

impl<T> StreamSender<T> {
    /// Sends an item, waiting while the stream's buffer is full.
    ///
    /// # Errors
    /// [`Closed`], with the item, when the reader dropped the stream (it was cancelled):
    /// stop producing.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future sends nothing.
    ///
    /// See [`Streaming`] for an example.
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        self.tx.send(Ok(item)).await.map_err(|e| match e.0 {
            Ok(item) => Closed(item),
            Err(_) => unreachable!("sent an item"),
        })
    }

    /// Ends the stream with `error` (after the items sent before it); the reader sees it as
    /// an `Err`, not as a clean end.
    ///
    /// # Errors
    /// [`Closed`] when the reader already dropped the stream.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures_util::StreamExt;
    /// let (tx, mut rx) = micro::Streaming::<u8>::channel(1);
    /// tokio::spawn(async move { tx.fail(micro::Error::internal("feed", "disk gone")).await });
    /// assert_eq!(rx.next().await.unwrap().unwrap_err().detail, "disk gone");
    /// # }
    /// ```
    pub async fn fail(&self, error: Error) -> Result<(), Closed<Error>> {
        self.tx.send(Err(error)).await.map_err(|e| match e.0 {
            Err(error) => Closed(error),
            Ok(_) => unreachable!("sent an error"),
        })
    }

    /// Waits until the reader drops the stream: select on it to stop a producer that waits
    /// on something else.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, rx) = micro::Streaming::<u8>::channel(1);
    /// drop(rx);
    /// tx.closed().await;
    /// # }
    /// ```
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Whether the reader dropped the stream.
    ///
    /// ```
    /// let (tx, rx) = micro::Streaming::<u8>::channel(1);
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

struct Receiver<T> {
    rx: mpsc::Receiver<Result<T, Error>>,
}

impl<T> Stream for Receiver<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// How long a stream may last, when the caller set it; `None` for no limit.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
