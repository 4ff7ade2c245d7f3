//! One trace across services: a call to `consignment`, its call to `vessel` and the event it
//! publishes to `audit` are spans of one trace, parent to child, with W3C `traceparent`
//! carried in call metadata and event headers (over the wire and in-process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::prelude::*;
use tokio::sync::mpsc;
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

/// A recorded span: its name and its fields, as text.
#[derive(Clone, Debug, Default)]
struct Recorded {
    name: &'static str,
    fields: HashMap<&'static str, String>,
}

impl Recorded {
    fn get(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }
}

/// Keeps every span of target `micro::trace` with its fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<HashMap<u64, Recorded>>>);

struct Fields<'a>(&'a mut HashMap<&'static str, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        if attrs.metadata().target() != "micro::trace" {
            return;
        }
        let mut rec = Recorded {
            name: attrs.metadata().name(),
            ..Recorded::default()
        };
        attrs.record(&mut Fields(&mut rec.fields));
        self.0.lock().unwrap().insert(id.into_u64(), rec);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
        if let Some(rec) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Vessel {
    id: String,
}

#[derive(Default)]
struct Vessels;

#[micro::service(name = "trace.vessel")]
impl Vessels {
    pub async fn find_available(&self, weight: u32) -> micro::Result<Vessel> {
        if weight == 0 {
            return Err(micro::Error::not_found(
                "trace.vessel",
                "no vessel for nothing",
            ));
        }
        Ok(Vessel {
            id: format!("vessel-{weight}"),
        })
    }
}

struct Consignments;

#[micro::service(name = "trace.consignment")]
impl Consignments {
    pub async fn create(&self, ctx: &Context, id: u32) -> micro::Result<Vessel> {
        let vessel = VesselsClient::new(ctx.client().clone())
            .find_available(id)
            .await?;
        ctx.client()
            .publish("trace.consignment.created", &id)
            .await?;
        Ok(vessel)
    }
}

/// Passes each event's trace on to the test.
struct Audit(mpsc::UnboundedSender<Option<String>>);

#[micro::service(name = "trace.audit")]
impl Audit {
    #[micro::subscribe(topic = "trace.consignment.created")]
    async fn on_created(&self, ctx: &Context, _id: u32) -> micro::Result<()> {
        let _ = self.0.send(ctx.trace().map(|t| t.trace_id_hex()));
        Ok(())
    }
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const FAILING: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const FAILING_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_nested_call_and_its_event_are_one_trace() {
    let spans = Spans::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(spans.clone()),
    )
    .unwrap();

    let runtime = micro::Runtime::in_memory();
    let (tx, mut audited) = mpsc::unbounded_channel();
    let services = [
        runtime
            .service("trace.vessel")
            .handle(Vessels)
            .start()
            .await
            .unwrap(),
        runtime
            .service("trace.consignment")
            .handle(Consignments)
            .start()
            .await
            .unwrap(),
        runtime
            .service("trace.audit")
            .handle(Audit(tx))
            .start()
            .await
            .unwrap(),
    ];
    // Over the network from the caller, in-process between the services.
    let wire = ConsignmentsClient::new(runtime.client_builder().fast_path(false).build());
    let vessel = wire
        .create(7)
        .metadata("traceparent", CALLER)
        .await
        .unwrap();
    assert_eq!(vessel.id, "vessel-7");
    let audit_trace = tokio::time::timeout(Duration::from_secs(10), audited.recv())
        .await
        .expect("the event reached the subscriber")
        .unwrap();
    assert_eq!(audit_trace.as_deref(), Some(TRACE));
    let failed = wire.create(0).metadata("traceparent", FAILING).await;
    assert_eq!(failed.unwrap_err().code, 404);

    // The subscriber's spans end just after it answered: wait for their outcome.
    let outcome_of = |name: &str| {
        spans
            .0
            .lock()
            .unwrap()
            .values()
            .any(|s| s.name == name && !s.get("otel.status_code").is_empty())
    };
    let start = std::time::Instant::now();
    while !outcome_of("deliver") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "delivery never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in services {
        s.stop().await;
    }

    let spans: Vec<Recorded> = spans.0.lock().unwrap().values().cloned().collect();
    let find = |trace: &str, name: &str, method: &str| -> Recorded {
        let found: Vec<&Recorded> = spans
            .iter()
            .filter(|s| {
                s.get("trace_id") == trace && s.name == name && s.get("rpc.method") == method
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {method}: {spans:#?}");
        found[0].clone()
    };
    let call_consignment = find(TRACE, "call", "Consignments.Create");
    let serve_consignment = find(TRACE, "serve", "Consignments.Create");
    let call_vessel = find(TRACE, "call", "Vessels.FindAvailable");
    let serve_vessel = find(TRACE, "serve", "Vessels.FindAvailable");
    let publish = find(TRACE, "publish", "publish");
    let deliver = find(TRACE, "deliver", "Audit.OnCreated");
    let serve_audit = find(TRACE, "serve", "Audit.OnCreated");
    let chain = [
        (&call_consignment, "00f067aa0ba902b7"),
        (&serve_consignment, call_consignment.get("span_id")),
        (&call_vessel, serve_consignment.get("span_id")),
        (&serve_vessel, call_vessel.get("span_id")),
        (&publish, serve_consignment.get("span_id")),
        (&deliver, publish.get("span_id")),
        (&serve_audit, deliver.get("span_id")),
    ];
    for (span, parent) in chain {
        assert_eq!(span.get("parent_id"), parent, "{span:#?}");
        assert_eq!(span.get("otel.status_code"), "ok", "{span:#?}");
        assert_eq!(span.get("span_id").len(), 16, "{span:#?}");
    }
    assert_eq!(call_consignment.get("otel.kind"), "client");
    assert_eq!(serve_consignment.get("otel.kind"), "server");
    assert_eq!(publish.get("otel.kind"), "producer");
    assert_eq!(deliver.get("otel.kind"), "consumer");
    assert_eq!(
        serve_vessel.get("otel.name"),
        "trace.vessel/Vessels.FindAvailable"
    );
    assert_eq!(publish.get("rpc.service"), "trace.consignment.created");

    // A failure is recorded with its code at every hop it crossed.
    for (name, method) in [
        ("serve", "Vessels.FindAvailable"),
        ("call", "Vessels.FindAvailable"),
        ("serve", "Consignments.Create"),
        ("call", "Consignments.Create"),
    ] {
        let span = find(FAILING_TRACE, name, method);
        assert_eq!(span.get("otel.status_code"), "error", "{span:#?}");
        assert_eq!(span.get("error.code"), "404", "{span:#?}");
    }
}
