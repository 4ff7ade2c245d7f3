//! Configuration from the environment and the command line, with go-micro's names.
//!
//! Every setting can come from three places; later ones win:
//!
//! 1. the builder ([`Service::new`](crate::Service::new)`(..).version(..)`…),
//! 2. an environment variable `MICRO_*`,
//! 3. a command-line flag `--*` (as `--name value` or `--name=value`).
//!
//! Flags micro does not know are left alone for the program's own parser. A value that does
//! not parse, or names a backend that does not exist, stops start-up with an error naming the
//! variable or flag and what it accepts. [`help`] lists everything; [`Service::run`](crate::Service::run)
//! prints it for `--help`.
//!
//! | variable | flag | value |
//! |----------|------|-------|
//! | `MICRO_SERVER_NAME` | `--server_name` | service name |
//! | `MICRO_SERVER_VERSION` | `--server_version` | version string |
//! | `MICRO_SERVER_ADDRESS` | `--server_address` | listen address: `:port` (every interface), `host:port`, `[::]:port` (port 0: any; see [`addr`](crate::addr)) |
//! | `MICRO_SERVER_ADVERTISE` | `--server_advertise` | address to register instead of the bound one |
//! | `MICRO_SERVER_INTERFACE` | `--server_interface` | for a wildcard listen address, the interface whose address is registered ([rule](crate::addr)) |
//! | `MICRO_SERVER_METADATA` | `--server_metadata` | `key=value`, comma-separated (the flag may repeat) |
//! | `MICRO_SERVER_DRAIN` | `--server_drain` | how long to keep serving after deregistering, on shutdown |
//! | `MICRO_SERVER_SHUTDOWN_TIMEOUT` | `--server_shutdown_timeout` | longest wait for in-flight calls on shutdown |
//! | `MICRO_SERVER_MAX_CONNECTIONS` | `--server_max_connections` | connections open at once (default 8192) |
//! | `MICRO_SERVER_MAX_CONNECTIONS_PER_IP` | `--server_max_connections_per_ip` | connections open at once from one IP address (default 1024) |
//! | `MICRO_SERVER_MAX_IN_FLIGHT` | `--server_max_in_flight` | calls in flight per connection before the server stops reading it (default 4096) |
//! | `MICRO_SERVER_WRITE_BUFFER` | `--server_write_buffer` | reply bytes queued per connection before the server stops reading it (default `8MiB`) |
//! | `MICRO_SERVER_IDLE_TIMEOUT` | `--server_idle_timeout` | a connection with nothing in flight this long is asked to go away; a reply write stalled this long closes it (default `5m`) |
//! | `MICRO_SERVER_FRAME_TIMEOUT` | `--server_frame_timeout` | a frame must arrive whole this long after its first byte (default `30s`) |
//! | `MICRO_REGISTRY` | `--registry` | `local` (default), `memory`; with features: `etcd`, `mdns`, `nats` |
//! | `MICRO_REGISTRY_ADDRESS` | `--registry_address` | backend address; for `local`, the directory (it must be this user's and not writable by others); for `mdns`, `loopback` keeps it on 127.0.0.1 |
//! | `MICRO_REGISTER_TTL` | `--register_ttl` | registration lifetime |
//! | `MICRO_REGISTER_INTERVAL` | `--register_interval` | re-registration period (must be below the TTL) |
//! | `MICRO_CLIENT_REQUEST_TIMEOUT` | `--client_request_timeout` | default call timeout |
//! | `MICRO_CLIENT_RETRIES` | `--client_retries` | retries of calls that provably did not run |
//! | `MICRO_CLIENT_POOL_SIZE` | `--client_pool_size` | connections per node |
//! | `MICRO_TRANSPORT` | `--transport` | `tcp` (default), `memory` |
//! | `MICRO_BROKER` | `--broker` | `embedded` (default), `memory`; with feature `nats`: `nats`, `jetstream` |
//! | `MICRO_BROKER_ADDRESS` | `--broker_address` | its address; for `embedded`, where its inbox listens |
//! | `MICRO_BROKER_ADVERTISE` | `--broker_advertise` | for `embedded`, the inbox address to register instead of the bound one (behind NAT, port mapping) |
//! | `MICRO_TLS_CERT` | `--tls_cert` | this node's certificate chain, a PEM file (feature `tls`; with `MICRO_TRANSPORT=tls`, services serve it) |
//! | `MICRO_TLS_KEY` | `--tls_key` | the certificate's private key, a PEM file |
//! | `MICRO_TLS_CA` | `--tls_ca` | the CA certificates that sign peers' certificates, a PEM file: clients dial nodes registered with `transport=tls` with it |
//! | `MICRO_TLS_CLIENT_AUTH` | `--tls_client_auth` | `true`: mutual TLS, clients must present a certificate signed by the CA (default `false`) |
//! | `MICRO_AUTH_TOKEN` | `--auth_token` | a bearer token this program's clients attach to every call (`Authorization: Bearer …`) |
//! | `MICRO_AUTH` | `--auth` | `none` (default); with feature `jwt`: `jwt`, every service checks callers' bearer tokens (see [`auth`](crate::auth)) |
//! | `MICRO_AUTH_KEY` | `--auth_key` | with `MICRO_AUTH=jwt`, a file: a PEM public key (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA) or a shared HS256 secret of at least 32 bytes |
//! | `MICRO_AUTH_ISSUER` | `--auth_issuer` | with `MICRO_AUTH=jwt`, the issuer tokens must name |
//! | `MICRO_AUTH_PUBLIC` | `--auth_public` | with `MICRO_AUTH=jwt`, endpoints anyone may call without a token, comma-separated (`Debug.Health,Greeter.*`); every other endpoint takes any valid token |
//! | `MICRO_METRICS_ADDRESS` | `--metrics_address` | with feature `prometheus`: where to serve `/metrics`, `/health/live` and `/health/ready` over HTTP (`:port`, `host:port`; unset: nowhere; see [`metrics`](crate::metrics)) |
//! | `MICRO_LOG_FORMAT` | `--log_format` | `text` (default) or `json`: how [`Service::run`](crate::Service::run)'s default subscriber prints (see [`telemetry`](crate::telemetry)) |
//!
//! Sizes are bytes, or a number with a unit (`512KiB`, `8MiB`, `1GiB`).
//!
//! Durations are a number with a unit (`500ms`, `30s`, `5m`, `1h`); a bare number is seconds,
//! as go-micro's `--register_ttl` takes it.
//!
//! ```
//! use std::time::Duration;
//! use micro::config::Options;
//!
//! let env = |name: &str| (name == "MICRO_REGISTER_TTL").then(|| "30".to_string());
//! let args = ["shippy", "--register_ttl=10s", "--verbose"].map(String::from);
//! let opts = Options::resolve(env, &args).unwrap();
//! assert_eq!(opts.register_ttl, Some(Duration::from_secs(10))); // the flag wins
//!
//! let bad = Options::resolve(|n: &str| (n == "MICRO_REGISTRY").then(|| "zookeeper".into()), &[]);
//! assert!(bad
//!     .unwrap_err()
//!     .to_string()
//!     .starts_with("invalid MICRO_REGISTRY `zookeeper`: expected one of local, memory"));
//! ```

