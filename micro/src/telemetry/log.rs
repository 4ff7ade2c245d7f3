//! The default subscriber.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
///
/// ```
/// use micro::telemetry::LogFormat;
/// assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
/// assert_eq!(LogFormat::default(), LogFormat::Text);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One human-readable line per event (coloured when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(()),
        }
    }
}

/// Installs micro's subscriber as the process's global default, writing to stderr and
/// filtered by `RUST_LOG` (default `info`), unless one is installed already; returns whether
/// it installed it. With the `otel` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, it also
/// exports spans (see `otel::layer`).
///
/// [`Service::run`](crate::Service::run) calls it; call it yourself from a program that
/// starts services with [`start`](crate::Service::start) and wants the same logs.
///
/// ```
/// let installed = micro::telemetry::init_logs(micro::telemetry::LogFormat::Text);
/// // A second call finds the first subscriber and leaves it.
/// assert!(!micro::telemetry::init_logs(micro::telemetry::LogFormat::Text));
/// # drop(installed);
/// ```
pub fn init_logs(format: LogFormat) -> bool {
    init(format, None)
}

/// [`init_logs`], naming the service whose spans are exported.
pub(crate) fn init(format: LogFormat, service: Option<&str>) -> bool {
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    // A directive that does not parse is reported on stderr and skipped, rather than
    // silencing every log line.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Filtered on its own, so that spans an exporter wants do not all become log lines.
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    #[cfg(feature = "otel")]
    let exporter = super::otel::layer(service);
    #[cfg(not(feature = "otel"))]
    let exporter: Option<tracing_subscriber::layer::Identity> = {
        let _ = service;
        None
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(exporter)
        .try_init()
        .is_ok()
}
