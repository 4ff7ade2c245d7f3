//! Metrics and health probes over HTTP.
//!
//! With the `prometheus` feature and `MICRO_METRICS_ADDRESS` (`--metrics_address`) set, a
//! service's runtime answers HTTP on that address:
//!
//! - `GET /metrics`: the Prometheus text format: per service and endpoint, calls
//!   (`micro_client_requests_total`, `micro_server_requests_total`), failures by error code
//!   (`micro_{client,server}_errors_total`), a latency histogram
//!   (`micro_{client,server}_request_duration_seconds`); requests turned away
//!   (`micro_server_rejections_total`), mailbox depth and read turns running per handler,
//!   connections open on each service's listener (`micro_server_connections`) and refused by
//!   its limits (`micro_server_connections_refused_total`, by the limit reached), events
//!   published and delivered (`micro_broker_{publishes,deliveries}_total`);
//! - `GET /health/live`: 200 while the process serves HTTP at all;
//! - `GET /health/ready`: 200 while a service runs, none drains and every check registered
//!   with [`Service::health_check`](crate::Service::health_check) passes; otherwise 503 with
//!   the reasons.
//!
//! A call to a service or endpoint that does not exist is counted client side under
//! `service="unknown",endpoint="unknown"`, so names passed through from outside cannot grow
//! the metrics without bound. Unset, nothing listens and calls record nothing.
//!
//! ```no_run
//! # use micro::prelude::*;
//! # #[derive(Default)] struct Greeter;
//! # #[micro::service(name = "greeter")]
//! # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
//! # #[tokio::main] async fn main() -> micro::Result<()> {
//! // MICRO_METRICS_ADDRESS=:9464 ./greeter
//! micro::Service::new("greeter")
//!     .handle(Greeter)
//!     .health_check("database", || Ok(()))
//!     .run()
//!     .await
//! # }
//! ```

mod health;
#[cfg(feature = "prometheus")]
mod prom;

use std::time::Duration;

pub(crate) use health::{Check, Entry, Health};

/// Which end of a call is recorded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    Client,
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    Server,
}

/// What a runtime observes: readiness always; per-call metrics with the `prometheus`
/// feature and an address to serve them on.
#[derive(Default)]
pub(crate) struct Observe {
    pub(crate) health: Health,
    #[cfg(feature = "prometheus")]
    metrics: Option<prom::Metrics>,
    #[cfg(feature = "prometheus")]
    http: tokio::sync::Mutex<Option<(tokio::task::AbortHandle, std::net::SocketAddr)>>,
}

impl Drop for Observe {
    fn drop(&mut self) {
        #[cfg(feature = "prometheus")]
        if let Some((task, _)) = self.http.get_mut().take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe")
            .field("metrics", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl Observe {
    /// For a runtime with these options: metrics only when there is somewhere to serve them.
    pub(crate) fn new(options: &crate::config::Options) -> Self {
        let _ = options;
        Self {
            health: Health::default(),
            #[cfg(feature = "prometheus")]
            metrics: options.metrics_address.is_some().then(prom::Metrics::new),
            #[cfg(feature = "prometheus")]
            http: Default::default(),
        }
    }

    /// Whether calls are recorded: callers skip taking the time when not.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        #[cfg(feature = "prometheus")]
        return self.metrics.is_some();
        #[cfg(not(feature = "prometheus"))]
        false
    }

    /// A finished call: `code` is the error's, 0 for success.
    #[inline]
    pub(crate) fn call(
        &self,
        side: Side,
        service: &str,
        endpoint: &str,
        took: Duration,
        code: u16,
    ) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.call(side, service, endpoint, took, code);
        }
        let _ = (side, service, endpoint, took, code);
    }

    /// A request turned away before it ran.
    #[inline]
    pub(crate) fn rejection(&self, service: &str, endpoint: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.rejection(service, endpoint);
        }
        let _ = (service, endpoint);
    }

    /// A connection opened (`true`) or closed (`false`) on `service`'s listener.
    #[inline]
    pub(crate) fn connection(&self, service: &str, open: bool) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.connection(service, open);
        }
        let _ = (service, open);
    }

    /// A connection `service`'s listener refused: `limit` names the limit it reached.
    #[inline]
    pub(crate) fn connection_refused(&self, service: &str, limit: &'static str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.connection_refused(service, limit);
        }
        let _ = (service, limit);
    }

    /// An event published.
    #[inline]
    pub(crate) fn publish(&self, topic: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.publish(topic);
        }
        let _ = topic;
    }

    /// An event delivered to a subscriber endpoint.
    #[inline]
    pub(crate) fn delivery(&self, topic: &str, endpoint: &str, ok: bool) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.delivery(topic, endpoint, ok);
        }
        let _ = (topic, endpoint, ok);
    }

    /// Starts the HTTP listener on `address` unless one runs; returns its address, and
    /// whether this call started it.
    #[cfg(feature = "prometheus")]
    pub(crate) async fn serve(
        self: &std::sync::Arc<Self>,
        address: &str,
        hosted: crate::runtime::Hosted,
    ) -> std::io::Result<(std::net::SocketAddr, bool)> {
        // Held across the bind, so two services starting at once start one listener.
        let mut http = self.http.lock().await;
        if let Some((_, bound)) = &*http {
            return Ok((*bound, false));
        }
        let (bound, task) = prom::start(address, self, hosted).await?;
        *http = Some((task, bound));
        Ok((bound, true))
    }
}
