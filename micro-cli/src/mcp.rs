//! `micro mcp`: the services in the registry as tools for AI agents, over the Model Context
//! Protocol.
//!
//! Each endpoint is a tool: its name is the service and endpoint with every character outside
//! `[A-Za-z0-9_-]` made `_` (`greeter_Greeter_SayHello`, at most 64 characters), its
//! description the handler's doc comment, its input schema the request's JSON Schema from the
//! registry. A request that is not a JSON object (a number, a list) is the tool's `request`
//! argument; an endpoint taking `()` takes no argument. A call goes through the client like any
//! other; its reply is the tool's text (and, when an object, its structured content), and a
//! micro error is a tool error (`isError`) whose text is micro's error JSON.
//!
//! Subscribers, the framework's own services (`micro.*`) and `Debug.*` endpoints are not
//! tools unless `--allow` names them. With `--allow`, only the services (`SERVICE`) and
//! endpoints (`SERVICE/Endpoint.Name`) it names are.
//!
//! Transports: newline-delimited JSON-RPC on stdin/stdout (the default; logs go to stderr),
//! or the streamable HTTP transport (`--transport http`): `POST /mcp` answers with JSON, without
//! sessions; `GET` is 405 as the protocol allows, and a browser `Origin` other than a loopback
//! one is refused, against DNS rebinding. The protocol revisions with the `initialize`
//! handshake are spoken (2024-11-05 to 2025-11-25).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use micro::registry::{Endpoint, Registry, Value};
use micro::{Client, Error};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

use crate::Failure;
use crate::cli::{McpArgs, McpTransport};
use crate::env::Env;

/// Revisions with the `initialize` handshake, oldest first; the last is offered when the
/// client asks for one we do not know.
const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Longest tool name many clients accept.
const MAX_NAME: usize = 64;

/// Requests from stdin handled at once; reading waits while this many are in flight.
const IN_FLIGHT: usize = 64;

// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// Serves MCP on the chosen transport until its end (stdin closed) or a signal.
pub(crate) async fn run(env: Env, args: McpArgs) -> Result<(), Failure> {
    let server = Arc::new(Server {
        client: env.client,
        registry: env.registry,
        allow: Allow::parse(&args.allow)?,
        timeout: args.timeout,
        metadata: args.metadata,
    });
    match args.transport {
        McpTransport::Stdio => stdio(server, args.line_limit).await,
        McpTransport::Http => {
            let app = Router::new()
                .route("/mcp", post(http_post).get(http_other).delete(http_other))
                .layer(DefaultBodyLimit::max(args.line_limit))
                .with_state(server);
            crate::http::serve("mcp", &args.address, app).await
        }
    }
}

/// What the allow-list lets through.
#[derive(Debug, Default)]
struct Allow {
    services: HashSet<String>,
    endpoints: HashSet<(String, String)>,
}

impl Allow {
    fn parse(entries: &[String]) -> Result<Self, Failure> {
        let mut allow = Allow::default();
        for entry in entries {
            match entry.split_once('/') {
                Some((service, endpoint)) if !service.is_empty() && !endpoint.is_empty() => {
                    allow
                        .endpoints
                        .insert((service.to_owned(), endpoint.to_owned()));
                }
                None if !entry.is_empty() => {
                    allow.services.insert(entry.clone());
                }
                _ => {
                    return Err(Failure::Usage(format!(
                        "--allow: expected SERVICE or SERVICE/ENDPOINT, got `{entry}`"
                    )));
                }
            }
        }
        Ok(allow)
    }

    fn allows(&self, service: &str, endpoint: &Endpoint) -> bool {
        let named = self
            .endpoints
            .contains(&(service.to_owned(), endpoint.name.clone()));
        let plain = !endpoint.name.starts_with("Debug.")
            && endpoint
                .metadata
                .get("subscriber")
                .is_none_or(|s| s != "true");
        if self.services.is_empty() && self.endpoints.is_empty() {
            plain && !service.starts_with("micro.")
        } else {
            named || (plain && self.services.contains(service))
        }
    }
}

