//! The outermost step of a call: a span whose W3C trace context travels in the metadata, and
//! the client-side call metrics.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::Either;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::metrics::{Observe, Side};
use crate::middleware::Request;
use crate::telemetry::{TraceParent, trace};
use crate::{Context, Error, Payload};

/// A call's span, and its labels when the client records metrics.
pub(super) struct Traced {
    span: Span,
    labels: Option<(Arc<str>, Cow<'static, str>)>,
}

impl Traced {
    /// Opens the `call` span of `req` and puts its context in the metadata as
    /// `traceparent`. The parent is a `traceparent` already there (a gateway passing on its
    /// request's), else `current`, the call being served on this task.
    pub(super) fn start(observe: &Observe, current: Option<&Context>, req: &mut Request) -> Self {
        let span = trace::client_span(&req.service, &req.endpoint);
        let parent = TraceParent::from_metadata(&req.metadata).or_else(|| current?.trace());
        if let Some(tp) = trace::link(&span, parent) {
            let state = current.and_then(|c| c.trace_state());
            trace::inject(&mut req.metadata, &tp, state);
        }
        let labels = observe
            .enabled()
            .then(|| (req.service.clone(), req.endpoint.clone()));
        Self { span, labels }
    }

    /// Runs `call` (retries and the deadline included) inside the span, and records it in
    /// the client's metrics, timed from `started`.
    ///
    /// A step of the client's own path rather than a layer: its future is part of the
    /// call's, not a box of its own, and with spans and metrics off it is `call` itself.
    pub(super) fn run<'a, F>(
        self,
        observe: &'a Observe,
        started: Instant,
        call: F,
    ) -> impl Future<Output = Result<Payload, Error>> + 'a
    where
        F: Future<Output = Result<Payload, Error>> + 'a,
    {
        let Self { span, labels } = self;
        let Some((service, endpoint)) = labels else {
            if span.is_disabled() {
                return Either::Left(call);
            }
            let recorded = call.map(|result| {
                trace::record_outcome(&Span::current(), &result);
                result
            });
            return Either::Right(Either::Left(recorded.instrument(span)));
        };
        let measured = call.map(move |result| {
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
            trace::record_outcome(&Span::current(), &result);
            result
        });
        Either::Right(Either::Right(measured.instrument(span)))
    }
}
