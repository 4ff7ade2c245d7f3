use std::borrow::Cow;
use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{CallOptions, Client};
use crate::codec::ContentType;
use crate::stream::Streaming;
use crate::wire::{FLAG_REPLY_STREAM, FLAG_REQUEST_STREAM};
use crate::{BoxFuture, Error, Message, Payload};

/// A streaming call being prepared: set options, then `.await` it to open the stream.
///
/// Generated clients return one for every streaming handler: awaiting it gives a
/// [`Streaming`] of replies (server and bidirectional streams) or the single reply (client
/// streams). Opening is bounded by the client's timeout; the stream itself lasts until it
/// ends, unless [`timeout`](Self::timeout) bounds it.
///
/// ```
/// use futures_util::StreamExt;
/// use micro::prelude::*;
/// use micro::Streaming;
///
/// #[derive(Default)]
/// struct Counter;
///
/// #[micro::service(name = "counter")]
/// impl Counter {
///     /// Counts up to `n`.
///     pub async fn count(&self, n: u32) -> micro::Result<Streaming<u32>> {
///         Ok(Streaming::iter(0..n))
///     }
///     /// Adds up what it is sent.
///     pub async fn sum(&self, mut items: Streaming<u32>) -> micro::Result<u32> {
///         let mut total = 0;
///         while let Some(n) = items.next().await {
///             total += n?;
///         }
///         Ok(total)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let runtime = micro::Runtime::from_env()?;
/// let service = runtime.service("counter").handle(Counter).start().await?;
/// let counter = CounterClient::new(runtime.client());
///
/// let counted: Vec<u32> = counter.count(3).await?.map(|n| n.unwrap()).collect().await;
/// assert_eq!(counted, [0, 1, 2]);
/// assert_eq!(counter.sum(Streaming::iter([1, 2, 3])).await?, 6);
/// # service.stop().await; Ok(()) }
/// ```
#[must_use = "a streaming call does nothing until it is awaited"]
pub struct StreamCall<Out> {
    client: Client,
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    payload: Payload,
    opts: CallOptions,
    stream_timeout: Option<Duration>,
    finish: Finish<Out>,
}

impl<Out> StreamCall<Out> {
    fn new(
        client: &Client,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        payload: Payload,
        flags: u16,
        finish: Finish<Out>,
    ) -> Self {
        Self {
            client: client.clone(),
            service,
            endpoint,
            payload,
            opts: CallOptions {
                stream: flags,
                ..CallOptions::default()
            },
            stream_timeout: None,
            finish,
        }
    }

    /// How long the whole stream may last, from when it is opened: past it, both ends stop
    /// and the reader gets a `timeout` error (default: no limit).
    ///
    /// See the [type-level example](Self).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.stream_timeout = Some(timeout);
        self
    }

    /// Adds a metadata entry, which the handler reads from its [`Context`](crate::Context).
    ///
    /// See the [type-level example](Self).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.metadata.insert(key.into(), value.into());
        self
    }

    /// Opens the stream on this node address, skipping discovery and the in-process path.
    ///
    /// See [`Call::node`](crate::Call::node).
    pub fn node(mut self, address: impl Into<String>) -> Self {
        self.opts.node = Some(address.into());
        self
    }

    /// The codec of the stream's items when it crosses the network (default: the client's).
    ///
    /// See [`Call::content_type`](crate::Call::content_type).
    pub fn content_type(mut self, content_type: ContentType) -> Self {
        self.opts.content_type = Some(content_type);
        self
    }
}

impl<Out: Send + 'static> IntoFuture for StreamCall<Out> {
    type Output = Result<Out, Error>;
    type IntoFuture = BoxFuture<'static, Result<Out, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let StreamCall {
                client,
                service,
                endpoint,
                payload,
                mut opts,
                stream_timeout,
                finish,
            } = self;
            opts.stream_deadline = crate::stream::deadline_after(stream_timeout);
            let what = format!("stream of {service} {endpoint}");
            let reply = client
                .invoke(service.clone(), endpoint.clone(), payload, opts.clone())
                .await?;
            finish(reply, &what, opts.stream_deadline)
        })
    }
}

