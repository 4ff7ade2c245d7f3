//! `Debug.Health` and `Debug.Stats`, answered by every service.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::actor::Mounted;
use crate::handler::{BoxFuture, EndpointDef, Handler, HandlerDef, Reads, Turn};
use crate::registry::Description;
use crate::server::HandlerStats;
use crate::{Context, Error, Payload};

/// The reply of `Debug.Health`.
///
/// ```
/// # use micro::prelude::*;
/// # #[derive(Default)] struct Greeter;
/// # #[micro::service(name = "greeter")]
/// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory()).version("1.2.3").handle(Greeter).start().await?;
/// let health: micro::Health = service
///     .client()
///     .call("greeter".into(), "Debug.Health", ())
///     .await?;
/// assert_eq!((health.status.as_str(), health.version.as_str()), ("ok", "1.2.3"));
/// # service.stop().await; Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// `ok` while the service serves.
    pub status: String,
    /// The service name.
    pub service: String,
    /// The version it registered.
    pub version: String,
    /// This node's id.
    pub node: String,
    /// Seconds since it started.
    pub uptime_secs: f64,
}

/// The reply of `Debug.Stats`: totals and one entry per handled type.
///
/// ```
/// # use micro::prelude::*;
/// # #[derive(Default)] struct Greeter;
/// # #[micro::service(name = "greeter")]
/// # impl Greeter { pub async fn hello(&self, n: String) -> micro::Result<String> { Ok(n) } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
/// let service = micro::Service::new("greeter").runtime(micro::Runtime::in_memory()).handle(Greeter).start().await?;
/// GreeterClient::new(service.client()).hello("x".into()).await?;
/// let stats: micro::Stats = service.client().call("greeter".into(), "Debug.Stats", ()).await?;
/// assert_eq!((stats.calls, stats.handlers[0].handler.as_str()), (1, "Greeter"));
/// # service.stop().await; Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// The service name.
    pub service: String,
    /// This node's id.
    pub node: String,
    /// Seconds since it started.
    pub uptime_secs: f64,
    /// Requests run by handlers.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Requests running or waiting in a mailbox.
    pub in_flight: u64,
    /// Per handled type.
    pub handlers: Vec<HandlerStats>,
}

/// Where `Debug` reads its numbers: the service's other handlers.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) service: String,
    pub(crate) version: String,
    pub(crate) node: String,
    pub(crate) started: Instant,
    pub(crate) handlers: Vec<Arc<Mounted>>,
}

impl Probe {
    pub(crate) fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            service: self.service.clone(),
            version: self.version.clone(),
            node: self.node.clone(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let handlers: Vec<HandlerStats> = self.handlers.iter().map(|m| m.snapshot()).collect();
        Stats {
            service: self.service.clone(),
            node: self.node.clone(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            calls: handlers.iter().map(|h| h.calls).sum(),
            errors: handlers.iter().map(|h| h.errors).sum(),
            in_flight: handlers.iter().map(|h| h.running + h.queued as u64).sum(),
            handlers,
        }
    }
}

/// The built-in handler.
#[derive(Debug)]
pub(crate) struct Debug(pub(crate) Arc<Probe>);

// Both only read, so both are safe to send twice.
const ENDPOINTS: &[EndpointDef] = &[
    EndpointDef {
        name: "Debug.Health",
        method: "health",
        turn: Turn::Read,
        request: "()",
        response: "Health",
        topic: "",
        queue: "",
        idempotent: true,
        stream: crate::handler::StreamKind::Unary,
        doc: "Whether the node is serving: status, uptime and version.",
        describe: || Description::of::<(), Health>("()", "Health"),
    },
    EndpointDef {
        name: "Debug.Stats",
        method: "stats",
        turn: Turn::Read,
        request: "()",
        response: "Stats",
        topic: "",
        queue: "",
        idempotent: true,
        stream: crate::handler::StreamKind::Unary,
        doc: "Counters per handler: calls, errors, panics, queue depth.",
        describe: || Description::of::<(), Stats>("()", "Stats"),
    },
];

impl Handler for Debug {
    const DEF: &'static HandlerDef = &HandlerDef {
        type_name: "Debug",
        service: "debug",
        version: "latest",
        workers: 1,
        mailbox: 64,
        reads: 0,
        endpoints: ENDPOINTS,
    };

    fn dispatch<'a>(
        &'a mut self,
        ctx: &'a Context,
        endpoint: usize,
        req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>> {
        self.dispatch_read(ctx, endpoint, req)
    }

    fn reads(&self) -> Option<&dyn Reads> {
        Some(self)
    }

    fn replicate(&self) -> Option<Self> {
        None
    }
}

impl Reads for Debug {
    fn dispatch_read<'a>(
        &'a self,
        _ctx: &'a Context,
        endpoint: usize,
        _req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>> {
        // Requests are ignored: any body (including none) asks the same question.
        let reply = match endpoint {
            0 => Ok(Payload::new(self.0.health())),
            1 => Ok(Payload::new(self.0.stats())),
            _ => Err(crate::__private::unknown_endpoint(Self::DEF, endpoint)),
        };
        Box::pin(std::future::ready(reply))
    }
}