/// How a tool's arguments become the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The arguments object is the request.
    Object,
    /// The request is the `request` argument.
    Wrapped,
    /// The endpoint takes `()`: `null`.
    Nothing,
}

#[derive(Debug)]
struct Tool {
    name: String,
    service: String,
    endpoint: String,
    shape: Shape,
    description: String,
    input_schema: Json,
}

impl Tool {
    fn new(service: &str, endpoint: &Endpoint) -> Self {
        let request = endpoint
            .request
            .clone()
            .unwrap_or_else(|| Value::named("()"));
        let schema = request.json_schema();
        let (shape, input_schema) = if request.type_name == "()" {
            (
                Shape::Nothing,
                json!({ "type": "object", "properties": {} }),
            )
        } else if schema["type"] == "object" {
            (Shape::Object, schema)
        } else {
            (
                Shape::Wrapped,
                json!({
                    "type": "object",
                    "properties": { "request": schema },
                    "required": ["request"],
                }),
            )
        };
        let mut description = endpoint
            .metadata
            .get("description")
            .cloned()
            .unwrap_or_else(|| format!("Calls {} of the {service} service.", endpoint.name));
        if let Some(response) = &endpoint.response {
            description.push_str(&format!("\n\nReplies with {}.", response.type_name));
        }
        Tool {
            name: String::new(),
            service: service.to_owned(),
            endpoint: endpoint.name.clone(),
            shape,
            description,
            input_schema,
        }
    }

    fn listing(&self) -> Json {
        json!({
            "name": self.name,
            "title": format!("{} {}", self.service, self.endpoint),
            "description": self.description,
            "inputSchema": self.input_schema,
        })
    }
}

