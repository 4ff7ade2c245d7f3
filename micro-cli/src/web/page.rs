//! The dashboard's HTML, rendered from registry records. Everything that came from the
//! registry is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::http::StatusCode;
use micro::broker::TOPIC_PREFIX;
use micro::registry::{Endpoint, Service};

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes text for one URL path segment.
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn layout(title: &str, registry: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · micro</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/"><span class="logo">μ</span>micro</a>
  <span class="sub">dashboard</span>
  <span class="registry" title="registry backend">registry: {registry}</span>
</header>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
        registry = escape(registry),
    )
}

/// The service list.
pub(super) fn index(registry: &str, services: &[Service]) -> String {
    // One card per service name, whatever its versions; broker topics apart.
    let mut by_name: BTreeMap<&str, Vec<&Service>> = BTreeMap::new();
    let mut topics: BTreeMap<&str, usize> = BTreeMap::new();
    for s in services {
        match s.name.strip_prefix(TOPIC_PREFIX) {
            Some(topic) => *topics.entry(topic).or_default() += s.nodes.len(),
            None => by_name.entry(&s.name).or_default().push(s),
        }
    }
    let nodes: usize = by_name.values().flatten().map(|s| s.nodes.len()).sum();
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<section class="title-row"><h1>Services</h1>
<p class="muted">{} {} · {} {} · live numbers from every node's <code>Debug.Stats</code></p></section>
"#,
        by_name.len(),
        plural(by_name.len(), "service", "services"),
        nodes,
        plural(nodes, "node", "nodes"),
    );
    if by_name.is_empty() {
        body.push_str(
            r#"<section class="card empty"><h2>No services yet</h2>
<p>Nothing is registered here. Start a service with the same <code>MICRO_REGISTRY</code> settings, for example
<code>cargo run -p micro-cli --example demo</code>, then reload.</p></section>
"#,
        );
    } else {
        body.push_str(r#"<div class="grid services">"#);
        for (name, versions) in &by_name {
            let node_count: usize = versions.iter().map(|s| s.nodes.len()).sum();
            let endpoints = versions
                .iter()
                .map(|s| s.endpoints.len())
                .max()
                .unwrap_or(0);
            let chips: String = versions
                .iter()
                .map(|s| format!(r#"<span class="chip">{}</span>"#, escape(version(s))))
                .collect();
            let _ = write!(
                body,
                r#"
<a class="card service" href="/service/{href}" data-stats="{name}">
  <div class="card-head"><span class="dot" data-health title="waiting for stats"></span><h2>{name}</h2>{chips}</div>
  <p class="muted">{node_count} {nodes} · {endpoints} {eps}</p>
  <dl class="mini">
    <div><dt>calls/s</dt><dd data-k="rate">–</dd></div>
    <div><dt>calls</dt><dd data-k="calls">–</dd></div>
    <div><dt>errors</dt><dd data-k="errors">–</dd></div>
    <div><dt>in flight</dt><dd data-k="in_flight">–</dd></div>
  </dl>
</a>"#,
                href = segment(name),
                name = escape(name),
                nodes = plural(node_count, "node", "nodes"),
                eps = plural(endpoints, "endpoint", "endpoints"),
            );
        }
        body.push_str("\n</div>\n");
    }
    if !topics.is_empty() {
        body.push_str(
            r#"<section class="card topics"><h2>Topics</h2>
<table><thead><tr><th>Topic</th><th>Subscriptions</th></tr></thead><tbody>"#,
        );
        for (topic, subscribers) in &topics {
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{subscribers}</td></tr>",
                escape(topic)
            );
        }
        body.push_str("</tbody></table>\n<p class=\"muted small\">Publish to one with <code>micro publish TOPIC '{json}'</code>.</p></section>\n");
    }
    layout("Services", registry, &body)
}

/// One service: its versions, nodes and endpoints, the call form and live stats.
pub(super) fn service(registry: &str, name: &str, versions: &[Service]) -> String {
    let chips: String = versions
        .iter()
        .map(|s| format!(r#"<span class="chip">{}</span>"#, escape(version(s))))
        .collect();
    // Endpoints of every version, once each, in the order the service declares them; then
    // `Debug.*`, then subscribers (a stable sort keeps the declared order within each).
    let mut order: Vec<&Endpoint> = Vec::new();
    for e in versions.iter().flat_map(|s| &s.endpoints) {
        if !order.iter().any(|o| o.name == e.name) {
            order.push(e);
        }
    }
    order.sort_by_key(|e| {
        (
            e.metadata.contains_key("topic"),
            e.name.starts_with("Debug."),
        )
    });

    let mut rows = String::new();
    let mut options = String::new();
    for e in &order {
        let (request, response) = (type_name(e, true), type_name(e, false));
        let action = match e.metadata.get("topic") {
            Some(topic) => format!(r#"<span class="chip topic">topic {}</span>"#, escape(topic)),
            None => {
                // The request's JSON Schema: the script builds the form's fields from it and
                // checks a request against it before sending.
                let schema = e.request.as_ref().map_or_else(
                    || serde_json::json!({}),
                    micro::registry::Value::json_schema,
                );
                let _ = write!(
                    options,
                    r#"<option value="{n}" data-request="{rq}" data-response="{rs}" data-schema="{schema}" data-doc="{doc}" data-stream="{stream}">{n}</option>"#,
                    stream = escape(e.metadata.get("stream").map_or("", String::as_str)),
                    n = escape(&e.name),
                    rq = escape(request),
                    rs = escape(response),
                    schema = escape(&schema.to_string()),
                    doc = escape(e.metadata.get("description").map_or("", String::as_str)),
                );
                format!(
                    r#"<button type="button" class="link" data-try="{}">Try</button>"#,
                    escape(&e.name)
                )
            }
        };
        let _ = write!(
            rows,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td class=\"right\">{action}</td></tr>",
            escape(&e.name),
            escape(request),
            escape(response),
        );
    }

    let mut nodes = String::new();
    for s in versions {
        for n in &s.nodes {
            let mut meta: Vec<String> = n
                .metadata
                .iter()
                .map(|(k, v)| {
                    format!(
                        r#"<span class="chip soft">{}={}</span>"#,
                        escape(k),
                        escape(v)
                    )
                })
                .collect();
            meta.sort();
            let _ = write!(
                nodes,
                "<tr><td class=\"nowrap\"><code>{}</code></td><td class=\"nowrap\"><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&n.id),
                escape(&n.address),
                escape(version(s)),
                meta.concat(),
            );
        }
    }

    let body = format!(
        r#"<nav class="crumbs"><a href="/">Services</a> <span>/</span> {name}</nav>
<section class="title-row"><h1><span class="dot" data-health title="waiting for stats"></span>{name}</h1>{chips}</section>
<div class="cols">
<div class="col">
  <section class="card"><h2>Endpoints</h2>
    <table class="endpoints"><thead><tr><th>Endpoint</th><th>Request</th><th>Response</th><th></th></tr></thead>
    <tbody>{rows}</tbody></table>
  </section>
  <section class="card"><h2>Nodes</h2>
    <table class="nodes"><thead><tr><th>Node</th><th>Address</th><th>Version</th><th>Metadata</th></tr></thead>
    <tbody>{nodes}</tbody></table>
  </section>
</div>
<div class="col">
  <section class="card call"><h2>Call</h2>
    <form id="call-form" data-service="{name}" autocomplete="off">
      <label for="endpoint">Endpoint</label>
      <select id="endpoint" name="endpoint">{options}</select>
      <p id="endpoint-doc" class="muted small"></p>
      <div id="fields" class="fields"></div>
      <label for="request">Request JSON <span class="hint" id="request-type"></span></label>
      <textarea id="request" name="request" rows="6" spellcheck="false"></textarea>
      <ul id="request-errors" class="errors" hidden></ul>
      <div class="actions"><button type="submit" id="call-button" class="primary">Call</button><span class="muted small">Ctrl+Enter</span></div>
    </form>
    <div id="reply" class="reply" hidden>
      <div class="reply-head"><span id="reply-status" class="status"></span><span id="reply-time" class="muted small"></span></div>
      <pre id="reply-body"></pre>
    </div>
  </section>
  <section class="card live" data-stats="{name}" data-detail>
    <h2>Live stats</h2>
    <div class="numbers">
      <div><span data-k="rate">–</span><label>calls/s</label></div>
      <div><span data-k="calls">–</span><label>calls</label></div>
      <div><span data-k="errors">–</span><label>errors</label></div>
      <div><span data-k="in_flight">–</span><label>in flight</label></div>
    </div>
    <svg class="spark" viewBox="0 0 300 48" preserveAspectRatio="none" aria-label="calls per second"><polygon points=""/><polyline points=""/></svg>
    <table class="handlers"><thead><tr><th>Node</th><th>Handler</th><th>Calls</th><th>Errors</th><th>Running</th><th>Queued</th></tr></thead>
    <tbody><tr><td colspan="6" class="muted">waiting for the first sample…</td></tr></tbody></table>
  </section>
  <section class="card charts" data-metrics="{name}">
    <h2>Endpoints</h2>
    <p class="muted small" data-metrics-note>calls/s, errors/s and latency percentiles per endpoint, from the nodes' own Prometheus metrics (<code>MICRO_METRICS_ADDRESS</code>)…</p>
    <div class="endpoint-charts"></div>
  </section>
</div>
</div>
"#,
        name = escape(name),
    );
    layout(name, registry, &body)
}

/// An error page.
pub(super) fn problem(status: StatusCode, detail: &str) -> String {
    let body = format!(
        r#"<section class="card empty"><h1>{} {}</h1><p>{}</p><p><a href="/">Back to the services</a></p></section>"#,
        status.as_u16(),
        escape(status.canonical_reason().unwrap_or("")),
        escape(detail),
    );
    layout(status.canonical_reason().unwrap_or("Error"), "-", &body)
}

fn version(s: &Service) -> &str {
    if s.version.is_empty() {
        "-"
    } else {
        &s.version
    }
}

fn type_name(e: &Endpoint, request: bool) -> &str {
    let value = if request { &e.request } else { &e.response };
    value.as_ref().map_or("-", |v| v.type_name.as_str())
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_text_is_escaped_and_encoded() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(segment("shippy.consignment"), "shippy.consignment");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn a_hostile_service_name_stays_text() {
        let s = Service {
            name: "<script>alert(1)</script>".into(),
            ..Default::default()
        };
        let html = index("local", std::slice::from_ref(&s));
        assert!(!html.contains("<script>alert"));
        let html = service("local", &s.name, std::slice::from_ref(&s));
        assert!(!html.contains("<script>alert"));
    }
}
