//! The commands that ask and print: services, describe, call, publish, health, stats, watch.

use std::io::Read;

use micro::registry::{Action, Endpoint, Event, Service, Value};
use micro::{Error, Health, Stats};

use crate::cli::{CallArgs, Format, PublishArgs};
use crate::env::Env;
use crate::output::{Table, or_dash, pairs, print, print_json, uptime};
use crate::probe::{NodeReport, each_node};
use crate::{Failure, http};

/// `micro services`: one row per service version.
pub(crate) async fn services(env: &Env, format: Format) -> Result<(), Failure> {
    let services = env.registry.list_services().await?;
    if format == Format::Json {
        return print_json(&services);
    }
    let mut table = Table::new(&["NAME", "VERSION", "NODES", "ENDPOINTS"]);
    for s in &services {
        table.row(vec![
            s.name.clone(),
            or_dash(s.version.as_str()),
            s.nodes.len().to_string(),
            s.endpoints.len().to_string(),
        ]);
    }
    print(&table.render())
}

/// `micro describe SERVICE`: each version, its nodes and its endpoints.
pub(crate) async fn describe(env: &Env, name: &str, format: Format) -> Result<(), Failure> {
    let versions = env.registry.get_service(name).await?;
    if format == Format::Json {
        return print_json(&versions);
    }
    let blocks: Vec<String> = versions.iter().map(describe_version).collect();
    print(&blocks.join("\n"))
}

fn describe_version(s: &Service) -> String {
    let mut head = Table::new(&["SERVICE", &s.name]);
    head.row(vec!["VERSION".into(), or_dash(s.version.as_str())]);
    head.row(vec!["METADATA".into(), pairs(&s.metadata)]);

    let mut nodes = Table::new(&["NODE", "ADDRESS", "METADATA"]);
    for n in &s.nodes {
        nodes.row(vec![n.id.clone(), n.address.clone(), pairs(&n.metadata)]);
    }

    let mut endpoints = Table::new(&["ENDPOINT", "REQUEST", "RESPONSE", "SUBSCRIBES TO"]);
    for e in &s.endpoints {
        endpoints.row(vec![
            e.name.clone(),
            type_name(e.request.as_ref()),
            type_name(e.response.as_ref()),
            subscription(e),
        ]);
    }
    let fields: Vec<String> = s.endpoints.iter().map(endpoint_fields).collect();
    format!(
        "{}\n{}\n{}\n{}",
        head.render(),
        nodes.render(),
        endpoints.render(),
        fields.join("\n")
    )
}

/// An endpoint's doc and the fields of its request and response, nested fields indented:
///
/// ```text
/// Greeter.Hello
///   Greets someone.
///   request   HelloRequest
///     name    string
///   response  HelloReply
///     message string
/// ```
fn endpoint_fields(e: &Endpoint) -> String {
    let mut out = format!("{}\n", e.name);
    if let Some(doc) = e.metadata.get("description") {
        for line in doc.lines() {
            out.push_str(&format!("  {line}\n").replace("  \n", "\n"));
        }
    }
    let mut rows = Vec::new();
    for (what, value) in [("request", &e.request), ("response", &e.response)] {
        let Some(value) = value else { continue };
        rows.push((format!("  {what}"), value.type_name.clone()));
        field_rows(value, 2, &mut rows);
    }
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, type_name) in rows {
        out.push_str(&format!("{name:<width$}  {type_name}\n"));
    }
    out
}

/// Rows of `(indented field name, type)` for the fields of `value`, depth first.
fn field_rows(value: &Value, depth: usize, rows: &mut Vec<(String, String)>) {
    for field in &value.values {
        rows.push((
            format!("{}{}", "  ".repeat(depth), field.name),
            field.type_name.clone(),
        ));
        field_rows(field, depth + 1, rows);
    }
}

fn type_name(value: Option<&Value>) -> String {
    or_dash(value.map_or("", |v| v.type_name.as_str()))
}

/// `topic` or `topic (queue q)` for a subscriber endpoint, `-` otherwise.
fn subscription(e: &Endpoint) -> String {
    match (e.metadata.get("topic"), e.metadata.get("queue")) {
        (Some(topic), Some(queue)) => format!("{topic} (queue {queue})"),
        (Some(topic), None) => topic.clone(),
        _ => "-".into(),
    }
}

/// The JSON in an argument, or on stdin for `-`.
fn json_argument(what: &str, text: Option<&str>) -> Result<serde_json::Value, Failure> {
    let text = match text {
        None => return Ok(serde_json::Value::Null),
        Some("-") => {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .map_err(|e| Failure::Usage(format!("cannot read the {what} from stdin: {e}")))?;
            buf
        }
        Some(text) => text.to_owned(),
    };
    http::parse_json(text.as_bytes())
        .map_err(|e| Failure::Usage(format!("the {what} is not valid JSON: {e}")))
}