/// `service_Endpoint_Name` in the characters every client accepts, at most [`MAX_NAME`] long
/// (a long one keeps a hash of the whole).
fn tool_name(service: &str, endpoint: &str) -> String {
    let full = format!("{service}_{endpoint}");
    let name: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() <= MAX_NAME {
        return name;
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{:08x}", &name[..MAX_NAME - 9], hash as u32)
}

#[derive(Debug)]
struct Server {
    client: Client,
    registry: Arc<dyn Registry>,
    allow: Allow,
    timeout: Option<Duration>,
    metadata: Vec<(String, String)>,
}

/// A JSON-RPC error object.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl Server {
    /// The tools, named uniquely, in a stable order. Read from the registry each time, so
    /// that services started since are there.
    async fn tools(&self) -> Result<Vec<Tool>, Error> {
        let mut by_service: BTreeMap<String, BTreeMap<String, Endpoint>> = BTreeMap::new();
        for record in self.registry.list_services().await? {
            let endpoints = by_service.entry(record.name.clone()).or_default();
            for endpoint in record.endpoints {
                endpoints.entry(endpoint.name.clone()).or_insert(endpoint);
            }
        }
        let mut names = HashSet::new();
        let mut tools = Vec::new();
        for (service, endpoints) in &by_service {
            for endpoint in endpoints.values() {
                if !self.allow.allows(service, endpoint) {
                    continue;
                }
                let mut tool = Tool::new(service, endpoint);
                let base = tool_name(service, &endpoint.name);
                let mut name = base.clone();
                let mut n = 2;
                while !names.insert(name.clone()) {
                    name = format!("{}_{n}", &base[..base.len().min(MAX_NAME - 4)]);
                    n += 1;
                }
                tool.name = name;
                tools.push(tool);
            }
        }
        Ok(tools)
    }

    /// Handles one message or batch; `None` when nothing is to be answered (notifications,
    /// responses).
    async fn handle_text(&self, text: &str) -> Option<Json> {
        let message: Json = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                return Some(error_response(
                    Json::Null,
                    &RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
                ));
            }
        };
        match message {
            Json::Array(batch) if !batch.is_empty() => {
                let mut answers = Vec::new();
                for message in batch {
                    answers.extend(self.handle(message).await);
                }
                (!answers.is_empty()).then_some(Json::Array(answers))
            }
            message => self.handle(message).await,
        }
    }

    async fn handle(&self, message: Json) -> Option<Json> {
        let invalid = |id: Json| {
            Some(error_response(
                id,
                &RpcError::new(INVALID_REQUEST, "not a JSON-RPC 2.0 request"),
            ))
        };
        let Json::Object(mut message) = message else {
            return invalid(Json::Null);
        };
        let id = message.remove("id");
        if message.get("jsonrpc").and_then(Json::as_str) != Some("2.0") {
            return invalid(id.unwrap_or(Json::Null));
        }
        let Some(method) = message
            .get("method")
            .and_then(Json::as_str)
            .map(str::to_owned)
        else {
            // A response to a request we never send, or garbage with an id.
            return match id {
                Some(id) if !message.contains_key("result") && !message.contains_key("error") => {
                    invalid(id)
                }
                _ => None,
            };
        };
        // Notifications (initialized, cancelled) need no answer.
        let id = match id {
            None => return None,
            Some(id @ (Json::String(_) | Json::Number(_))) => id,
            Some(_) => return invalid(Json::Null),
        };
        let params = message.remove("params").unwrap_or(Json::Null);
        let result = match method.as_str() {
            "initialize" => Ok(initialize(&params)),
            "ping" => Ok(json!({})),
            "tools/list" => self
                .tools()
                .await
                .map(
                    |tools| json!({ "tools": tools.iter().map(Tool::listing).collect::<Vec<_>>() }),
                )
                .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("{e}"))),
            "tools/call" => self.call(&params).await,
            other => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("method not found: {other}"),
            )),
        };
        Some(match result {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => error_response(id, &e),
        })
    }

    async fn call(&self, params: &Json) -> Result<Json, RpcError> {
        let Some(name) = params.get("name").and_then(Json::as_str) else {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "tools/call needs a tool name",
            ));
        };
        let arguments = match params.get("arguments") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(arguments)) => arguments.clone(),
            Some(_) => {
                return Err(RpcError::new(INVALID_PARAMS, "arguments must be an object"));
            }
        };
        let tools = self
            .tools()
            .await
            .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("{e}")))?;
        let Some(tool) = tools.iter().find(|t| t.name == name) else {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("unknown tool: {name}"),
            ));
        };
        let request = match tool.shape {
            Shape::Object => Json::Object(arguments),
            Shape::Nothing => Json::Null,
            Shape::Wrapped => match arguments.get("request") {
                Some(request) => request.clone(),
                None => {
                    return Ok(tool_error(&Error::bad_request(
                        "micro.mcp",
                        format_args!("{name} needs the argument `request`"),
                    )));
                }
            },
        };
        let mut call = self
            .client
            .call_json(&tool.service, &tool.endpoint, request);
        for (k, v) in &self.metadata {
            call = call.metadata(k.clone(), v.clone());
        }
        if let Some(timeout) = self.timeout {
            call = call.timeout(timeout);
        }
        Ok(match call.await {
            Ok(reply) => {
                let mut result = json!({
                    "content": [{ "type": "text", "text": reply.to_string() }],
                    "isError": false,
                });
                if reply.is_object() {
                    result["structuredContent"] = reply;
                }
                result
            }
            Err(e) => tool_error(&e),
        })
    }
}

fn initialize(params: &Json) -> Json {
    let asked = params.get("protocolVersion").and_then(Json::as_str);
    let version = asked
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(VERSIONS[VERSIONS.len() - 1]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "micro", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Each tool calls one endpoint of a microservice found in the micro \
                         registry. Tool errors carry micro's error JSON: id, code, detail, status.",
    })
}

fn tool_error(err: &Error) -> Json {
    json!({ "content": [{ "type": "text", "text": format!("{err:#}") }], "isError": true })
}

fn error_response(id: Json, err: &RpcError) -> Json {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": err.code, "message": err.message },
    })
}

