//! OpenTelemetry: micro's spans exported over OTLP, with the W3C ids they carry on the wire.

use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

use super::TraceParent;

/// The provider whose batches must be flushed before the process exits. One per process,
/// like the global subscriber it feeds.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether the standard variables ask for OTLP trace export.
fn configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A layer exporting spans over OTLP (HTTP/protobuf), configured by the standard
/// `OTEL_EXPORTER_OTLP_*` variables (endpoint, headers, timeout) and `OTEL_SERVICE_NAME`
/// (else `service`); `None` when no endpoint is set, or when a layer was made already
/// (there is one exporter per process).
///
/// It takes micro's spans (`call`, `serve`, `publish`, `deliver`) and any other span or event
/// at `info` or above. [`Service::run`](crate::Service::run)'s default subscriber includes it;
/// a program with its own subscriber adds it, and calls [`shutdown`] before it exits.
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
///
/// tracing_subscriber::registry()
///     .with(micro::telemetry::otel::layer(Some("shippy.consignment")))
///     .with(tracing_subscriber::fmt::layer())
///     .init();
/// // … run services …
/// micro::telemetry::otel::shutdown();
/// ```
pub fn layer<S>(service: Option<&str>) -> Option<impl Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if !configured() || PROVIDER.get().is_some() {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("micro: not exporting traces: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        if let Some(service) = service {
            resource = resource.with_service_name(service.to_owned());
        }
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("micro");
    if PROVIDER.set(provider).is_err() {
        return None;
    }
    let filter = Targets::new()
        .with_target("micro::trace", LevelFilter::DEBUG)
        .with_default(LevelFilter::INFO);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter),
    )
}

/// Exports the spans still waiting in the batch and stops exporting; for the end of the
/// process. [`Service::run`](crate::Service::run) calls it when it returns.
///
/// See [`layer`] for an example.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// Makes `span`'s OpenTelemetry parent the remote `parent`, and returns the span's own ids,
/// so the `traceparent` sent on is the exported span's; `None` when no OpenTelemetry layer
/// sees the span.
pub(super) fn link(span: &Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from(parent.trace_id()),
            SpanId::from(parent.span_id()),
            if parent.sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    own.is_valid().then(|| {
        TraceParent::from_parts(
            u128::from_be_bytes(own.trace_id().to_bytes()),
            u64::from_be_bytes(own.span_id().to_bytes()),
            own.is_sampled(),
        )
    })
}