/// `micro call SERVICE ENDPOINT [JSON]`: the reply on stdout, on one line.
pub(crate) async fn call(env: &Env, args: CallArgs) -> Result<(), Failure> {
    let request = json_argument("request", args.request.as_deref())?;
    let mut call = env.client.call_json(&args.service, &args.endpoint, request);
    for (k, v) in args.metadata {
        call = call.metadata(k, v);
    }
    if let Some(node) = args.node {
        call = call.node(node);
    }
    let reply = call.await?;
    print(&format!("{reply}\n"))
}

/// `micro publish TOPIC JSON`: silent on success.
pub(crate) async fn publish(env: &Env, args: PublishArgs) -> Result<(), Failure> {
    let event = json_argument("event", Some(&args.event))?;
    let mut publish = env.client.publish(&args.topic, &event);
    for (k, v) in args.metadata {
        publish = publish.metadata(k, v);
    }
    publish.await?;
    Ok(())
}

/// `micro health SERVICE`: one row per node; fails unless every node says `ok`.
pub(crate) async fn health(env: &Env, service: &str, format: Format) -> Result<(), Failure> {
    let reports: Vec<NodeReport<Health>> =
        each_node(&env.registry, &env.client, service, "Debug.Health").await?;
    let healthy = reports
        .iter()
        .all(|r| r.reply.as_ref().is_some_and(|h| h.status == "ok"));
    if format == Format::Json {
        print_json(&reports)?;
    } else {
        let mut table = Table::new(&["NODE", "ADDRESS", "VERSION", "STATUS", "UPTIME"]);
        for r in &reports {
            let (status, up) = match (&r.reply, &r.error) {
                (Some(h), _) => (h.status.clone(), uptime(h.uptime_secs)),
                (None, Some(e)) => (format!("error: {e}"), "-".into()),
                (None, None) => ("-".into(), "-".into()),
            };
            table.row(vec![
                r.node.clone(),
                r.address.clone(),
                or_dash(r.version.as_str()),
                status,
                up,
            ]);
        }
        print(&table.render())?;
    }
    if healthy {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

/// `micro stats SERVICE`: one row per handler of each node (`Debug` itself is left out).
pub(crate) async fn stats(env: &Env, service: &str, format: Format) -> Result<(), Failure> {
    let reports: Vec<NodeReport<Stats>> =
        each_node(&env.registry, &env.client, service, "Debug.Stats").await?;
    let failed = reports.iter().any(|r| r.error.is_some());
    if format == Format::Json {
        print_json(&reports)?;
    } else {
        let mut table = Table::new(&[
            "NODE", "UPTIME", "HANDLER", "WORKERS", "CALLS", "ERRORS", "PANICS", "REJECTED",
            "EXPIRED", "RUNNING", "QUEUED", "CAPACITY",
        ]);
        for r in &reports {
            let Some(stats) = &r.reply else {
                let why = r.error.as_ref().map_or_else(String::new, Error::to_string);
                table.row(vec![r.node.clone(), format!("error: {why}")]);
                continue;
            };
            for h in &stats.handlers {
                table.row(vec![
                    r.node.clone(),
                    uptime(stats.uptime_secs),
                    h.handler.clone(),
                    h.workers.to_string(),
                    h.calls.to_string(),
                    h.errors.to_string(),
                    h.panics.to_string(),
                    h.rejected.to_string(),
                    h.expired.to_string(),
                    h.running.to_string(),
                    h.queued.to_string(),
                    h.capacity.to_string(),
                ]);
            }
        }
        print(&table.render())?;
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

/// `micro watch [SERVICE]`: one line per node per event, until interrupted.
pub(crate) async fn watch(env: &Env, service: Option<&str>, format: Format) -> Result<(), Failure> {
    let mut watcher = env.registry.watch(service).await?;
    // Said once the watch is in place: every change from here on is reported.
    eprintln!(
        "micro: watching {}; Ctrl-C stops",
        service.map_or_else(|| "every service".to_owned(), |s| format!("service {s}"))
    );
    if format == Format::Table {
        print(&watch_line(
            "ACTION", "SERVICE", "VERSION", "NODE", "ADDRESS",
        ))?;
    }
    let shutdown = http::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = watcher.next() => event,
        };
        let Some(event) = event else {
            return Err(Error::unavailable("micro.cli", "the registry closed the watch").into());
        };
        match format {
            Format::Json => {
                let line =
                    serde_json::to_string(&event).map_err(|e| Error::internal("micro.cli", e))?;
                print(&format!("{line}\n"))?;
            }
            Format::Table => print(&watch_lines(&event))?,
        }
    }
}

fn watch_lines(event: &Event) -> String {
    let action = match event.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        _ => "change",
    };
    let s = &event.service;
    if s.nodes.is_empty() {
        return watch_line(action, &s.name, &or_dash(s.version.as_str()), "-", "-");
    }
    s.nodes
        .iter()
        .map(|n| {
            watch_line(
                action,
                &s.name,
                &or_dash(s.version.as_str()),
                &n.id,
                &n.address,
            )
        })
        .collect()
}

/// Fixed widths: a stream cannot be aligned after the fact.
fn watch_line(action: &str, service: &str, version: &str, node: &str, address: &str) -> String {
    format!("{action:<7} {service:<24} {version:<10} {node:<40} {address}\n")
}
