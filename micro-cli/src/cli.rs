//! The command line: what clap parses.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Settings come from MICRO_* variables, overridden by the flags above, exactly as services take
them: run `micro` with the same environment as your services and it sees what they see.

Exit codes:
  0  success
  1  the operation failed; micro's error JSON ({\"id\",\"code\",\"detail\",\"status\"}) is on stderr
  2  the command line is wrong: an unknown command or flag, a request that is not JSON,
     a MICRO_* variable or flag whose value is not acceptable";

/// The `micro` toolkit: inspect, call and serve services built with micro.
#[derive(Debug, Parser)]
#[command(name = "micro", version, after_help = AFTER_HELP, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The framework's settings that matter to a client, under their go-micro names.
///
/// clap only collects them; [`micro::config::Options::resolve`] validates them and merges
/// them over the `MICRO_*` variables, as it does for services.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Framework options (the same as services take)")]
pub(crate) struct Global {
    /// Registry backend: local (default), memory, etcd, nats, mdns [env: MICRO_REGISTRY]
    #[arg(long, global = true, value_name = "NAME")]
    registry: Option<String>,
    /// Registry address; for local, the directory [env: MICRO_REGISTRY_ADDRESS]
    #[arg(long = "registry_address", global = true, value_name = "ADDRESS")]
    registry_address: Option<String>,
    /// Broker for `publish`: embedded (default), memory, nats, jetstream [env: MICRO_BROKER]
    #[arg(long, global = true, value_name = "NAME")]
    broker: Option<String>,
    /// Broker address [env: MICRO_BROKER_ADDRESS]
    #[arg(long = "broker_address", global = true, value_name = "ADDRESS")]
    broker_address: Option<String>,
    /// Call timeout, such as 500ms or 5s (default 5s) [env: MICRO_CLIENT_REQUEST_TIMEOUT]
    #[arg(
        long = "client_request_timeout",
        global = true,
        value_name = "DURATION"
    )]
    client_request_timeout: Option<String>,
    /// Retries of calls that provably did not run (default 1) [env: MICRO_CLIENT_RETRIES]
    #[arg(long = "client_retries", global = true, value_name = "N")]
    client_retries: Option<String>,
    /// Connections kept per node (default 1) [env: MICRO_CLIENT_POOL_SIZE]
    #[arg(long = "client_pool_size", global = true, value_name = "N")]
    client_pool_size: Option<String>,
    /// Bearer token sent with every call (`Authorization: Bearer …`) [env: MICRO_AUTH_TOKEN]
    #[arg(long = "token", global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// CA certificates (PEM file) to verify services that serve TLS [env: MICRO_TLS_CA]
    #[arg(long = "tls_ca", global = true, value_name = "FILE")]
    tls_ca: Option<String>,
    /// Certificate (PEM file) to present to services that require one [env: MICRO_TLS_CERT]
    #[arg(long = "tls_cert", global = true, value_name = "FILE")]
    tls_cert: Option<String>,
    /// The certificate's private key (PEM file) [env: MICRO_TLS_KEY]
    #[arg(long = "tls_key", global = true, value_name = "FILE")]
    tls_key: Option<String>,
}