use std::fmt;
use std::time::Duration;

/// Settings from the environment and command line; `None` where neither says anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `MICRO_SERVER_NAME`, `--server_name`.
    pub server_name: Option<String>,
    /// `MICRO_SERVER_VERSION`, `--server_version`.
    pub server_version: Option<String>,
    /// `MICRO_SERVER_ADDRESS`, `--server_address`.
    pub server_address: Option<String>,
    /// `MICRO_SERVER_ADVERTISE`, `--server_advertise`.
    pub server_advertise: Option<String>,
    /// `MICRO_SERVER_INTERFACE`, `--server_interface`.
    pub server_interface: Option<String>,
    /// `MICRO_SERVER_METADATA`, `--server_metadata`.
    pub server_metadata: Vec<(String, String)>,
    /// `MICRO_SERVER_DRAIN`, `--server_drain`.
    pub server_drain: Option<Duration>,
    /// `MICRO_SERVER_SHUTDOWN_TIMEOUT`, `--server_shutdown_timeout`.
    pub server_shutdown_timeout: Option<Duration>,
    /// `MICRO_SERVER_MAX_CONNECTIONS`, `--server_max_connections`.
    pub server_max_connections: Option<usize>,
    /// `MICRO_SERVER_MAX_CONNECTIONS_PER_IP`, `--server_max_connections_per_ip`.
    pub server_max_connections_per_ip: Option<usize>,
    /// `MICRO_SERVER_MAX_IN_FLIGHT`, `--server_max_in_flight`.
    pub server_max_in_flight: Option<usize>,
    /// `MICRO_SERVER_WRITE_BUFFER`, `--server_write_buffer`, in bytes.
    pub server_write_buffer: Option<usize>,
    /// `MICRO_SERVER_IDLE_TIMEOUT`, `--server_idle_timeout`.
    pub server_idle_timeout: Option<Duration>,
    /// `MICRO_SERVER_FRAME_TIMEOUT`, `--server_frame_timeout`.
    pub server_frame_timeout: Option<Duration>,
    /// `MICRO_REGISTRY`, `--registry`.
    pub registry: Option<String>,
    /// `MICRO_REGISTRY_ADDRESS`, `--registry_address`.
    pub registry_address: Option<String>,
    /// `MICRO_REGISTER_TTL`, `--register_ttl`.
    pub register_ttl: Option<Duration>,
    /// `MICRO_REGISTER_INTERVAL`, `--register_interval`.
    pub register_interval: Option<Duration>,
    /// `MICRO_CLIENT_REQUEST_TIMEOUT`, `--client_request_timeout`.
    pub client_request_timeout: Option<Duration>,
    /// `MICRO_CLIENT_RETRIES`, `--client_retries`.
    pub client_retries: Option<u32>,
    /// `MICRO_CLIENT_POOL_SIZE`, `--client_pool_size`.
    pub client_pool_size: Option<usize>,
    /// `MICRO_TRANSPORT`, `--transport`.
    pub transport: Option<String>,
    /// `MICRO_BROKER`, `--broker`.
    pub broker: Option<String>,
    /// `MICRO_BROKER_ADDRESS`, `--broker_address`.
    pub broker_address: Option<String>,
    /// `MICRO_BROKER_ADVERTISE`, `--broker_advertise`.
    pub broker_advertise: Option<String>,
    /// `MICRO_TLS_CERT`, `--tls_cert`.
    pub tls_cert: Option<String>,
    /// `MICRO_TLS_KEY`, `--tls_key`.
    pub tls_key: Option<String>,
    /// `MICRO_TLS_CA`, `--tls_ca`.
    pub tls_ca: Option<String>,
    /// `MICRO_TLS_CLIENT_AUTH`, `--tls_client_auth`.
    pub tls_client_auth: Option<bool>,
    /// `MICRO_AUTH_TOKEN`, `--auth_token`.
    pub auth_token: Option<String>,
    /// `MICRO_AUTH`, `--auth`: `none` or `jwt`.
    pub auth: Option<String>,
    /// `MICRO_AUTH_KEY`, `--auth_key`: the file of the key that verifies tokens.
    pub auth_key: Option<String>,
    /// `MICRO_AUTH_ISSUER`, `--auth_issuer`.
    pub auth_issuer: Option<String>,
    /// `MICRO_AUTH_PUBLIC`, `--auth_public`: endpoint patterns open without a token.
    pub auth_public: Vec<String>,
    /// `MICRO_METRICS_ADDRESS`, `--metrics_address`.
    pub metrics_address: Option<String>,
    /// `MICRO_LOG_FORMAT`, `--log_format`.
    pub log_format: Option<crate::telemetry::LogFormat>,
    /// `--help` or `-h` was given.
    pub help: bool,
}

