//! Logs and traces: what a service prints by default and how a call's trace crosses services.
//!
//! [`Service::run`](crate::Service::run) installs [`init_logs`]'s subscriber when the program
//! has not installed one of its own, so a service prints its start-up, registration and
//! shutdown lines with no code: `RUST_LOG` chooses what (default `info`), and
//! `MICRO_LOG_FORMAT=json` (`--log_format json`) prints one JSON object per line instead of
//! text. A program that installs its own `tracing` subscriber keeps it.
//!
//! ```
//! use micro::telemetry::{init_logs, LogFormat};
//!
//! // The first subscriber wins; later calls change nothing and say so.
//! let first = init_logs(LogFormat::Text);
//! assert!(!init_logs(LogFormat::Json));
//! # drop(first);
//! ```

pub(crate) mod log;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
pub(crate) mod trace;

pub use log::{LogFormat, init_logs};
pub use trace::{HttpSpan, TRACEPARENT, TRACESTATE, TraceParent};
