//! `micro api`, the HTTP gateway, as a real process in front of real service processes.

mod support;

use support::{World, get, http, post};

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn a_post_calls_the_endpoint_and_answers_its_json() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);

    let reply = post(&url, "/demo/Greeter.Hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        serde_json::json!({"message": "Hello, Ada!", "count": 1})
    );
    // No body is null, which an endpoint taking nothing accepts.
    let reply = http("POST", &url, "/demo/Greeter.Events", &[], b"");
    assert_eq!((reply.status, reply.json()), (200, serde_json::json!([])));
    // A body must be declared JSON: a `text/plain` one could come from any web page's form.
    let reply = http(
        "POST",
        &url,
        "/demo/Greeter.Sleep",
        &[("Content-Type", "text/plain")],
        b"1",
    );
    reply.error(415);
    let reply = http(
        "POST",
        &url,
        "/demo/Greeter.Sleep",
        &[("Content-Type", "application/json; charset=utf-8")],
        b"1",
    );
    assert_eq!((reply.status, reply.json()), (200, serde_json::json!(1)));

    let health = get(&url, "/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn every_failure_is_a_4xx_or_the_services_code_with_an_error_body() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (api, url) = world.serve(&[
        "api",
        "--address",
        "127.0.0.1:0",
        "--timeout",
        "300ms",
        "--body_limit",
        "1KiB",
    ]);

    // Bad JSON: 400 from the gateway itself.
    let err = post(&url, "/demo/Greeter.Hello", r#"{"name":"#).error(400);
    assert_eq!(err.id, "micro.api");
    assert!(err.detail.contains("not valid JSON"), "{err:?}");
    // JSON of the wrong shape: the service's 400.
    post(&url, "/demo/Greeter.Hello", r#"{"nom":"Ada"}"#).error(400);
    // Unknown service, unknown endpoint: the framework's 404s.
    let err = post(&url, "/nope/Greeter.Hello", "{}").error(404);
    assert_eq!(err.detail, "service nope not found");
    let err = post(&url, "/demo/Greeter.Nope", "{}").error(404);
    assert!(err.detail.contains("Greeter.Nope"), "{err:?}");
    // The handler's own error code becomes the HTTP status.
    let err = post(&url, "/demo/Greeter.Hello", r#"{"name":""}"#).error(400);
    assert_eq!(
        (err.id.as_str(), err.detail.as_str()),
        ("demo", "name must not be empty")
    );
    for code in [401, 403, 409, 429, 500, 503] {
        let err = post(&url, "/demo/Greeter.Fail", &code.to_string()).error(code);
        assert_eq!(err.id, "demo");
    }
    // A code that is no HTTP error status still answers, as 500.
    let reply = post(&url, "/demo/Greeter.Fail", "299");
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(reply.json()["code"], 299);
    // Over --body_limit: 413.
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(4096));
    post(&url, "/demo/Greeter.Hello", &big).error(413);
    // Wrong method, unknown route.
    let err = get(&url, "/demo/Greeter.Hello").error(405);
    assert!(err.detail.contains("use POST"), "{err:?}");
    get(&url, "/nothing").error(404);
    post(&url, "/a/b/c", "{}").error(404);
    // A path that is not UTF-8 once decoded.
    post(&url, "/%FF/Greeter.Hello", "{}").error(400);

    // After all of that the gateway still serves.
    let reply = post(&url, "/demo/Greeter.Hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.status, 200, "{reply:?}");
    // Past --timeout: 408 (last: the demo's one actor stays busy sleeping).
    let err = post(&url, "/demo/Greeter.Sleep", "2000").error(408);
    assert!(err.detail.contains("timed out after 300ms"), "{err:?}");
    drop(api);
}

#[test]
fn an_allow_list_keeps_other_services_out() {
    let world = World::new();
    let _demo = world.demo("demo");
    let _other = world.demo("other");
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0", "--allow", "demo,nope"]);
    assert_eq!(
        post(&url, "/demo/Greeter.Hello", r#"{"name":"A"}"#).status,
        200
    );
    let err = post(&url, "/other/Greeter.Hello", r#"{"name":"A"}"#).error(403);
    assert_eq!(err.detail, "service other is not exposed by this gateway");
    // Allowed but not running: still the framework's 404.
    post(&url, "/nope/Greeter.Hello", "{}").error(404);
}

#[test]
fn cors_answers_preflights_and_marks_replies_for_allowed_origins_only() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&[
        "api",
        "--address",
        "127.0.0.1:0",
        "--cors",
        "http://app.test",
    ]);
    let preflight = http(
        "OPTIONS",
        &url,
        "/demo/Greeter.Hello",
        &[
            ("Origin", "http://app.test"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );

    let reply = http(
        "POST",
        &url,
        "/demo/Greeter.Hello",
        &[("Origin", "http://app.test"), JSON],
        br#"{"name":"A"}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    // Errors carry the header too, so the page can read them.
    let err = http(
        "POST",
        &url,
        "/nope/X.Y",
        &[("Origin", "http://app.test"), JSON],
        b"{}",
    );
    assert_eq!(err.status, 404);
    assert!(err.header("access-control-allow-origin").is_some());

    let stranger = http(
        "POST",
        &url,
        "/demo/Greeter.Hello",
        &[("Origin", "http://evil.test"), JSON],
        br#"{"name":"A"}"#,
    );
    assert_eq!(stranger.header("access-control-allow-origin"), None);

    // Without --cors, no CORS header at all.
    let (_plain, plain) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    let reply = http(
        "POST",
        &plain,
        "/demo/Greeter.Hello",
        &[("Origin", "http://app.test"), JSON],
        br#"{"name":"A"}"#,
    );
    assert_eq!(reply.header("access-control-allow-origin"), None);
    // Any origin with `*`.
    let (_any, any) = world.serve(&["api", "--address", "127.0.0.1:0", "--cors", "*"]);
    let reply = http(
        "POST",
        &any,
        "/demo/Greeter.Hello",
        &[("Origin", "http://whoever.test"), JSON],
        br#"{"name":"A"}"#,
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn the_gateway_stops_on_sigterm_with_exit_0_and_reports_a_taken_port() {
    let world = World::new();
    let (mut api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    let address = url.strip_prefix("http://").unwrap();
    let taken = world.run(&["api", "--address", address]).error();
    assert!(
        taken
            .detail
            .starts_with(&format!("cannot listen on {address}")),
        "{taken:?}"
    );
    api.terminate();
    assert_eq!(api.wait().code(), Some(0));
}

#[test]
fn sixty_four_connections_for_a_second_see_no_error() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    // The load comes from a process of its own, as it would in production.
    let mut load = world.command(support::example("gateway_load"));
    load.args([
        &format!("{url}/demo/Greeter.Hello"),
        "--body",
        r#"{"name":"load"}"#,
        "--connections",
        "64",
        "--duration",
        "1s",
    ]);
    let out = support::run(load);
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\nerrors       0\n"), "{}", out.stdout);
}

/// `--address :0` listens on every interface, as services' `MICRO_SERVER_ADDRESS=:0` does;
/// an address that is not one fails at once, saying why.
#[test]
fn the_gateway_listens_on_colon_port_and_refuses_a_malformed_address() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&["api", "--address", ":0"]);
    let port = url
        .strip_prefix("http://0.0.0.0:")
        .unwrap_or_else(|| panic!("not every interface: {url}"));
    let reply = post(
        &format!("http://127.0.0.1:{port}"),
        "/demo/Greeter.Hello",
        r#"{"name":"Ada"}"#,
    );
    assert_eq!(reply.status, 200, "{reply:?}");

    let err = world.run(&["api", "--address", "::1:8080"]).error();
    assert_eq!(err.code, 400);
    assert!(
        err.detail.contains("IPv6 addresses go in brackets"),
        "{err:?}"
    );
}

#[test]
fn a_post_to_event_publishes_to_the_subscribers_of_the_topic() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0", "--body_limit", "1KiB"]);

    let reply = post(&url, "/event/demo.events", r#"{"id":"e-1","weight":550}"#);
    assert_eq!((reply.status, reply.json()), (202, serde_json::json!({})));
    let events = post(&url, "/demo/Greeter.Events", "").json();
    assert_eq!(events, serde_json::json!([r#"{"id":"e-1","weight":550}"#]));

    // Bad events are turned away before the broker, and nothing reaches the subscriber.
    post(&url, "/event/demo.events", "{").error(400);
    let big = format!("\"{}\"", "x".repeat(2048));
    post(&url, "/event/demo.events", &big).error(413);
    let events = post(&url, "/demo/Greeter.Events", "").json();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    // Nobody subscribed: nothing to deliver, nothing failed.
    assert_eq!(post(&url, "/event/nobody.listens", "{}").status, 202);
}

#[test]
fn events_are_published_only_on_allowed_topics_when_the_gateway_is_limited() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_a, limited) = world.serve(&["api", "--address", "127.0.0.1:0", "--allow", "demo"]);
    let err = post(&limited, "/event/demo.events", "1").error(403);
    assert_eq!(
        err.detail,
        "topic demo.events is not exposed by this gateway"
    );

    let (_b, url) = world.serve(&[
        "api",
        "--address",
        "127.0.0.1:0",
        "--allow",
        "demo",
        "--allow_topics",
        "demo.events",
    ]);
    assert_eq!(post(&url, "/event/demo.events", "2").status, 202);
    post(&url, "/event/other.topic", "3").error(403);
    let events = post(&url, "/demo/Greeter.Events", "").json();
    assert_eq!(events, serde_json::json!(["2"]));
}

#[test]
fn a_traceparent_header_makes_the_call_part_of_the_callers_trace() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = http(
        "POST",
        &url,
        "/demo/Greeter.Trace",
        &[("traceparent", header), ("tracestate", "vendor=1")],
        b"",
    );
    assert_eq!(
        (traced.status, traced.json()),
        (200, serde_json::json!("4bf92f3577b34da6a3ce929d0e0e4736"))
    );
    // A malformed header is not passed on: the call starts no trace of the caller's.
    let malformed = http(
        "POST",
        &url,
        "/demo/Greeter.Trace",
        &[("traceparent", "00-not-a-trace-01")],
        b"",
    );
    assert_eq!(malformed.status, 200);
    assert_ne!(malformed.json(), serde_json::json!("not-a-trace"));
    assert_ne!(malformed.json(), traced.json());
}