/// A setting whose value is not acceptable.
///
/// ```
/// let err = micro::config::Options::resolve(|_: &str| None, &["x".into(), "--client_retries=lots".into()])
///     .unwrap_err();
/// assert_eq!(err.source(), "--client_retries");
/// assert_eq!(err.to_string(), "invalid --client_retries `lots`: expected a whole number");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    source: String,
    value: String,
    expected: String,
}

impl ConfigError {
    /// The variable or flag that held the value, such as `MICRO_REGISTRY` or `--registry`.
    ///
    /// See the [type-level example](Self).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} `{}`: expected {}",
            self.source, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for crate::Error {
    fn from(err: ConfigError) -> Self {
        crate::Error::bad_request("micro.config", err)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Address,
    Metadata,
    Duration,
    Count,
    Size,
    Bool,
    OneOf(&'static [&'static str]),
    /// Comma-separated, non-empty items.
    List,
}

struct Spec {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

/// Registry backends this build knows.
pub const REGISTRIES: &[&str] = &[
    "local",
    "memory",
    #[cfg(feature = "etcd")]
    "etcd",
    #[cfg(feature = "mdns")]
    "mdns",
    #[cfg(feature = "nats")]
    "nats",
];
/// Transports this build knows.
pub const TRANSPORTS: &[&str] = &[
    "tcp",
    "memory",
    #[cfg(feature = "tls")]
    "tls",
];
/// Brokers this build knows.
#[cfg(not(feature = "nats"))]
pub const BROKERS: &[&str] = &["embedded", "memory"];
/// Brokers this build knows.
#[cfg(feature = "nats")]
pub const BROKERS: &[&str] = &["embedded", "memory", "nats", "jetstream"];
/// Log formats.
pub const LOG_FORMATS: &[&str] = &["text", "json"];
/// Ways a service can check its callers, in this build.
pub const AUTHS: &[&str] = &[
    "none",
    #[cfg(feature = "jwt")]
    "jwt",
];

const SPECS: &[Spec] = &[
    Spec {
        name: "server_name",
        kind: Kind::Text,
        help: "service name",
    },
    Spec {
        name: "server_version",
        kind: Kind::Text,
        help: "service version",
    },
    Spec {
        name: "server_address",
        kind: Kind::Address,
        help: "address to listen on (:port for every interface, host:port; port 0 picks one)",
    },
    Spec {
        name: "server_advertise",
        kind: Kind::Address,
        help: "address to register, when it differs from the bound one",
    },
    Spec {
        name: "server_interface",
        kind: Kind::Text,
        help: "interface whose address to register when listening on every interface",
    },
    Spec {
        name: "server_metadata",
        kind: Kind::Metadata,
        help: "metadata to register, key=value[,key=value]",
    },
    Spec {
        name: "server_drain",
        kind: Kind::Duration,
        help: "on shutdown, how long to keep serving after deregistering",
    },
    Spec {
        name: "server_shutdown_timeout",
        kind: Kind::Duration,
        help: "on shutdown, longest wait for in-flight calls",
    },
    Spec {
        name: "server_max_connections",
        kind: Kind::Count,
        help: "connections open at once",
    },
    Spec {
        name: "server_max_connections_per_ip",
        kind: Kind::Count,
        help: "connections open at once from one IP address",
    },
    Spec {
        name: "server_max_in_flight",
        kind: Kind::Count,
        help: "calls in flight per connection before reading pauses",
    },
    Spec {
        name: "server_write_buffer",
        kind: Kind::Size,
        help: "reply bytes queued per connection before reading pauses",
    },
    Spec {
        name: "server_idle_timeout",
        kind: Kind::Duration,
        help: "idle time before a connection is asked to go away",
    },
    Spec {
        name: "server_frame_timeout",
        kind: Kind::Duration,
        help: "longest time for a frame to arrive once begun",
    },
    Spec {
        name: "registry",
        kind: Kind::OneOf(REGISTRIES),
        help: "registry backend",
    },
    Spec {
        name: "registry_address",
        kind: Kind::Text,
        help: "registry address (local: a directory)",
    },
    Spec {
        name: "register_ttl",
        kind: Kind::Duration,
        help: "how long a registration lives unless renewed",
    },
    Spec {
        name: "register_interval",
        kind: Kind::Duration,
        help: "how often to renew the registration",
    },
    Spec {
        name: "client_request_timeout",
        kind: Kind::Duration,
        help: "default call timeout",
    },
    Spec {
        name: "client_retries",
        kind: Kind::Count,
        help: "retries of calls that provably did not run",
    },
    Spec {
        name: "client_pool_size",
        kind: Kind::Count,
        help: "connections kept per node",
    },
    Spec {
        name: "transport",
        kind: Kind::OneOf(TRANSPORTS),
        help: "transport",
    },
    Spec {
        name: "broker",
        kind: Kind::OneOf(BROKERS),
        help: "pub/sub broker",
    },
    Spec {
        name: "broker_address",
        kind: Kind::Text,
        help: "broker address",
    },
    Spec {
        name: "broker_advertise",
        kind: Kind::Address,
        help: "embedded broker's inbox address to register, when it differs from the bound one",
    },
    Spec {
        name: "tls_cert",
        kind: Kind::Text,
        help: "TLS certificate chain (PEM file)",
    },
    Spec {
        name: "tls_key",
        kind: Kind::Text,
        help: "TLS private key (PEM file)",
    },
    Spec {
        name: "tls_ca",
        kind: Kind::Text,
        help: "CA certificates that sign peers' certificates (PEM file)",
    },
    Spec {
        name: "tls_client_auth",
        kind: Kind::Bool,
        help: "require client certificates (mutual TLS)",
    },
    Spec {
        name: "auth_token",
        kind: Kind::Text,
        help: "bearer token attached to every outgoing call",
    },
    Spec {
        name: "auth",
        kind: Kind::OneOf(AUTHS),
        help: "how services check callers' bearer tokens (jwt: feature jwt)",
    },
    Spec {
        name: "auth_key",
        kind: Kind::Text,
        help: "file of the key verifying tokens: PEM public key or shared secret",
    },
    Spec {
        name: "auth_issuer",
        kind: Kind::Text,
        help: "issuer that tokens must name",
    },
    Spec {
        name: "auth_public",
        kind: Kind::List,
        help: "endpoints callable without a token, comma-separated",
    },
    Spec {
        name: "metrics_address",
        kind: Kind::Address,
        help: "HTTP address for /metrics and /health/* (feature prometheus)",
    },
    Spec {
        name: "log_format",
        kind: Kind::OneOf(LOG_FORMATS),
        help: "format of the default log lines",
    },
];

fn env_name(flag: &str) -> String {
    format!("MICRO_{}", flag.to_ascii_uppercase())
}

impl Options {
    /// Reads this process's environment and command line.
    ///
    /// # Errors
    /// The first setting whose value is not acceptable.
    ///
    /// ```
    /// let opts = micro::config::Options::from_process().unwrap();
    /// # drop(opts);
    /// ```
    pub fn from_process() -> Result<Self, ConfigError> {
        let args: Vec<String> = std::env::args().collect();
        Self::resolve(|name: &str| std::env::var(name).ok(), &args)
    }

