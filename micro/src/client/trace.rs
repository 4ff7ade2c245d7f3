//! The outermost step of a call: a span whose W3C trace context travels in the metadata, and
//! the client-side call metrics.

use std::future::Future;

use tokio::time::Instant;
use tracing::Instrument;

use crate::metrics::{Observe, Side};
use crate::middleware::Request;
use crate::telemetry::{TraceParent, trace};
use crate::{Context, Error, Payload};

/// Runs `call` on `req` inside a `call` span (retries and the deadline included) whose
/// context goes out as `traceparent`, and records the call in the client's metrics, timed
/// from `started`. The parent is a `traceparent` already in the call's metadata (a gateway
/// passing on its request's), else `current`, the call being served on this task.
///
/// A step of the client's own path rather than a layer: its future is part of the call's,
/// not a box of its own, and with spans and metrics off it costs the two checks.
pub(super) async fn traced<F>(
    observe: &Observe,
    current: Option<&Context>,
    started: Instant,
    mut req: Request,
    call: impl FnOnce(Request) -> F,
) -> Result<Payload, Error>
where
    F: Future<Output = Result<Payload, Error>>,
{
    let span = trace::client_span(&req.service, &req.endpoint);
    let parent = TraceParent::from_metadata(&req.metadata).or_else(|| current?.trace());
    if let Some(tp) = trace::link(&span, parent) {
        let state = current.and_then(|c| c.trace_state());
        trace::inject(&mut req.metadata, &tp, state);
    }
    if !observe.enabled() {
        if span.is_disabled() {
            return call(req).await;
        }
        return async move {
            let result = call(req).await;
            trace::record_outcome(&tracing::Span::current(), &result);
            result
        }
        .instrument(span)
        .await;
    }
    let (service, endpoint) = (req.service.clone(), req.endpoint.clone());
    async move {
        let result = call(req).await;
        let code = result.as_ref().err().map_or(0, |e| e.code);
        // A name nothing serves is counted under one label, so callers that pass names
        // through (a gateway) cannot grow the metrics without bound.
        let unknown = matches!(&result, Err(e) if e.code == 404
            && (e.id == "micro.client" || e.id == "micro.server"));
        let (service, endpoint) = if unknown {
            ("unknown", "unknown")
        } else {
            (&*service, &*endpoint)
        };
        observe.call(Side::Client, service, endpoint, started.elapsed(), code);
        trace::record_outcome(&tracing::Span::current(), &result);
        result
    }
    .instrument(span)
    .await
}
