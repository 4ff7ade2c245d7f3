use std::borrow::Cow;
use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{CallOptions, Client};
use crate::codec::ContentType;
use crate::{BoxFuture, Error, Message, Payload};

/// A call being prepared: set options, then `.await` it.
///
/// Generated clients return one of these from every method:
///
/// ```
/// # use micro::prelude::*;
/// # #[derive(Default)] struct Greeter;
/// # #[micro::service(name = "greeter")]
/// # impl Greeter { pub async fn hello(&self, name: String) -> micro::Result<String> { Ok(format!("hi {name}")) } }
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// # let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory()).handle(Greeter).start().await?;
/// let greeter = GreeterClient::new(service.client());
/// let reply = greeter
///     .hello("ada".to_string())
///     .timeout(Duration::from_millis(200))
///     .metadata("user", "ada")
///     .await?;
/// assert_eq!(reply, "hi ada");
/// # service.stop().await; Ok(()) }
/// ```
///
/// Dropping the call (or the future from `.await`) cancels it: its reply, if one comes, is
/// discarded, and a request still waiting in a mailbox of this process is skipped.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<Req, Resp> {
    client: Client,
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    req: Req,
    opts: CallOptions,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Req: Message, Resp: Message> Call<Req, Resp> {
    pub(crate) fn new(
        client: Client,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        req: Req,
    ) -> Self {
        Self {
            client,
            service,
            endpoint,
            req,
            opts: CallOptions::default(),
            _resp: PhantomData,
        }
    }

    /// How long to wait for the reply (default: the client's, 5 s). Inside a handler, the
    /// call never waits past the deadline of the call being served.
    ///
    /// See the [type-level example](Self).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.timeout = Some(timeout);
        self
    }

    /// Adds a metadata entry, which the handler reads from its [`Context`](crate::Context).
    ///
    /// See the [type-level example](Self).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.metadata.insert(key.into(), value.into());
        self
    }

    /// Sends the call to this node address, skipping discovery and the in-process fast path.
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// let n: u64 = client
    ///     .call::<(), u64>("counter".into(), "Counter.Get", ())
    ///     .node("127.0.0.1:9000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn node(mut self, address: impl Into<String>) -> Self {
        self.opts.node = Some(address.into());
        self
    }

    /// Marks the call safe to send twice: when a node fails after the request was sent
    /// (the connection broke, the process died), it is retried on another node. Without
    /// this, only what provably did not run is retried. Handlers marked
    /// `#[micro(idempotent)]` make their generated client methods set it.
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// let n: u64 = client.call::<(), u64>("counter".into(), "Counter.Get", ()).idempotent().await?;
    /// # Ok(()) }
    /// ```
    pub fn idempotent(mut self) -> Self {
        self.opts.idempotent = true;
        self
    }

    /// Only nodes registered with this version.
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// let n: u64 = client.call::<(), u64>("counter".into(), "Counter.Get", ()).version("2.0.0").await?;
    /// # Ok(()) }
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.opts.version = Some(version.into());
        self
    }

    /// Only nodes whose registry metadata has `key` set to `value` (may be repeated).
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// let n: u64 = client.call::<(), u64>("counter".into(), "Counter.Get", ()).node_metadata("zone", "eu-1").await?;
    /// # Ok(()) }
    /// ```
    pub fn node_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.node_metadata.push((key.into(), value.into()));
        self
    }

    /// The codec for this call when it crosses the network (default: the client's).
    ///
    /// ```no_run
    /// # async fn f(client: micro::Client) -> micro::Result<()> {
    /// use micro::codec::ContentType;
    /// let n: u64 = client
    ///     .call::<(), u64>("counter".into(), "Counter.Get", ())
    ///     .content_type(ContentType::Json)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn content_type(mut self, content_type: ContentType) -> Self {
        self.opts.content_type = Some(content_type);
        self
    }
}

impl<Req: Message, Resp: Message> IntoFuture for Call<Req, Resp> {
    type Output = Result<Resp, Error>;
    type IntoFuture = BoxFuture<'static, Result<Resp, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Call {
                client,
                service,
                endpoint,
                req,
                opts,
                ..
            } = self;
            let reply = client
                .invoke(service.clone(), endpoint.clone(), Payload::new(req), opts)
                .await?;
            reply.decode::<Resp>().map_err(|e| {
                Error::internal(
                    "micro.client",
                    format_args!(
                        "cannot decode the reply of {service} {endpoint} as {}: {e}",
                        std::any::type_name::<Resp>()
                    ),
                )
            })
        })
    }
}

impl<Req, Resp> fmt::Debug for Call<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}