    /// Reads only this process's environment.
    ///
    /// # Errors
    /// The first variable whose value is not acceptable.
    ///
    /// ```
    /// let opts = micro::config::Options::from_env().unwrap();
    /// # drop(opts);
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::resolve(|name: &str| std::env::var(name).ok(), &[])
    }

    /// Resolves settings from an environment lookup and an argument list (whose first
    /// element, the program name, is skipped). Flags override variables.
    ///
    /// # Errors
    /// The first setting whose value is not acceptable.
    ///
    /// See the [module docs](self) for an example.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        args: &[String],
    ) -> Result<Self, ConfigError> {
        let mut opts = Options::default();
        for spec in SPECS {
            let var = env_name(spec.name);
            if let Some(value) = env(&var) {
                opts.set(spec, &var, &value, false)?;
            }
        }
        let mut flag_metadata = Vec::new();
        let mut args = args.iter().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                opts.help = true;
                continue;
            }
            if arg == "--" {
                break;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (flag, None),
            };
            let Some(spec) = SPECS.iter().find(|s| s.name == name) else {
                continue;
            };
            let source = format!("--{name}");
            let value = match inline {
                Some(v) => v,
                None => args.next().cloned().ok_or_else(|| ConfigError {
                    source: source.clone(),
                    value: String::new(),
                    expected: "a value after the flag".into(),
                })?,
            };
            if matches!(spec.kind, Kind::Metadata) {
                // Repeated flags add up; together they replace the variable's entries.
                flag_metadata.extend(parse_metadata(&value, &source)?);
                continue;
            }
            opts.set(spec, &source, &value, true)?;
        }
        if !flag_metadata.is_empty() {
            opts.server_metadata = flag_metadata;
        }
        if let (Some(ttl), Some(interval)) = (opts.register_ttl, opts.register_interval) {
            if interval >= ttl {
                return Err(ConfigError {
                    source: "MICRO_REGISTER_INTERVAL".into(),
                    value: format!("{interval:?}"),
                    expected: format!("a period shorter than the TTL ({ttl:?})"),
                });
            }
        }
        if opts.auth.as_deref() == Some("jwt") && opts.auth_key.is_none() {
            return Err(ConfigError {
                source: "MICRO_AUTH".into(),
                value: "jwt".into(),
                expected: "MICRO_AUTH_KEY (--auth_key) too: the file of the key verifying tokens"
                    .into(),
            });
        }
        Ok(opts)
    }

    fn set(
        &mut self,
        spec: &Spec,
        source: &str,
        value: &str,
        _flag: bool,
    ) -> Result<(), ConfigError> {
        let err = |expected: &str| ConfigError {
            source: source.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let text = || -> Result<String, ConfigError> {
            let v = value.trim();
            if v.is_empty() {
                Err(err("a non-empty value"))
            } else {
                Ok(v.to_owned())
            }
        };
        match spec.kind {
            Kind::Text => {
                let v = Some(text()?);
                match spec.name {
                    "server_name" => self.server_name = v,
                    "server_version" => self.server_version = v,
                    "server_interface" => self.server_interface = v,
                    "registry_address" => self.registry_address = v,
                    "broker_address" => self.broker_address = v,
                    "tls_cert" => self.tls_cert = v,
                    "tls_key" => self.tls_key = v,
                    "tls_ca" => self.tls_ca = v,
                    "auth_token" => self.auth_token = v,
                    "auth_key" => self.auth_key = v,
                    "auth_issuer" => self.auth_issuer = v,
                    _ => unreachable!("text setting {}", spec.name),
                }
            }
            Kind::Address => {
                let v = text()?;
                if v.starts_with("memory:") {
                    if v.contains(char::is_whitespace) {
                        return Err(err("a memory address without spaces"));
                    }
                } else {
                    let addr = crate::addr::ListenAddr::parse(&v).map_err(|e| match e {
                        crate::addr::AddrError::Invalid { reason, .. } => err(&format!(
                            "host:port, such as 10.0.0.7:8080 or :0 ({reason})"
                        )),
                        other => err(&other.to_string()),
                    })?;
                    if spec.name.ends_with("_advertise") && addr.is_wildcard() {
                        return Err(err(
                            "an address other hosts can dial, such as 10.0.0.7:8080",
                        ));
                    }
                }
                match spec.name {
                    "server_address" => self.server_address = Some(v),
                    "metrics_address" => self.metrics_address = Some(v),
                    "broker_advertise" => self.broker_advertise = Some(v),
                    _ => self.server_advertise = Some(v),
                }
            }
            Kind::Metadata => self.server_metadata = parse_metadata(value, source)?,
            Kind::Duration => {
                let d = parse_duration(value)
                    .ok_or_else(|| err("a duration such as 500ms, 30s or 5m"))?;
                if d.is_zero() && spec.name != "server_drain" {
                    return Err(err("a duration above zero"));
                }
                if d > MAX_DURATION {
                    return Err(err("a duration of at most a year (8760h)"));
                }
                let d = Some(d);
                match spec.name {
                    "server_drain" => self.server_drain = d,
                    "server_shutdown_timeout" => self.server_shutdown_timeout = d,
                    "register_ttl" => self.register_ttl = d,
                    "register_interval" => self.register_interval = d,
                    "client_request_timeout" => self.client_request_timeout = d,
                    "server_idle_timeout" => self.server_idle_timeout = d,
                    "server_frame_timeout" => self.server_frame_timeout = d,
                    _ => unreachable!("duration setting {}", spec.name),
                }
            }
            Kind::Count => {
                let n: u32 = value.trim().parse().map_err(|_| err("a whole number"))?;
                if spec.name == "client_retries" {
                    self.client_retries = Some(n);
                    return Ok(());
                }
                if n == 0 {
                    return Err(err("a whole number above zero"));
                }
                let n = Some(n as usize);
                match spec.name {
                    "client_pool_size" => self.client_pool_size = n,
                    "server_max_connections" => self.server_max_connections = n,
                    "server_max_connections_per_ip" => self.server_max_connections_per_ip = n,
                    "server_max_in_flight" => self.server_max_in_flight = n,
                    _ => unreachable!("count setting {}", spec.name),
                }
            }
            Kind::Size => {
                let n = parse_size(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("a size above zero such as 65536, 512KiB or 8MiB"))?;
                match spec.name {
                    "server_write_buffer" => self.server_write_buffer = Some(n),
                    _ => unreachable!("size setting {}", spec.name),
                }
            }
            Kind::Bool => {
                let v = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => return Err(err("true or false")),
                };
                match spec.name {
                    "tls_client_auth" => self.tls_client_auth = Some(v),
                    _ => unreachable!("bool setting {}", spec.name),
                }
            }
            Kind::OneOf(allowed) => {
                let v = value.trim().to_ascii_lowercase();
                if !allowed.contains(&v.as_str()) {
                    return Err(err(&format!("one of {}", allowed.join(", "))));
                }
                if spec.name == "log_format" {
                    self.log_format = v.parse().ok();
                    return Ok(());
                }
                let v = Some(v);
                match spec.name {
                    "registry" => self.registry = v,
                    "transport" => self.transport = v,
                    "auth" => self.auth = v,
                    _ => self.broker = v,
                }
            }
            Kind::List => {
                let items: Vec<String> = value.split(',').map(|i| i.trim().to_owned()).collect();
                if items.iter().any(String::is_empty) {
                    return Err(err(
                        "comma-separated endpoints such as Debug.Health,Greeter.*",
                    ));
                }
                match spec.name {
                    "auth_public" => self.auth_public = items,
                    _ => unreachable!("list setting {}", spec.name),
                }
            }
        }
        Ok(())
    }
}