impl Global {
    /// The flags that were given, as an argument list for
    /// [`Options::resolve`](micro::config::Options::resolve).
    pub(crate) fn to_args(&self) -> Vec<String> {
        let flags = [
            ("registry", &self.registry),
            ("registry_address", &self.registry_address),
            ("broker", &self.broker),
            ("broker_address", &self.broker_address),
            ("client_request_timeout", &self.client_request_timeout),
            ("client_retries", &self.client_retries),
            ("client_pool_size", &self.client_pool_size),
            ("auth_token", &self.token),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ];
        std::iter::once("micro".to_owned())
            .chain(
                flags
                    .into_iter()
                    .filter_map(|(name, value)| Some(format!("--{name}={}", value.as_ref()?))),
            )
            .collect()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the services in the registry: name, version, nodes and endpoints.
    Services {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show a service: each version with its nodes and its endpoints' request and response types.
    Describe {
        /// The service name, such as greeter.
        service: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Call an endpoint with a JSON request and print the JSON reply on one line.
    ///
    /// On failure the error (micro's error JSON) goes to stderr and the exit code is 1.
    #[command(after_help = "Example:\n  micro call greeter Greeter.SayHello '{\"name\":\"Ada\"}'")]
    Call(CallArgs),
    /// Open a stream: print each reply as a line of JSON (NDJSON); send the JSON arguments as
    /// requests, or, with none, each line of stdin as it is read.
    ///
    /// The endpoint's shape (server, client or bidirectional stream) comes from the registry.
    /// A server stream takes one request; a client stream prints its single reply. An error
    /// mid-stream goes to stderr and the exit code is 1, after the replies before it.
    #[command(
        after_help = "Examples:\n  micro stream feed Feed.Count '{\"n\":3}'\n  \
        printf '1\\n2\\n' | micro stream feed Feed.Sum"
    )]
    Stream(StreamArgs),
    /// Publish a JSON event on a topic, through the broker services use.
    #[command(after_help = "Example:\n  micro publish orders.created '{\"id\":\"o-1\"}'")]
    Publish(PublishArgs),
    /// Ask every node of a service for its health (Debug.Health); exit 1 unless all are ok.
    Health {
        /// The service name.
        service: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show every node's counters (Debug.Stats): calls, errors, in-flight requests per handler.
    Stats {
        /// The service name.
        service: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print registry events (create, update, delete) as they happen, until interrupted.
    ///
    /// Once the watch is in place, a note goes to stderr (and the table's header to stdout):
    /// every change after it is reported. With `--output json`, one event per line.
    Watch {
        /// Only this service's events.
        service: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Serve the HTTP gateway: `POST /{service}/{endpoint}` with a JSON body calls the endpoint;
    /// `POST /event/{topic}` publishes the body on the topic.
    ///
    /// The reply is the endpoint's JSON reply; a failure answers with micro's error JSON and
    /// its code as the HTTP status. `GET /health` answers while the registry is reachable.
    Api(ApiArgs),
    /// Serve the web dashboard: services, nodes, endpoints, a form to call them, live stats.
    Web(WebArgs),
    /// Serve the services in the registry as tools for AI agents (Model Context Protocol).
    ///
    /// Each endpoint is a tool: the handler's doc comment describes it, its request's JSON
    /// Schema is the input schema, and a micro error is a tool error. Over stdin/stdout by
    /// default, for an agent that starts `micro mcp` itself; `--transport http` serves the
    /// streamable HTTP transport at `POST /mcp`.
    #[command(after_help = "Example, in an MCP client's configuration:\n  \
        {\"command\": \"micro\", \"args\": [\"mcp\", \"--allow\", \"shippy.service.consignment\"]}")]
    Mcp(McpArgs),
    /// Write a new service crate: a service, a typed client call, a subscriber, a test and a
    /// README; `cargo run` in it serves the service with no other setup.
    #[command(after_help = "Example:\n  micro new greeter && cd greeter && cargo run")]
    New(NewArgs),
}

/// `--output`.
#[derive(Debug, Args)]
pub(crate) struct OutputArg {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

/// How a command prints what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns with a header line.
    Table,
    /// JSON, with the registry's go-micro field names.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The service name.
    pub(crate) service: String,
    /// The endpoint, such as Greeter.SayHello.
    pub(crate) endpoint: String,
    /// The request as JSON; `-` reads it from stdin; none sends null.
    pub(crate) request: Option<String>,
    /// Metadata for the handler's context (repeatable).
    #[arg(long, short, value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) metadata: Vec<(String, String)>,
    /// Call this node address instead of choosing one through the registry.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) node: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    /// The service name.
    pub(crate) service: String,
    /// The endpoint, such as Feed.Count.
    pub(crate) endpoint: String,
    /// Requests as JSON: one for a server stream; for the others, none reads them from stdin.
    pub(crate) requests: Vec<String>,
    /// The endpoint's shape when the registry does not say: server, client or bidi.
    #[arg(long, value_parser = ["server", "client", "bidi"])]
    pub(crate) kind: Option<String>,
    /// Metadata for the handler's context (repeatable).
    #[arg(long, short, value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) metadata: Vec<(String, String)>,
    /// Open the stream on this node address instead of choosing one through the registry.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) node: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The topic, such as orders.created.
    pub(crate) topic: String,
    /// The event as JSON; `-` reads it from stdin.
    pub(crate) event: String,
    /// Message headers (repeatable).
    #[arg(long, short, value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) metadata: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// Address to listen on: `:PORT` for every interface, `HOST:PORT`, `[::]:PORT`; port 0
    /// picks a free one. The bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub(crate) address: String,
    /// Largest request body accepted: bytes, or with a KiB/MiB suffix.
    #[arg(long = "body_limit", default_value = "1MiB", value_name = "SIZE", value_parser = size)]
    pub(crate) body_limit: usize,
    /// Longest a call may take, such as 2s (default: --client_request_timeout).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<Duration>,
    /// Only these services are reachable; others get 403 (repeatable or comma-separated).
    #[arg(long, value_name = "SERVICE", value_delimiter = ',')]
    pub(crate) allow: Vec<String>,
    /// Only these topics take events at `POST /event/{topic}`; others get 403 (repeatable or
    /// comma-separated). With `--allow` and without this, no topic does.
    #[arg(long = "allow_topics", value_name = "TOPIC", value_delimiter = ',')]
    pub(crate) allow_topics: Vec<String>,
    /// Answer cross-origin requests from these origins, or `*` for any (repeatable or
    /// comma-separated). Without it, no CORS headers are sent.
    #[arg(long, value_name = "ORIGIN", value_delimiter = ',')]
    pub(crate) cors: Vec<String>,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
}

/// What the gateway and the dashboard let in (see `http::Guard`).
#[derive(Debug, Args)]
pub(crate) struct GuardArgs {
    /// Host names this server answers to besides localhost and IP addresses; requests naming
    /// another `Host` get 403, so a DNS-rebound web page reaches nothing (repeatable or
    /// comma-separated).
    #[arg(long = "allowed_hosts", value_name = "HOST", value_delimiter = ',')]
    pub(crate) allowed_hosts: Vec<String>,
    /// Refuse requests without `Authorization: Bearer <token>` (401). The token is passed on
    /// with each call; the services verify it.
    #[arg(long = "require_token")]
    pub(crate) require_token: bool,
    /// Requests handled at once; past it, 503.
    #[arg(long = "max_concurrent", default_value_t = 1024, value_name = "N")]
    pub(crate) max_concurrent: usize,
    /// Requests accepted per second, 0 for no limit; past it, 429.
    #[arg(long = "rate_limit", default_value_t = 0, value_name = "N")]
    pub(crate) rate_limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct WebArgs {
    /// Address to listen on: `:PORT` for every interface, `HOST:PORT`, `[::]:PORT`; port 0
    /// picks a free one. The bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8082", value_name = "HOST:PORT")]
    pub(crate) address: String,
    /// Longest a call from the dashboard may take, such as 2s (default: --client_request_timeout).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<Duration>,
    /// Largest request body accepted: bytes, or with a KiB/MiB suffix.
    #[arg(long = "body_limit", default_value = "1MiB", value_name = "SIZE", value_parser = size)]
    pub(crate) body_limit: usize,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// stdio: JSON-RPC lines on stdin/stdout; http: the streamable HTTP transport.
    #[arg(long, value_enum, default_value_t = McpTransport::Stdio)]
    pub(crate) transport: McpTransport,
    /// With `--transport http`: where to listen; port 0 picks a free one. The bound address
    /// is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8083", value_name = "HOST:PORT")]
    pub(crate) address: String,
    /// Only these are tools: SERVICE for its endpoints, SERVICE/ENDPOINT for one (repeatable
    /// or comma-separated). Without it, every endpoint but subscribers, `Debug.*` and `micro.*`.
    #[arg(long, value_name = "SERVICE[/ENDPOINT]", value_delimiter = ',')]
    pub(crate) allow: Vec<String>,
    /// Longest a call may take, such as 2s (default: --client_request_timeout).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<Duration>,
    /// Metadata sent with every call, such as a token (repeatable).
    #[arg(long, short, value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) metadata: Vec<(String, String)>,
    /// Largest message accepted: bytes, or with a KiB/MiB suffix.
    #[arg(long = "body_limit", default_value = "4MiB", value_name = "SIZE", value_parser = size)]
    pub(crate) line_limit: usize,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The crate's name, also its service's name: lowercase letters, digits, - and _.
    pub(crate) name: String,
    /// Where to write it (default: ./NAME); must not exist.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Depend on the micro crate at this path instead of the released version. Without it,
    /// a crate written inside a checkout of micro uses that checkout's.
    #[arg(long = "micro_path", alias = "micro-path", value_name = "DIR")]
    pub(crate) micro_path: Option<PathBuf>,
}

/// How `micro mcp` talks to its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum McpTransport {
    /// Newline-delimited JSON-RPC on stdin and stdout.
    Stdio,
    /// Streamable HTTP: `POST /mcp`.
    Http,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    micro::config::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a duration above zero such as 500ms or 5s, got `{text}`"))
}

fn size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => 0,
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a size such as 65536, 64KiB or 1MiB, got `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_pairs_parse() {
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("100"), Ok(100));
        assert!(size("0").is_err() && size("lots").is_err() && size("1GiB").is_err());
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(key_value("novalue").is_err());
    }

    #[test]
    fn given_flags_are_passed_on_to_the_framework() {
        let cli = Cli::parse_from([
            "micro",
            "services",
            "--registry_address",
            "/tmp/r",
            "--client_retries=3",
        ]);
        assert_eq!(
            cli.global.to_args(),
            ["micro", "--registry_address=/tmp/r", "--client_retries=3"]
        );
    }
}