/// Newline-delimited JSON-RPC on stdin and stdout, requests handled concurrently; ends when
/// stdin closes (after answering what was asked) or on a signal.
async fn stdio(server: Arc<Server>, line_limit: usize) -> Result<(), Failure> {
    let mut input = FramedRead::new(
        tokio::io::stdin(),
        LinesCodec::new_with_max_length(line_limit),
    );
    let (tx, mut rx) = mpsc::channel::<String>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        let mut output = FramedWrite::new(tokio::io::stdout(), LinesCodec::new());
        while let Some(line) = rx.recv().await {
            if output.send(line).await.is_err() {
                break;
            }
        }
    });
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let shutdown = crate::http::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let line = tokio::select! {
            () = &mut shutdown => break,
            line = input.next() => line,
        };
        let line = match line {
            None => break,
            Some(Ok(line)) => line,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                // The codec skips the rest of the line; the client hears why.
                let answer = error_response(
                    Json::Null,
                    &RpcError::new(
                        INVALID_REQUEST,
                        format!("message longer than {line_limit} bytes"),
                    ),
                );
                let _ = tx.send(answer.to_string()).await;
                continue;
            }
            Some(Err(LinesCodecError::Io(e))) => return Err(e.into()),
        };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (server, tx) = (server.clone(), tx.clone());
        tokio::spawn(async move {
            if let Some(answer) = server.handle_text(&line).await {
                let _ = tx.send(answer.to_string()).await;
            }
            drop(permit);
        });
    }
    // Answer what is in flight before leaving.
    let _ = limit.acquire_many(IN_FLIGHT as u32).await;
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// `POST /mcp`: one message or a batch in, JSON out (202 with no body when only notifications
/// or responses came).
async fn http_post(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !is_loopback_origin(origin.to_str().unwrap_or("")) {
            return plain(StatusCode::FORBIDDEN, "origin not allowed");
        }
    }
    if let Some(version) = headers.get("mcp-protocol-version") {
        if !VERSIONS.contains(&version.to_str().unwrap_or("")) {
            return plain(StatusCode::BAD_REQUEST, "unsupported MCP-Protocol-Version");
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => return plain(e.status(), &e.body_text()),
    };
    let text = String::from_utf8_lossy(&body);
    match server.handle_text(&text).await {
        None => StatusCode::ACCEPTED.into_response(),
        Some(answer) => {
            let status = if answer
                .get("error")
                .is_some_and(|e| e["code"] == PARSE_ERROR)
            {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
    }
}

/// `GET` (a server-sent event stream) and `DELETE` (a session's end): neither is offered.
async fn http_other() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "use POST",
    )
        .into_response()
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

fn is_loopback_origin(origin: &str) -> bool {
    let host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_use_the_safe_alphabet_and_fit_64_characters() {
        assert_eq!(
            tool_name("shippy.service.consignment", "Shipping.CreateConsignment"),
            "shippy_service_consignment_Shipping_CreateConsignment"
        );
        let long = tool_name(&"s".repeat(80), "A.B");
        assert_eq!(long.len(), MAX_NAME);
        assert_ne!(long, tool_name(&"s".repeat(80), "A.C"));
    }

    #[test]
    fn the_allow_list_names_services_or_endpoints() {
        let endpoint = |name: &str| Endpoint {
            name: name.into(),
            ..Default::default()
        };
        let open = Allow::default();
        assert!(open.allows("greeter", &endpoint("Greeter.Hello")));
        assert!(!open.allows("greeter", &endpoint("Debug.Health")));
        assert!(!open.allows("micro.broker", &endpoint("Broker.Deliver")));
        let allow = Allow::parse(&["greeter".into(), "other/Debug.Health".into()]).unwrap();
        assert!(allow.allows("greeter", &endpoint("Greeter.Hello")));
        assert!(!allow.allows("greeter", &endpoint("Debug.Health")));
        assert!(allow.allows("other", &endpoint("Debug.Health")));
        assert!(!allow.allows("other", &endpoint("Other.Call")));
        assert!(Allow::parse(&["a/".into()]).is_err());
    }

    #[test]
    fn only_loopback_origins_pass() {
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://[::1]:8",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://127.0.0.1.evil.example",
            "null",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