/// The deadline of a call through the client's stack. Opening a stream is bounded like a
/// call, but a stream of requests is one call from its first request to its reply: only
/// the stream's own deadline bounds it (and the deadline of the call being served, which
/// `deadline` already holds when it is the sooner).
pub(super) fn call_deadline(opts: &CallOptions, deadline: Instant) -> Option<Instant> {
    if opts.stream & FLAG_REQUEST_STREAM == 0 {
        return Some(deadline);
    }
    let parent = crate::Context::current().and_then(|c| c.deadline());
    match (opts.stream_deadline, parent) {
        (Some(own), Some(parent)) => Some(own.min(parent)),
        (own, parent) => own.or(parent),
    }
}

/// Turns the answer into what the caller awaits; given the stream's deadline.
type Finish<Out> = fn(Payload, &str, Option<Instant>) -> Result<Out, Error>;

fn replies<Resp: Message>(
    reply: Payload,
    what: &str,
    deadline: Option<Instant>,
) -> Result<Streaming<Resp>, Error> {
    reply
        .into_streaming::<Resp>("a stream of replies")
        .map(|s| s.until(deadline, what.to_owned()))
        .map_err(|e| {
            Error::internal(
                "micro.client",
                format_args!("{what}: expected a stream of replies: {e}"),
            )
        })
}

fn single<Resp: Message>(reply: Payload, what: &str, _: Option<Instant>) -> Result<Resp, Error> {
    reply.decode::<Resp>().map_err(|e| {
        Error::internal(
            "micro.client",
            format_args!(
                "cannot decode the reply of {what} as {}: {e}",
                std::any::type_name::<Resp>()
            ),
        )
    })
}

impl<Out> fmt::Debug for StreamCall<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCall")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a server stream: one request, a stream of replies. Generated clients do this
    /// for handlers that return a `Streaming`.
    ///
    /// See [`StreamCall`] for an example.
    pub fn server_stream<Req: Message, Resp: Message>(
        &self,
        service: Arc<str>,
        endpoint: impl Into<Cow<'static, str>>,
        req: Req,
    ) -> StreamCall<Streaming<Resp>> {
        StreamCall::new(
            self,
            service,
            endpoint.into(),
            Payload::new(req),
            FLAG_REPLY_STREAM,
            replies::<Resp>,
        )
    }

    /// Opens a client stream: a stream of requests, one reply. Generated clients do this
    /// for handlers that take a `Streaming` and return one message.
    ///
    /// See [`StreamCall`] for an example.
    pub fn client_stream<Req: Message, Resp: Message>(
        &self,
        service: Arc<str>,
        endpoint: impl Into<Cow<'static, str>>,
        reqs: Streaming<Req>,
    ) -> StreamCall<Resp> {
        StreamCall::new(
            self,
            service,
            endpoint.into(),
            Payload::stream(reqs),
            FLAG_REQUEST_STREAM,
            single::<Resp>,
        )
    }

    /// Opens a bidirectional stream: a stream of requests, a stream of replies, each at its
    /// own pace. Generated clients do this for handlers that take and return a `Streaming`.
    ///
    /// See [`StreamCall`] for an example.
    pub fn bidi_stream<Req: Message, Resp: Message>(
        &self,
        service: Arc<str>,
        endpoint: impl Into<Cow<'static, str>>,
        reqs: Streaming<Req>,
    ) -> StreamCall<Streaming<Resp>> {
        StreamCall::new(
            self,
            service,
            endpoint.into(),
            Payload::stream(reqs),
            FLAG_REQUEST_STREAM | FLAG_REPLY_STREAM,
            replies::<Resp>,
        )
    }
}
