//! One request through `micro api` is one trace, exported over OTLP by every process it
//! crosses: the gateway's span (a root, or a child of the request's own `traceparent`), its
//! call, the consignment service serving it, that handler's call to the vessel service, the
//! `consignment.created` event it publishes and the counter service's delivery of it. Each
//! process exports to an OTLP/HTTP receiver built here on OpenTelemetry's protobuf
//! definitions; the processes are the real `micro` binary and the shippy example's services.

#[path = "support/otlp.rs"]
mod otlp;
mod support;

use std::process::Stdio;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otlp::{Exported, Receiver};
use support::{PATIENCE, Proc, SHIPPY, World, example, http};

const COUNTER: &str = "shippy.service.counter";
const VESSELS: &str = "shippy.service.vessel";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const CREATE: &str = "/shippy.service.consignment/Shipping.CreateConsignment";

/// `cmd` exporting its spans to `receiver`, quickly, on loopback only.
fn exporting(mut cmd: std::process::Command, receiver: &Receiver) -> std::process::Command {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
        .env("MICRO_BROKER_ADDRESS", "127.0.0.1:0")
        .env("MICRO_SERVER_DRAIN", "0s");
    cmd
}

/// A shippy service process (`vessel`, `server` or `counter`), once registered as `name`.
fn shippy(world: &World, receiver: &Receiver, what: &str, name: &str) -> Proc {
    let mut cmd = exporting(world.command(example("cli-shippy")), receiver);
    cmd.arg(what).stdout(Stdio::null()).stderr(Stdio::inherit());
    let proc = Proc {
        child: cmd.spawn().expect("start a shippy service"),
    };
    world.wait_for_nodes(name, 1);
    proc
}

/// `micro api` on a free loopback port, and its URL.
fn gateway(world: &World, receiver: &Receiver) -> (Proc, String) {
    support::serve(exporting(
        world.micro(&["api", "--address", "127.0.0.1:0"]),
        receiver,
    ))
}

/// SIGTERM, and the exit: a process exports the spans it still holds before it ends.
fn stop(mut proc: Proc) {
    proc.terminate();
    let status = proc.wait();
    assert!(status.success(), "{status}");
}

/// The spans of one trace.
struct Trace<'a> {
    spans: Vec<&'a Exported>,
}

impl<'a> Trace<'a> {
    /// The one gateway span `which` picks, and the trace it belongs to.
    #[track_caller]
    fn of(spans: &'a [Exported], which: impl Fn(&Exported) -> bool) -> (Trace<'a>, &'a Exported) {
        let roots: Vec<&Exported> = spans
            .iter()
            .filter(|s| s.service == "micro.api" && s.attributes.contains_key("url.path"))
            .filter(|s| which(s))
            .collect();
        assert_eq!(roots.len(), 1, "one such gateway span: {spans:#?}");
        let root = roots[0];
        let trace = Trace {
            spans: spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .collect(),
        };
        (trace, root)
    }

    /// The one span of `service` named `name` that is a child of `parent`, of `kind`.
    #[track_caller]
    fn child(&self, parent: &Exported, service: &str, name: &str, kind: SpanKind) -> &'a Exported {
        let found: Vec<&&Exported> = self
            .spans
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one {service} {name}: {:#?}", self.spans);
        let span = *found[0];
        assert_eq!(
            span.parent_id, parent.span_id,
            "{span:#?} under {parent:#?}"
        );
        assert_eq!(span.kind, kind as i32, "{span:#?}");
        span
    }

    /// Asserts the spans of a consignment created through the gateway span `root`: its call,
    /// the consignment service serving it, the call to the vessel service and its serving,
    /// the event published and its delivery, and nothing else.
    #[track_caller]
    fn created(&self, root: &Exported) {
        let name = "shippy.service.consignment/Shipping.CreateConsignment";
        let call = self.child(root, "micro.api", name, SpanKind::Client);
        let serve = self.child(call, SHIPPY, name, SpanKind::Server);
        let name = "shippy.service.vessel/Vessels.FindAvailable";
        let find = self.child(serve, SHIPPY, name, SpanKind::Client);
        self.child(find, VESSELS, name, SpanKind::Server);
        let publish = self.child(
            serve,
            SHIPPY,
            "consignment.created publish",
            SpanKind::Producer,
        );
        self.delivered(publish, SHIPPY);
        assert_eq!(self.spans.len(), 10, "{:#?}", self.spans);
    }

