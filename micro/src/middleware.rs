//! Middleware: any [`tower`] layer, around every outgoing call and every incoming request.
//!
//! Clients and services are stacks of tower services over one request type, [`Request`],
//! answered with a [`Payload`] or an [`Error`]. Put any [`tower::Layer`] on them, such as a
//! concurrency limit, load shedding, or a layer of your own:
//!
//! - client side, with [`ClientBuilder::layer`](crate::client::ClientBuilder::layer): wraps
//!   every call made through that client, inside its deadline and outside retries and node
//!   selection, so it sees each call once with its final outcome;
//! - server side, with [`Service::layer`](crate::Service::layer): wraps every request before
//!   it takes a mailbox slot, so a layer that turns requests away (authentication, rate or
//!   concurrency limits) costs the handler nothing. It sees the handler's outcome on the way
//!   back (errors and panics included, as errors).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use micro::middleware::Request;
//! use micro::Error;
//!
//! // A layer of your own: count calls, refuse those without a token.
//! let seen = Arc::new(AtomicUsize::new(0));
//! let counted = seen.clone();
//! let guard = tower::layer::layer_fn(move |inner: micro::middleware::BoxService| {
//!     let counted = counted.clone();
//!     tower::util::BoxCloneSyncService::new(tower::service_fn(move |req: Request| {
//!         counted.fetch_add(1, Ordering::Relaxed);
//!         let inner = inner.clone();
//!         async move {
//!             if !req.metadata.contains_key("token") {
//!                 return Err(Error::unauthorized("guard", "no token"));
//!             }
//!             tower::ServiceExt::oneshot(inner, req).await
//!         }
//!     }))
//! });
//! let service = micro::Service::new("guarded").layer(guard);
//! let client = micro::Client::builder()
//!     .layer(tower::limit::ConcurrencyLimitLayer::new(64))
//!     .build();
//! # drop((service, client));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::time::Instant;
use tower::util::BoxCloneSyncService;

use crate::client::CallOptions;
use crate::{Error, Metadata, Payload};

/// A call passing through a client or a service: what layers see.
#[non_exhaustive]
pub struct Request {
    /// The service addressed.
    pub service: Arc<str>,
    /// The endpoint's wire name, such as `Greeter.SayHello`.
    pub endpoint: Cow<'static, str>,
    /// Metadata; a client layer may add entries (an auth token, a trace id).
    pub metadata: Metadata,
    /// When the caller stops waiting.
    pub deadline: Option<Instant>,
    /// The body.
    pub payload: Payload,
    /// Who sent it, on the server side: the peer's address, or `local` for a call from this
    /// process; empty on the client side.
    pub caller: Arc<str>,
    pub(crate) options: Arc<CallOptions>,
    /// Nodes already tried by this call, so that a retry goes elsewhere when it can.
    pub(crate) tried: Vec<Arc<str>>,
    /// On the server, behind layers: set when the mailbox turned the request away, so the
    /// reply can say it did not run.
    pub(crate) turned_away: Option<Arc<AtomicBool>>,
}

impl Request {
    pub(crate) fn new(
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        metadata: Metadata,
        deadline: Option<Instant>,
        payload: Payload,
    ) -> Self {
        Self {
            service,
            endpoint,
            metadata,
            deadline,
            payload,
            caller: NO_CALLER.with(Arc::clone),
            options: Arc::default(),
            tried: Vec::new(),
            turned_away: None,
        }
    }

    /// A second handle on the same request, for a retry: a typed body is shared, not copied,
    /// and only one of the two can be consumed by a handler.
    pub(crate) fn share(&self) -> Self {
        Self {
            service: self.service.clone(),
            endpoint: self.endpoint.clone(),
            metadata: self.metadata.clone(),
            deadline: self.deadline,
            payload: self.payload.share(),
            caller: self.caller.clone(),
            options: self.options.clone(),
            tried: self.tried.clone(),
            turned_away: self.turned_away.clone(),
        }
    }
}

thread_local! {
    /// The empty caller of a request made on the client side; shared rather than allocated
    /// for every call.
    static NO_CALLER: Arc<str> = Arc::from("");
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("metadata", &self.metadata)
            .field("deadline", &self.deadline)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// The type-erased stack that layers wrap, on the client and on the server.
///
/// See the [module docs](self).
pub type BoxService = BoxCloneSyncService<Request, Payload, Error>;

/// A layer as clients and services keep it until they are built.
pub(crate) type BoxLayer = Arc<dyn Fn(BoxService) -> BoxService + Send + Sync>;

/// Erases a tower layer into a [`BoxLayer`].
pub(crate) fn boxed<L>(layer: L) -> BoxLayer
where
    L: tower::Layer<BoxService> + Send + Sync + 'static,
    L::Service:
        tower::Service<Request, Response = Payload, Error = Error> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    Arc::new(move |inner| BoxCloneSyncService::new(layer.layer(inner)))
}

/// Wraps `service` in `layers`, the first given outermost.
pub(crate) fn apply(layers: &[BoxLayer], mut service: BoxService) -> BoxService {
    for layer in layers.iter().rev() {
        service = layer(service);
    }
    service
}
