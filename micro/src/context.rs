//! What a handler knows about the call it is serving.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::telemetry::{TRACESTATE, TraceParent};

/// Call metadata: string keys to string values, like HTTP headers.
///
/// ```
/// let mut md = micro::Metadata::new();
/// md.insert("user".into(), "ada".into());
/// assert_eq!(md["user"], "ada");
/// ```
pub type Metadata = HashMap<String, String>;

/// The call a handler is serving: metadata, caller and deadline.
///
/// A handler receives it by taking `ctx: &micro::Context` as its first argument:
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Default)]
/// struct Echo;
///
/// #[micro::service(name = "echo")]
/// impl Echo {
///     pub async fn who(&self, ctx: &micro::Context, _: ()) -> micro::Result<String> {
///         Ok(ctx.metadata().get("user").cloned().unwrap_or_default())
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let service = micro::Service::new("echo").runtime(micro::Runtime::in_memory()).handle(Echo).start().await?;
/// let client = EchoClient::new(service.client());
/// assert_eq!(client.who().metadata("user", "ada").await?, "ada");
/// # service.stop().await; Ok(()) }
/// ```
///
/// Calls made through any [`Client`](crate::Client) while a handler runs inherit the
/// remaining deadline and the trace.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    caller: Arc<str>,
    deadline: Option<Instant>,
    metadata: Metadata,
    client: Client,
    trace: Option<TraceParent>,
}

tokio::task_local! {
    static CURRENT: Context;
}

impl Context {
    pub(crate) fn new(
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        caller: Arc<str>,
        deadline: Option<Instant>,
        metadata: Metadata,
        client: Client,
        trace: Option<TraceParent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                endpoint,
                caller,
                deadline,
                metadata,
                client,
                trace,
            }),
        }
    }

    /// The service name the call was addressed to.
    ///
    /// See the [type-level example](Self).
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The wire name of the endpoint being served, such as `Greeter.SayHello`.
    ///
    /// See the [type-level example](Self).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Who is calling: the peer's socket address, or `local` for a call from this process.
    ///
    /// See the [type-level example](Self).
    pub fn caller(&self) -> &str {
        &self.inner.caller
    }

    /// When the caller stops waiting, if it set a timeout.
    ///
    /// See the [type-level example](Self).
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// Time left before the deadline (`None`: no deadline; zero: already passed).
    ///
    /// See the [type-level example](Self).
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The running service's own client: the same runtime (registry, broker, connections),
    /// so calls to other services and events published from a handler follow the service's
    /// configuration; calls made through it (or any client) while the handler runs inherit
    /// the remaining deadline and the trace.
    ///
    /// ```
    /// use micro::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Front;
    ///
    /// #[micro::service(name = "front")]
    /// impl Front {
    ///     pub async fn twice(&self, ctx: &micro::Context, n: u64) -> micro::Result<u64> {
    ///         // Another service, found through this service's registry.
    ///         let back = BackClient::new(ctx.client().clone());
    ///         Ok(back.double(n).await? + back.double(n).await?)
    ///     }
    /// }
    ///
    /// #[derive(Default)]
    /// struct Back;
    ///
    /// #[micro::service(name = "back")]
    /// impl Back {
    ///     pub async fn double(&self, n: u64) -> micro::Result<u64> { Ok(2 * n) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let runtime = micro::Runtime::new(Default::default());
    /// let back = runtime.service("back").handle(Back).start().await?;
    /// let front = runtime.service("front").handle(Front).start().await?;
    /// assert_eq!(FrontClient::new(runtime.client()).twice(5).await?, 20);
    /// # front.stop().await; back.stop().await; Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The metadata the caller attached.
    ///
    /// See the [type-level example](Self).
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// The trace context of the span serving this call: the caller's trace, or a new one
    /// when the call came with none and spans are recorded. Calls and events made while the
    /// handler runs are its children (see [`telemetry`](crate::telemetry)).
    ///
    /// ```
    /// use micro::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Echo;
    ///
    /// #[micro::service(name = "trace-echo")]
    /// impl Echo {
    ///     pub async fn trace(&self, ctx: &micro::Context) -> micro::Result<Option<String>> {
    ///         Ok(ctx.trace().map(|t| t.trace_id_hex()))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
    /// let runtime = micro::Runtime::in_memory();
    /// let service = runtime.service("trace-echo").handle(Echo).start().await?;
    /// let traced = EchoClient::new(runtime.client())
    ///     .trace()
    ///     .metadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .await?;
    /// assert_eq!(traced.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    /// # service.stop().await; Ok(()) }
    /// ```
    pub fn trace(&self) -> Option<TraceParent> {
        self.inner.trace
    }

    /// The W3C trace state that came with the call, passed on with its trace.
    pub(crate) fn trace_state(&self) -> Option<&str> {
        self.inner.metadata.get(TRACESTATE).map(String::as_str)
    }

    /// The context of the handler running on this task, if any.
    ///
    /// ```
    /// assert!(micro::Context::current().is_none());
    /// ```
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Context::clone).ok()
    }

    /// Runs `fut` with this context as [`current`](Self::current).
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }
}