/// Bytes, or a number with `KiB`, `MiB` or `GiB`.
fn parse_size(value: &str) -> Option<usize> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: usize = n.parse().ok()?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

fn parse_metadata(value: &str, source: &str) -> Result<Vec<(String, String)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(ConfigError {
                source: source.to_owned(),
                value: value.to_owned(),
                expected: "key=value pairs separated by commas".into(),
            }),
        })
        .collect()
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds (`30`, `0.5`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(micro::config::parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(micro::config::parse_duration("2"), Some(Duration::from_secs(2)));
/// assert_eq!(micro::config::parse_duration("soon"), None);
/// assert_eq!(micro::config::parse_duration("18446744073709551616s"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// The longest duration a setting takes: a year. Longer ones are mistakes, and would not fit
/// a clock's range once added to the time now.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The help text listing every variable and flag.
///
/// ```
/// assert!(micro::config::help().contains("MICRO_REGISTRY"));
/// ```
pub fn help() -> String {
    let mut out = String::from(
        "micro options (flag, environment variable; flags override variables, which override the code):\n",
    );
    for spec in SPECS {
        let values = match spec.kind {
            Kind::OneOf(allowed) => format!(" [{}]", allowed.join(", ")),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  --{:<26} {:<31} {}{}\n",
            spec.name,
            env_name(spec.name),
            spec.help,
            values
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from_env(pairs: &[(&str, &str)]) -> Result<Options, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Options::resolve(|k: &str| env.get(k).cloned(), &[])
    }

    fn from_args(args: &[&str]) -> Result<Options, ConfigError> {
        let mut all = vec!["prog".to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        Options::resolve(|_: &str| None, &all)
    }

    /// Every setting, by variable and by flag, with a good value and what it becomes.
    #[test]
    fn every_variable_and_flag_is_read() {
        let secs = |s| Some(Duration::from_secs(s));
        type Check = Box<dyn Fn(&Options) -> bool>;
        let cases: Vec<(&str, &str, Check)> = vec![
            (
                "server_name",
                "shippy",
                Box::new(|o| o.server_name.as_deref() == Some("shippy")),
            ),
            (
                "server_version",
                "1.2.3",
                Box::new(|o| o.server_version.as_deref() == Some("1.2.3")),
            ),
            (
                "server_address",
                "0.0.0.0:8080",
                Box::new(|o| o.server_address.as_deref() == Some("0.0.0.0:8080")),
            ),
            (
                "server_advertise",
                "10.0.0.7:8080",
                Box::new(|o| o.server_advertise.as_deref() == Some("10.0.0.7:8080")),
            ),
            (
                "server_interface",
                "eth1",
                Box::new(|o| o.server_interface.as_deref() == Some("eth1")),
            ),
            (
                "server_metadata",
                "zone=a,tier=web",
                Box::new(|o| {
                    o.server_metadata
                        == vec![("zone".into(), "a".into()), ("tier".into(), "web".into())]
                }),
            ),
            (
                "server_drain",
                "250ms",
                Box::new(|o| o.server_drain == Some(Duration::from_millis(250))),
            ),
            (
                "server_shutdown_timeout",
                "20s",
                Box::new(move |o| o.server_shutdown_timeout == secs(20)),
            ),
            (
                "server_max_connections",
                "100",
                Box::new(|o| o.server_max_connections == Some(100)),
            ),
            (
                "server_max_connections_per_ip",
                "10",
                Box::new(|o| o.server_max_connections_per_ip == Some(10)),
            ),
            (
                "server_max_in_flight",
                "64",
                Box::new(|o| o.server_max_in_flight == Some(64)),
            ),
            (
                "server_write_buffer",
                "2MiB",
                Box::new(|o| o.server_write_buffer == Some(2 << 20)),
            ),
            (
                "server_idle_timeout",
                "90s",
                Box::new(move |o| o.server_idle_timeout == secs(90)),
            ),
            (
                "server_frame_timeout",
                "5s",
                Box::new(move |o| o.server_frame_timeout == secs(5)),
            ),
            (
                "registry",
                "memory",
                Box::new(|o| o.registry.as_deref() == Some("memory")),
            ),
            (
                "registry_address",
                "/tmp/reg",
                Box::new(|o| o.registry_address.as_deref() == Some("/tmp/reg")),
            ),
            (
                "register_ttl",
                "30",
                Box::new(move |o| o.register_ttl == secs(30)),
            ),
            (
                "register_interval",
                "1m",
                Box::new(move |o| o.register_interval == secs(60)),
            ),
            (
                "client_request_timeout",
                "2s",
                Box::new(move |o| o.client_request_timeout == secs(2)),
            ),
            (
                "client_retries",
                "3",
                Box::new(|o| o.client_retries == Some(3)),
            ),
            (
                "client_pool_size",
                "4",
                Box::new(|o| o.client_pool_size == Some(4)),
            ),
            (
                "transport",
                "memory",
                Box::new(|o| o.transport.as_deref() == Some("memory")),
            ),
            (
                "broker",
                "memory",
                Box::new(|o| o.broker.as_deref() == Some("memory")),
            ),
            (
                "broker_address",
                "127.0.0.1:4222",
                Box::new(|o| o.broker_address.as_deref() == Some("127.0.0.1:4222")),
            ),
            (
                "broker_advertise",
                "203.0.113.7:4000",
                Box::new(|o| o.broker_advertise.as_deref() == Some("203.0.113.7:4000")),
            ),
            (
                "tls_cert",
                "/etc/micro/cert.pem",
                Box::new(|o| o.tls_cert.as_deref() == Some("/etc/micro/cert.pem")),
            ),
            (
                "tls_key",
                "/etc/micro/key.pem",
                Box::new(|o| o.tls_key.as_deref() == Some("/etc/micro/key.pem")),
            ),
            (
                "tls_ca",
                "/etc/micro/ca.pem",
                Box::new(|o| o.tls_ca.as_deref() == Some("/etc/micro/ca.pem")),
            ),
            (
                "tls_client_auth",
                "true",
                Box::new(|o| o.tls_client_auth == Some(true)),
            ),
            (
                "auth_token",
                "eyJ.x.y",
                Box::new(|o| o.auth_token.as_deref() == Some("eyJ.x.y")),
            ),
            (
                "auth",
                "None",
                Box::new(|o| o.auth.as_deref() == Some("none")),
            ),
            (
                "auth_key",
                "/etc/micro/jwt.pem",
                Box::new(|o| o.auth_key.as_deref() == Some("/etc/micro/jwt.pem")),
            ),
            (
                "auth_issuer",
                "shippy",
                Box::new(|o| o.auth_issuer.as_deref() == Some("shippy")),
            ),
            (
                "auth_public",
                "Debug.Health, Greeter.*",
                Box::new(|o| o.auth_public == ["Debug.Health", "Greeter.*"]),
            ),
            (
                "metrics_address",
                ":9464",
                Box::new(|o| o.metrics_address.as_deref() == Some(":9464")),
            ),
            (
                "log_format",
                "JSON",
                Box::new(|o| o.log_format == Some(crate::telemetry::LogFormat::Json)),
            ),
        ];
        assert_eq!(cases.len(), SPECS.len(), "a setting has no case");
        for (name, value, check) in &cases {
            let var = env_name(name);
            let o = from_env(&[(&var, value)]).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert!(check(&o), "{var}={value} gave {o:?}");
            let o = from_args(&[&format!("--{name}"), value]).unwrap();
            assert!(check(&o), "--{name} {value} gave {o:?}");
            let o = from_args(&[&format!("--{name}={value}")]).unwrap();
            assert!(check(&o), "--{name}={value} gave {o:?}");
        }
    }

    /// Every setting that can be wrong, by variable and by flag, names its source.
    #[test]
    fn every_bad_value_is_an_error_naming_its_source() {
        let bad = [
            ("server_name", " "),
            ("server_version", ""),
            ("server_address", "localhost"),
            ("server_advertise", "10.0.0.7:port"),
            ("server_interface", " "),
            ("server_metadata", "novalue"),
            ("tls_client_auth", "sometimes"),
            ("server_drain", "later"),
            ("server_shutdown_timeout", "0s"),
            ("server_max_connections", "0"),
            ("server_max_connections_per_ip", "many"),
            ("server_max_in_flight", "-1"),
            ("server_write_buffer", "8 parsecs"),
            ("server_idle_timeout", "0s"),
            ("server_frame_timeout", "soon"),
            ("registry", "zookeeper"),
            ("registry_address", ""),
            ("register_ttl", "-1"),
            ("register_interval", "1 fortnight"),
            ("client_request_timeout", "fast"),
            ("client_retries", "-2"),
            ("client_pool_size", "0"),
            ("transport", "carrier-pigeon"),
            ("broker", "kafka"),
            ("broker_address", ""),
            ("broker_advertise", ":4000"),
            ("tls_cert", " "),
            ("tls_key", ""),
            ("tls_ca", " "),
            ("auth_token", ""),
            ("auth", "kerberos"),
            ("auth_key", " "),
            ("auth_issuer", ""),
            ("auth_public", "Debug.Health,,Greeter.*"),
            ("metrics_address", "nowhere"),
            ("log_format", "logfmt"),
        ];
        assert_eq!(bad.len(), SPECS.len(), "a setting has no bad case");
        for (name, value) in bad {
            let var = env_name(name);
            let err = from_env(&[(&var, value)]).unwrap_err();
            assert_eq!(err.source(), var);
            assert!(
                err.to_string().starts_with(&format!("invalid {var} `")),
                "{err}"
            );
            let err = from_args(&[&format!("--{name}={value}")]).unwrap_err();
            assert_eq!(err.source(), format!("--{name}"));
        }
    }

    /// Regression: a TTL of u64::MAX seconds panicked while parsing instead of being refused.
    #[test]
    fn durations_too_long_for_a_clock_are_errors_not_panics() {
        for value in [
            "18446744073709551615s",
            "1e300",
            "9999999999h",
            "366d",
            "8761h",
        ] {
            let err = from_env(&[("MICRO_REGISTER_TTL", value)]).unwrap_err();
            assert_eq!(err.source(), "MICRO_REGISTER_TTL", "{value}");
        }
        let ok = from_env(&[("MICRO_REGISTER_TTL", "8760h")]).unwrap();
        assert_eq!(ok.register_ttl, Some(Duration::from_secs(365 * 24 * 3600)));
    }

    #[test]
    fn flags_override_variables_and_unknown_flags_are_left_alone() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("MICRO_SERVER_NAME", "from-env"),
            ("MICRO_CLIENT_RETRIES", "5"),
        ]);
        let args: Vec<String> = [
            "prog",
            "server",
            "--server_name",
            "from-flag",
            "--verbose",
            "-x",
        ]
        .map(String::from)
        .to_vec();
        let o = Options::resolve(|k: &str| env.get(k).map(|v| (*v).to_owned()), &args).unwrap();
        assert_eq!(o.server_name.as_deref(), Some("from-flag"));
        assert_eq!(o.client_retries, Some(5));
        assert!(!o.help);
    }

    #[test]
    fn repeated_metadata_flags_add_up_and_help_is_seen() {
        let o = from_args(&[
            "--server_metadata=a=1",
            "--server_metadata",
            "b=2",
            "--help",
        ])
        .unwrap();
        assert_eq!(
            o.server_metadata,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(o.help);
    }

    #[test]
    fn a_flag_without_its_value_and_an_interval_past_the_ttl_are_errors() {
        let err = from_args(&["--registry"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --registry ``: expected a value after the flag"
        );
        let err = from_env(&[
            ("MICRO_REGISTER_TTL", "10s"),
            ("MICRO_REGISTER_INTERVAL", "10s"),
        ])
        .unwrap_err();
        assert_eq!(err.source(), "MICRO_REGISTER_INTERVAL");
    }

    #[test]
    fn listen_addresses_take_every_written_form_and_advertise_needs_a_dialable_one() {
        for good in [
            ":0",
            ":50051",
            "0.0.0.0:0",
            "[::]:8080",
            "db-1:80",
            "memory:greeter",
        ] {
            let o = from_env(&[("MICRO_SERVER_ADDRESS", good)]).unwrap();
            assert_eq!(o.server_address.as_deref(), Some(good));
        }
        for bad in ["::1:80", "host", "[::1]", "a b:1"] {
            assert!(from_env(&[("MICRO_SERVER_ADDRESS", bad)]).is_err(), "{bad}");
        }
        for wildcard in [":8080", "0.0.0.0:8080", "[::]:8080"] {
            let err = from_env(&[("MICRO_SERVER_ADVERTISE", wildcard)]).unwrap_err();
            assert!(err.to_string().contains("other hosts can dial"), "{err}");
        }
        let o = from_env(&[("MICRO_SERVER_ADVERTISE", "shippy.example:50051")]).unwrap();
        assert_eq!(o.server_advertise.as_deref(), Some("shippy.example:50051"));
    }

    #[test]
    fn server_limits_parse_with_units() {
        let opts = from_env(&[
            ("MICRO_SERVER_MAX_CONNECTIONS", "100"),
            ("MICRO_SERVER_WRITE_BUFFER", "512KiB"),
            ("MICRO_SERVER_IDLE_TIMEOUT", "90s"),
        ])
        .unwrap();
        assert_eq!(opts.server_max_connections, Some(100));
        assert_eq!(opts.server_write_buffer, Some(512 * 1024));
        assert_eq!(opts.server_idle_timeout, Some(Duration::from_secs(90)));
        let e = from_env(&[("MICRO_SERVER_WRITE_BUFFER", "lots")]).unwrap_err();
        assert_eq!(e.source(), "MICRO_SERVER_WRITE_BUFFER");
        let e = from_env(&[("MICRO_SERVER_MAX_IN_FLIGHT", "0")]).unwrap_err();
        assert_eq!(e.source(), "MICRO_SERVER_MAX_IN_FLIGHT");
    }

    #[test]
    fn help_lists_every_setting() {
        let help = help();
        for spec in SPECS {
            assert!(help.contains(&format!("--{} ", spec.name)));
            assert!(help.contains(&env_name(spec.name)));
        }
    }
}
