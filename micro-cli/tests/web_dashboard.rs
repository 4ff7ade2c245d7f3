//! `micro web` in a real browser (headless Chromium) against a real service process, and
//! its JSON routes over plain HTTP.

mod support;

use std::path::PathBuf;

use support::cdp::Browser;
use support::{World, get, post};

/// Waits until a service page is whole: its style sheet applied (the mouse clicks where
/// elements are laid out) and its script has set the call form up.
fn form_ready(browser: &mut Browser) {
    browser.wait_until(
        "the call form, set up",
        "document.readyState === 'complete' \
         && document.getElementById('request-type').textContent !== ''",
    );
}

/// Where the screenshot of the last step is kept, to look at.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web_dashboard.png")
}

#[test]
fn the_dashboard_lists_a_running_service_and_its_call_form_returns_the_real_reply() {
    let world = World::new();
    let service = world.demo("demo");
    let (_web, url) = world.serve(&["web", "--address", "127.0.0.1:0"]);
    let mut browser = Browser::launch(1280, 900);

    // The front page lists the service, and its live numbers arrive from Debug.Stats.
    browser.navigate(&format!("{url}/"));
    browser.wait_until(
        "the demo service card",
        "[...document.querySelectorAll('a.card.service h2')].some(h => h.textContent === 'demo')",
    );
    browser.wait_until(
        "the card's health dot to turn green",
        "document.querySelector('a.card.service .dot.ok')",
    );
    assert_eq!(browser.text("a.card.service .chip"), "1.0.0");
    assert!(
        browser.text("main").contains("demo.events"),
        "topics listed"
    );

    // A person clicks through to the service.
    browser.click("a.card.service");
    browser.wait_until("the service page", "location.pathname === '/service/demo'");
    form_ready(&mut browser);
    let endpoints = browser.text("table.endpoints");
    for expected in ["Greeter.Hello", "HelloRequest", "HelloReply", "Debug.Stats"] {
        assert!(endpoints.contains(expected), "{expected} in {endpoints}");
    }
    let node_address = world.addresses("demo").remove(0);
    assert!(browser.text("table.nodes").contains(&node_address));

    // A request that does not fit the registered type is stopped in the page, field named,
    // and never sent (the live stats below count only the two calls that were).
    browser.click("[data-try='Greeter.Fail']");
    browser.type_into("#request", "70000");
    browser.click("#call-button");
    browser.wait_until(
        "the form's own error",
        "!document.getElementById('request-errors').hidden",
    );
    assert_eq!(
        browser.text("#request-errors"),
        "request: must be at most 65535"
    );
    assert_eq!(
        browser.eval("document.getElementById('reply').hidden"),
        true
    );
    assert_eq!(
        browser.eval("document.querySelector('#fields [data-field]').value"),
        "70000",
        "the JSON fills the field"
    );
    browser.click("[data-try='Greeter.Hello']");
    browser.type_into("#request", "{}");
    browser.click("#call-button");
    browser.wait_until(
        "the missing field's error",
        "document.getElementById('request-errors').textContent === 'name: is required'",
    );
    assert_eq!(
        browser.eval("document.querySelector('#fields [data-field=name]').className"),
        "invalid"
    );

    // A failing call shows the service's error and its status.
    browser.click("[data-try='Greeter.Fail']");
    browser.type_into("#request", "409");
    browser.click("#call-button");
    browser.wait_until(
        "the error reply",
        "document.getElementById('reply-status').textContent === '409 Conflict'",
    );
    assert!(
        browser
            .text("#reply-body")
            .contains("failing with 409 as asked")
    );

    // Then a call that works, made with the form's field for `name`, with the handler's doc
    // above it: the reply is the service's own, from the other process.
    browser.click("[data-try='Greeter.Hello']");
    assert_eq!(
        browser.text("#endpoint-doc"),
        "Greets someone; an empty name is a 400."
    );
    assert!(
        browser.text("#fields").contains("name *"),
        "{}",
        browser.text("#fields")
    );
    browser.type_into("#fields [data-field=name]", "Chromium");
    assert_eq!(
        browser.eval("JSON.parse(document.getElementById('request').value).name"),
        "Chromium",
        "the field fills the JSON"
    );
    browser.click("#call-button");
    browser.wait_until(
        "the reply",
        "document.getElementById('reply-body').textContent.includes('Hello, Chromium!')",
    );
    assert_eq!(browser.text("#reply-status"), "200 OK");
    let reply: serde_json::Value =
        serde_json::from_str(&browser.text("#reply-body")).expect("the reply is JSON");
    assert_eq!(reply["message"], "Hello, Chromium!");
    assert_eq!(reply["count"], 1);

    // Live stats count both calls, per handler, and draw the rate.
    browser.wait_until(
        "the live stats to count both calls",
        "document.querySelector('.live [data-k=calls]').textContent === '2' \
         && document.querySelector('.live [data-k=errors]').textContent === '1' \
         && document.querySelector('.spark polyline').getAttribute('points') !== ''",
    );
    assert!(browser.text(".live .handlers").contains("Greeter"));

    // The endpoint charts: from the node's own Prometheus metrics, once it has two samples
    // with calls between them.
    browser.wait_until(
        "the charts of the endpoints called",
        "document.querySelector(\"[data-endpoint='Greeter.Hello']\") \
         && document.querySelector(\"[data-endpoint='Greeter.Fail']\")",
    );
    for i in 0..20 {
        let name = format!(r#"{{"name":"n{i}"}}"#);
        assert_eq!(
            post(&url, "/api/call/demo/Greeter.Hello", &name).status,
            200
        );
    }
    for _ in 0..5 {
        post(&url, "/api/call/demo/Greeter.Fail", "500").error(500);
    }
    browser.wait_until(
        "calls/s, errors/s and latency drawn",
        "(() => { const h = document.querySelector(\"[data-endpoint='Greeter.Hello']\"); \
                  const f = document.querySelector(\"[data-endpoint='Greeter.Fail']\"); \
                  return Number(h.dataset.rate) > 0 && h.dataset.p50 !== '' && h.dataset.p99 !== '' \
                    && Number(f.dataset.error_rate) > 0 \
                    && h.querySelector('svg.rate polyline').getAttribute('points') \
                    && f.querySelector('svg.errors polyline').getAttribute('points'); })()",
    );
    assert!(
        browser.text("[data-metrics-note]").contains("1 of 1 node"),
        "{}",
        browser.text("[data-metrics-note]")
    );
    browser.eval("document.querySelector('.charts').scrollIntoView()");

    let path = screenshot_path();
    browser.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
    assert!(std::fs::metadata(&path).expect("screenshot").len() > 10_000);

    // When the service goes away, the page says so rather than going blank.
    drop(service);
    browser.wait_until(
        "the health dot to turn red",
        "document.querySelector('.title-row .dot.bad')",
    );
}

#[test]
fn the_dashboard_json_routes_answer_and_unknown_pages_are_404() {
    let world = World::new();
    let _a = world.demo("demo");
    let _b = world.demo("demo");
    let (_web, url) = world.serve(&["web", "--address", "127.0.0.1:0"]);

    let reply = post(&url, "/api/call/demo/Greeter.Hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["message"], "Hello, Ada!");
    post(&url, "/api/call/demo/Greeter.Hello", "{").error(400);
    post(&url, "/api/call/nope/Greeter.Hello", "{}").error(404);
    post(&url, "/api/call/demo/Greeter.Nope", "{}").error(404);

    let stats = get(&url, "/api/stats/demo");
    assert_eq!(stats.status, 200, "{stats:?}");
    let nodes = stats.json();
    assert_eq!(nodes.as_array().expect("one report per node").len(), 2);
    let calls: u64 = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["reply"]["calls"].as_u64().expect("calls"))
        .sum();
    assert_eq!(calls, 1);
    get(&url, "/api/stats/nope").error(404);

    // The charts' numbers: summed from both nodes' Prometheus metrics.
    let metrics = get(&url, "/api/metrics/demo");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let metrics = metrics.json();
    assert_eq!(
        (metrics["nodes"].as_u64(), metrics["answered"].as_u64()),
        (Some(2), Some(2))
    );
    let hello = &metrics["endpoints"]["Greeter.Hello"];
    // The reply that did not parse never reached the handler.
    assert_eq!(hello["requests"], 1.0, "{metrics}");
    assert_eq!(hello["errors"], 0.0, "{metrics}");
    let buckets = hello["buckets"].as_array().expect("latency buckets");
    assert_eq!(
        buckets.last().map(|b| b[1].clone()),
        Some(1.0.into()),
        "{metrics}"
    );

    let page = get(&url, "/service/nope");
    assert_eq!(page.status, 404);
    assert!(page.body.contains("No node of service nope is registered."));
    assert_eq!(get(&url, "/nothing/here").status, 404);
    assert_eq!(get(&url, "/health").status, 200);
    let css = get(&url, "/assets/style.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

#[test]
fn the_call_form_opens_streams_of_every_kind_and_stops_them() {
    let world = World::new();
    let _feed = world.feed();
    let (_web, url) = world.serve(&["web", "--address", "127.0.0.1:0"]);
    let mut browser = Browser::launch(1280, 900);
    browser.navigate(&format!("{url}/service/feed"));
    form_ready(&mut browser);
    let status = "document.getElementById('reply-status').textContent";
    let body = "document.getElementById('reply-body').textContent";

    // Both ways: the requests are a JSON array, one message each; replies as they come.
    browser.click("[data-try='Feed.Upper']");
    browser.wait_until(
        "the bidi endpoint chosen",
        "document.getElementById('request-type').textContent.includes('bidi stream')",
    );
    assert_eq!(browser.text("#call-button"), "Open stream");
    browser.type_into("#request", r#"["ship", "sail"]"#);
    browser.click("#call-button");
    browser.wait_until("the stream's end", &format!("{status} === 'ended'"));
    assert_eq!(browser.eval(body), "\"SHIP\"\n\"SAIL\"");

    // Requests in, one reply out.
    browser.click("[data-try='Feed.Sum']");
    browser.type_into("#request", "[40, 2]");
    browser.click("#call-button");
    browser.wait_until("the sum", &format!("{status} === 'ended'"));
    assert_eq!(browser.eval(body), "42");

    // Not an array: stopped in the page.
    browser.type_into("#request", "7");
    browser.click("#call-button");
    browser.wait_until(
        "the form's own error",
        "!document.getElementById('request-errors').hidden",
    );

    // A failure mid-stream shows the replies so far and the service's error.
    browser.click("[data-try='Feed.FailAt']");
    browser.type_into("#request", "2");
    browser.click("#call-button");
    browser.wait_until("the error", &format!("{status} === '409 Conflict'"));
    assert!(browser.eval(body).as_str().unwrap().starts_with("0\n1\n"));

    // A stream that would not end: the button stops it.
    browser.click("[data-try='Feed.Count']");
    browser.type_into("#request", "1000000000000");
    browser.click("#call-button");
    browser.wait_until("replies streaming", &format!("{body}.length > 100"));
    assert_eq!(browser.text("#call-button"), "Stop");
    browser.click("#call-button");
    browser.wait_until("the stream stopped", &format!("{status} === 'stopped'"));
    assert_eq!(browser.text("#call-button"), "Open stream");
}
