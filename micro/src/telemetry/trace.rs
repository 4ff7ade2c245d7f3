//! W3C trace context, and the spans of calls, publishes and deliveries.

use std::fmt;

use tracing::Span;

use crate::Metadata;

/// The metadata key (and HTTP header) of the W3C trace context: which trace a call belongs
/// to and which span made it.
///
/// Calls, events and gateway requests carry it; a call made from inside a handler is a child
/// of the call being served. See [`TraceParent`].
pub const TRACEPARENT: &str = "traceparent";

/// The metadata key of the W3C vendor trace state, passed along unchanged with
/// [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// A W3C `traceparent` value: a trace id, the id of the span that made the call, and flags.
///
/// ```
/// use micro::telemetry::TraceParent;
///
/// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(tp.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
/// assert_eq!(tp.span_id(), 0x00f067aa0ba902b7);
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// // All-zero ids are invalid, as are malformed values.
/// assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(TraceParent::parse("trace-42").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header; `None` when it is not a valid one. Versions above `00`
    /// are read as `00` where they agree with it, as the W3C recommendation asks.
    ///
    /// See the [type-level example](Self).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = u8::from_str_radix(value.get(0..2)?, 16).ok()?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let hex = |s: &str| s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        let (trace, span, flags) = (value.get(3..35)?, value.get(36..52)?, value.get(53..55)?);
        if !(hex(trace) && hex(span) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The context of a call carrying `metadata`, if it carries a valid one.
    ///
    /// ```
    /// let mut md = micro::Metadata::new();
    /// assert!(micro::telemetry::TraceParent::from_metadata(&md).is_none());
    /// md.insert("traceparent".into(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    /// assert!(micro::telemetry::TraceParent::from_metadata(&md).is_some());
    /// ```
    pub fn from_metadata(metadata: &Metadata) -> Option<Self> {
        metadata.get(TRACEPARENT).and_then(|v| Self::parse(v))
    }

    /// The trace every span of one request shares.
    ///
    /// See the [type-level example](Self).
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The span that made the call: the parent of the callee's span.
    ///
    /// See the [type-level example](Self).
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// Whether the caller records this trace.
    ///
    /// See the [type-level example](Self).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// A new trace, sampled.
    pub(crate) fn root() -> Self {
        Self {
            trace_id: fastrand::u128(1..),
            span_id: fastrand::u64(1..),
            flags: 1,
        }
    }

    /// A new span in the same trace.
    pub(crate) fn child(&self) -> Self {
        Self {
            span_id: fastrand::u64(1..),
            ..*self
        }
    }

    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn from_parts(trace_id: u128, span_id: u64, sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            flags: u8::from(sampled),
        }
    }

    /// The trace id as W3C writes it: 32 lowercase hex digits.
    ///
    /// ```
    /// let tp = micro::telemetry::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Makes `span` a child of `parent` (a new trace when there is none) and returns the context
/// its own children carry. A span no subscriber wants, in no trace yet, costs nothing more
/// and gets no context.
pub(crate) fn link(span: &Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    if span.is_disabled() {
        // Not recorded here: the trace goes on through this process unchanged, so the next
        // recorded span's parent is one that exists.
        return parent;
    }
    #[cfg(feature = "otel")]
    if let Some(linked) = super::otel::link(span, parent) {
        record_ids(span, &linked, parent);
        return Some(linked);
    }
    let linked = match parent {
        Some(p) => p.child(),
        None => TraceParent::root(),
    };
    record_ids(span, &linked, parent);
    Some(linked)
}

fn record_ids(span: &Span, tp: &TraceParent, parent: Option<TraceParent>) {
    span.record(
        "trace_id",
        tracing::field::display(format_args!("{:032x}", tp.trace_id)),
    );
    span.record(
        "span_id",
        tracing::field::display(format_args!("{:016x}", tp.span_id)),
    );
    if let Some(parent) = parent {
        span.record(
            "parent_id",
            tracing::field::display(format_args!("{:016x}", parent.span_id)),
        );
    }
}

