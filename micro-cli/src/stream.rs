//! `micro stream SERVICE ENDPOINT [JSON…]`: opens a stream and prints its replies as NDJSON.

use futures_util::StreamExt;
use micro::codec::ContentType;
use micro::{StreamKind, Streaming};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::cli::StreamArgs;
use crate::env::Env;
use crate::output::print;
use crate::{Failure, http};

/// How the endpoint streams: as `--kind` says, else as the registry lists it.
pub(crate) async fn kind_of(
    registry: &dyn micro::registry::Registry,
    service: &str,
    endpoint: &str,
) -> StreamKind {
    let Ok(versions) = registry.get_service(service).await else {
        return StreamKind::Unary;
    };
    versions
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .find(|e| e.name == endpoint)
        .and_then(|e| e.metadata.get("stream"))
        .map_or(StreamKind::Unary, |kind| StreamKind::parse(kind))
}

fn parse(what: &str, text: &str) -> Result<Value, Failure> {
    http::parse_json(text.as_bytes())
        .map_err(|e| Failure::Usage(format!("the {what} is not valid JSON: {e}")))
}

/// The requests of a client or bidirectional stream: the arguments when there are any,
/// else one JSON value per line of stdin, sent as each line arrives.
fn requests(args: Vec<String>) -> Result<Streaming<Value>, Failure> {
    if !args.is_empty() {
        let values = args
            .iter()
            .map(|a| parse("request", a))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Streaming::iter(values));
    }
    let (tx, rx) = Streaming::channel(16);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line,
                () = tx.closed() => return,
            };
            match line {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => {
                    let item = http::parse_json(line.as_bytes()).map_err(|e| {
                        micro::Error::bad_request(
                            "micro.cli",
                            format_args!("a request line is not valid JSON: {e}"),
                        )
                    });
                    let sent = match item {
                        Ok(value) => tx.send(value).await.is_ok(),
                        Err(error) => {
                            let _ = tx.fail(error).await;
                            false
                        }
                    };
                    if !sent {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let error = micro::Error::bad_request(
                        "micro.cli",
                        format_args!("cannot read stdin: {e}"),
                    );
                    let _ = tx.fail(error).await;
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// Prints each reply on a line of its own; an error ends the command with it.
async fn print_all(mut replies: Streaming<Value>) -> Result<(), Failure> {
    while let Some(reply) = replies.next().await {
        print(&format!("{}\n", reply?))?;
    }
    Ok(())
}

/// `micro stream SERVICE ENDPOINT [JSON…]`.
pub(crate) async fn run(env: &Env, args: StreamArgs) -> Result<(), Failure> {
    let kind = match args.kind {
        Some(kind) => StreamKind::parse(&kind),
        None => kind_of(&*env.registry, &args.service, &args.endpoint).await,
    };
    let client = &env.client;
    let service: std::sync::Arc<str> = args.service.as_str().into();
    let endpoint = args.endpoint.clone();
    macro_rules! options {
        ($call:expr) => {{
            let mut call = $call.content_type(ContentType::Json);
            for (k, v) in args.metadata {
                call = call.metadata(k, v);
            }
            if let Some(node) = args.node {
                call = call.node(node);
            }
            call
        }};
    }
    match kind {
        StreamKind::Server => {
            let request = match &args.requests[..] {
                [] => Value::Null,
                [one] => parse("request", one)?,
                _ => {
                    return Err(Failure::Usage(format!(
                        "{} streams its replies and takes one request, not {}",
                        args.endpoint,
                        args.requests.len()
                    )));
                }
            };
            let call = options!(client.server_stream::<Value, Value>(service, endpoint, request));
            print_all(call.await?).await
        }
        StreamKind::Client => {
            let reqs = requests(args.requests.clone())?;
            let call = options!(client.client_stream::<Value, Value>(service, endpoint, reqs));
            print(&format!("{}\n", call.await?))
        }
        StreamKind::Bidi => {
            let reqs = requests(args.requests.clone())?;
            let call = options!(client.bidi_stream::<Value, Value>(service, endpoint, reqs));
            print_all(call.await?).await
        }
        StreamKind::Unary => Err(Failure::Usage(format!(
            "{} {} is not a streaming endpoint in the registry (use `micro call`, or say \
             --kind server|client|bidi)",
            args.service, args.endpoint
        ))),
    }
}