    /// Asserts how the embedded broker delivered the event `publish` (by `publisher`) to the
    /// counter: the publisher's call to the counter's broker inbox, and the counter's
    /// `deliver` and handler spans, all under the publish span.
    #[track_caller]
    fn delivered(&self, publish: &Exported, publisher: &str) {
        let send = self.child(
            publish,
            publisher,
            "micro.broker/Broker.Deliver",
            SpanKind::Client,
        );
        self.child(
            send,
            COUNTER,
            "micro.broker/Broker.Deliver",
            SpanKind::Server,
        );
        let deliver = self.child(
            publish,
            COUNTER,
            "consignment.created deliver",
            SpanKind::Consumer,
        );
        self.child(
            deliver,
            COUNTER,
            "shippy.service.counter/Counter.OnCreated",
            SpanKind::Server,
        );
    }
}

#[test]
fn a_gateway_request_its_calls_and_its_event_are_one_exported_trace() {
    let receiver = Receiver::start();
    let world = World::new();
    let counter = shippy(&world, &receiver, "counter", COUNTER);
    let vessel = shippy(&world, &receiver, "vessel", VESSELS);
    let consignment = shippy(&world, &receiver, "server", SHIPPY);
    let (api, url) = gateway(&world, &receiver);

    let create = |headers: &[(&str, &str)]| {
        let body = br#"{"description":"tea","weight":500,"containers":[{"id":"c1","customer_id":"x","origin":"Leith","user_id":"u"}]}"#;
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let response = http("POST", &url, CREATE, &all, body);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.json()["created"], true, "{response:?}");
    };
    // A request that starts a trace, and one that continues its caller's.
    create(&[]);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    create(&[("traceparent", &caller), ("tracestate", "vendor=1")]);
    // An event published through the gateway.
    let published = http(
        "POST",
        &url,
        "/event/consignment.created",
        &[("content-type", "application/json")],
        br#"{"id":"from-gateway","weight":7}"#,
    );
    assert_eq!(published.status, 202, "{published:?}");

    // The counter has heard both events once it counts them (bounded, event-driven polling
    // of its own endpoint: each answer is a fresh call).
    let start = std::time::Instant::now();
    loop {
        let count = http(
            "POST",
            &url,
            &format!("/{COUNTER}/Counter.Count"),
            &[("content-type", "application/json")],
            b"null",
        );
        if count.status == 200 && count.json()[0] == 3 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the counter never saw 3 events: {count:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    for proc in [api, consignment, vessel, counter] {
        stop(proc);
    }
    let spans = receiver.spans();

    // gateway → call → consignment → (vessel, event → counter).
    let (trace, root) = Trace::of(&spans, |s| {
        s.attributes["url.path"] == CREATE && s.trace_id != CALLER_TRACE
    });
    assert_eq!(root.name, "POST /{service}/{endpoint}", "{root:#?}");
    assert_eq!(root.kind, SpanKind::Server as i32, "{root:#?}");
    assert_eq!(
        root.parent_id, "",
        "a request without traceparent starts a trace"
    );
    assert_eq!(root.attributes["http.response.status_code"], "200");
    trace.created(root);

    // The caller's trace goes on through the gateway, whose span is its caller's child.
    let (trace, root) = Trace::of(&spans, |s| s.trace_id == CALLER_TRACE);
    assert_eq!(root.parent_id, CALLER_SPAN, "{root:#?}");
    trace.created(root);

    // gateway → publish → counter.
    let (trace, root) = Trace::of(&spans, |s| {
        s.attributes["url.path"] == "/event/consignment.created"
    });
    assert_eq!(root.name, "POST /event/{topic}");
    assert_eq!(root.attributes["http.response.status_code"], "202");
    let publish = trace.child(
        root,
        "micro.api",
        "consignment.created publish",
        SpanKind::Producer,
    );
    trace.delivered(publish, "micro.api");
    assert_eq!(trace.spans.len(), 6, "{:#?}", trace.spans);
}