/// The span of an HTTP request that a process in front of services (a gateway) serves by
/// calling or publishing: a child of the trace context the request carried, or the root of a
/// new trace. Pass [`context`](Self::context) on as the `traceparent` of the calls it makes,
/// inside [`span`](Self::span), so they are its children.
///
/// Named `{method} {route}` with the HTTP semantic conventions' attributes; like micro's other
/// spans it is `debug` under the `micro::trace` target, so it costs nothing unless a
/// subscriber (an OpenTelemetry exporter) wants it.
///
/// ```
/// use micro::telemetry::{HttpSpan, TraceParent};
///
/// let incoming = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let request = HttpSpan::server("POST", "/{service}/{endpoint}", "/greeter/Greeter.Hello", incoming);
/// // No subscriber records the span here, so the caller's context goes on unchanged; with an
/// // exporter it is a new span in the same trace.
/// assert_eq!(request.context(), incoming);
/// // … make the calls with `.metadata("traceparent", …)` inside `request.span()` …
/// request.record_status(200);
/// ```
#[derive(Debug)]
pub struct HttpSpan {
    span: Span,
    context: Option<TraceParent>,
}

impl HttpSpan {
    /// Opens the span of a request for `path`, matched by `route` (the low-cardinality
    /// template, such as `/{service}/{endpoint}`), with the `traceparent` it carried, if valid.
    ///
    /// See the [type-level example](Self).
    pub fn server(method: &str, route: &str, path: &str, parent: Option<TraceParent>) -> Self {
        let span = tracing::debug_span!(
            target: "micro::trace",
            "http",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            url.path = %path,
            http.response.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let context = link(&span, parent);
        Self { span, context }
    }

    /// The span, to instrument the work of serving the request with.
    ///
    /// See the [type-level example](Self).
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The trace context the request's calls carry as their `traceparent`: this span's own
    /// when it is recorded, else the request's (passed through), else `None`.
    ///
    /// See the [type-level example](Self).
    pub fn context(&self) -> Option<TraceParent> {
        self.context
    }

    /// Records the response's status: a 5xx marks the span as failed, a 2xx or 3xx as ok; a 4xx
    /// leaves it unset (the client's error, not the server's, as the HTTP conventions say).
    ///
    /// See the [type-level example](Self).
    pub fn record_status(&self, status: u16) {
        if self.span.is_disabled() {
            return;
        }
        self.span.record("http.response.status_code", status);
        if status >= 500 {
            self.span.record("otel.status_code", "error");
        } else if status < 400 {
            self.span.record("otel.status_code", "ok");
        }
    }
}

/// Records a finished span's outcome: `ok`, or `error` with the error's code.
pub(crate) fn record_outcome<T>(span: &Span, result: &Result<T, crate::Error>) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(_) => {
            span.record("otel.status_code", "ok");
        }
        Err(e) => {
            span.record("otel.status_code", "error");
            span.record("error.code", e.code);
            span.record("otel.status_description", tracing::field::display(e));
        }
    }
}

/// Writes `tp` (and the trace state that goes with it) into outgoing metadata.
pub(crate) fn inject(metadata: &mut Metadata, tp: &TraceParent, state: Option<&str>) {
    metadata.insert(TRACEPARENT.to_owned(), tp.to_string());
    if let Some(state) = state {
        metadata
            .entry(TRACESTATE.to_owned())
            .or_insert_with(|| state.to_owned());
    }
}

/// A span with micro's fields, the same for every kind; `$otel_name` is evaluated only when
/// a subscriber wants the span. Spans are `debug`, so the default `info` logs pay nothing per
/// call for them; `RUST_LOG=micro::trace=debug` shows them, and an exporter enables them.
macro_rules! micro_span {
    ($name:literal, $kind:literal, $otel_name:expr, $service:expr, $method:expr) => {
        tracing::debug_span!(
            target: "micro::trace",
            $name,
            otel.name = %$otel_name,
            otel.kind = $kind,
            rpc.system = "micro",
            rpc.service = %$service,
            rpc.method = %$method,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            error.code = tracing::field::Empty,
        )
    };
}

/// The span of a call made through a client.
pub(crate) fn client_span(service: &str, endpoint: &str) -> Span {
    micro_span!(
        "call",
        "client",
        format_args!("{service}/{endpoint}"),
        service,
        endpoint
    )
}

/// The span of a handler serving a call or an event.
pub(crate) fn server_span(service: &str, endpoint: &str) -> Span {
    micro_span!(
        "serve",
        "server",
        format_args!("{service}/{endpoint}"),
        service,
        endpoint
    )
}

/// The span of an event published on `topic`.
pub(crate) fn publish_span(topic: &str) -> Span {
    micro_span!(
        "publish",
        "producer",
        format_args!("{topic} publish"),
        topic,
        "publish"
    )
}

/// The span of an event delivered from `topic` to a subscriber endpoint.
pub(crate) fn deliver_span(topic: &str, service: &str, endpoint: &str) -> Span {
    micro_span!(
        "deliver",
        "consumer",
        format_args!("{topic} deliver"),
        service,
        endpoint
    )
}
