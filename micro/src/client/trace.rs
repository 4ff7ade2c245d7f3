//! The outermost layer: a span per call, whose W3C trace context travels in the metadata, and
//! the client-side call metrics.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::time::Instant;

use tower::{Service, ServiceExt};
use tracing::Instrument;

use crate::metrics::{Observe, Side};
use crate::middleware::Request;
use crate::telemetry::{TraceParent, trace};
use crate::{BoxFuture, Context, Error, Payload};

/// Opens a `call` span around each call (retries and the deadline included) and sends its
/// context as `traceparent`. The parent is a `traceparent` already in the call's metadata
/// (a gateway passing on its request's), else the call being served on this task.
#[derive(Clone, Debug)]
pub(super) struct Trace<S> {
    inner: S,
    observe: Arc<Observe>,
}

impl<S> Trace<S> {
    pub(super) fn new(inner: S, observe: Arc<Observe>) -> Self {
        Self { inner, observe }
    }
}

impl<S> Service<Request> for Trace<S>
where
    S: Service<Request, Response = Payload, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Payload;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Payload, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let inner = self.inner.clone();
        let span = trace::client_span(&req.service, &req.endpoint);
        let current = Context::current();
        let parent = TraceParent::from_metadata(&req.metadata)
            .or_else(|| current.as_ref().and_then(Context::trace));
        if let Some(tp) = trace::link(&span, parent) {
            let state = current.as_ref().and_then(|c| c.trace_state());
            trace::inject(&mut req.metadata, &tp, state);
        }
        if !self.observe.enabled() {
            if span.is_disabled() {
                return Box::pin(inner.oneshot(req));
            }
            return Box::pin(
                async move {
                    let result = inner.oneshot(req).await;
                    trace::record_outcome(&tracing::Span::current(), &result);
                    result
                }
                .instrument(span),
            );
        }
        let observe = self.observe.clone();
        let (service, endpoint) = (req.service.clone(), req.endpoint.clone());
        Box::pin(
            async move {
                let start = Instant::now();
                let result = inner.oneshot(req).await;
                let code = result.as_ref().err().map_or(0, |e| e.code);
                // A name nothing serves is counted under one label, so callers that pass
                // names through (a gateway) cannot grow the metrics without bound.
                let unknown = matches!(&result, Err(e) if e.code == 404
                    && (e.id == "micro.client" || e.id == "micro.server"));
                let (service, endpoint) = if unknown {
                    ("unknown", "unknown")
                } else {
                    (&*service, &*endpoint)
                };
                observe.call(Side::Client, service, endpoint, start.elapsed(), code);
                trace::record_outcome(&tracing::Span::current(), &result);
                result
            }
            .instrument(span),
        )
    }
}
