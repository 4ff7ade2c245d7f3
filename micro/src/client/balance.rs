//! The balance layer: chooses a node for each attempt and makes the attempt on it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::pool::Pool;
use crate::codec::ContentType;
use crate::discovery::{self, Ejections, node_key};
use crate::middleware::Request;
use crate::registry::{Node, Service};
use crate::runtime::Runtime;
use crate::selector::Selector;
use crate::server::{HEADER_ALLOWANCE, Router};
use crate::transport::Transport;
use crate::wire::{Frame, Outgoing};
use crate::{BoxFuture, Error, Payload};

/// What went wrong in an attempt, for the retry policy and ejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// Never reached the node (refused, or the connection was closing): not run.
    Refused,
    /// The node turned it away before running it (a full mailbox, shutting down): not run.
    Rejected,
    /// The connection failed after the request was sent: it may have run.
    Lost,
    /// The node (or the client, before sending) answered with an error.
    Answered,
}

/// A failed attempt: the error for the caller, and what the retry policy needs to know.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) fault: Fault,
    /// The node tried, so that a retry can go elsewhere.
    pub(super) node: Option<Arc<str>>,
}

impl Failure {
    fn new(error: Error, fault: Fault) -> Self {
        Self {
            error,
            fault,
            node: None,
        }
    }
}

/// A connection's failure to carry a call: provably not sent, or lost on the way.
impl From<super::Failure> for Failure {
    fn from(failure: super::Failure) -> Self {
        match failure {
            super::Failure::NotRun(e) => Failure::new(e, Fault::Refused),
            super::Failure::Final(e) => Failure::new(e, Fault::Lost),
        }
    }
}

/// The time left before `deadline` as the request header carries it: whole milliseconds, at
/// least 1 (0 is for no deadline).
fn wire_timeout(deadline: Option<Instant>) -> u32 {
    deadline.map_or(0, |d| {
        let ms = d.saturating_duration_since(Instant::now()).as_millis();
        u32::try_from(ms).unwrap_or(u32::MAX).max(1)
    })
}

pub(super) struct Settings {
    pub(super) runtime: Runtime,
    pub(super) selector: Arc<dyn Selector>,
    pub(super) ejection: Duration,
    pub(super) content_type: ContentType,
    pub(super) fast_path: bool,
    pub(super) per_node: usize,
    pub(super) max_frame: usize,
}

/// Chooses a node (discovery, filters, ejection, selector) and calls it: in-process when
/// this runtime serves it, else over a pooled connection.
#[derive(Clone)]
pub(super) struct Balance {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: Runtime,
    selector: Arc<dyn Selector>,
    ejections: Ejections,
    content_type: ContentType,
    fast_path: bool,
    max_frame: usize,
    pool: Pool,
}

impl Balance {
    pub(super) fn new(settings: Settings) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool: Pool::new(settings.per_node, settings.max_frame),
                runtime: settings.runtime,
                selector: settings.selector,
                ejections: Ejections::new(settings.ejection),
                content_type: settings.content_type,
                fast_path: settings.fast_path,
                max_frame: settings.max_frame,
            }),
        }
    }

    pub(super) async fn connect(&self, service: &str) -> Result<usize, Error> {
        let shared = &self.shared;
        let service: Arc<str> = service.into();
        let services = shared.runtime.cache().lookup(&service).await?;
        let mut connected = 0;
        let mut last = None;
        for node in services.iter().flat_map(|s| s.nodes.iter()) {
            if shared.local(node).is_some() {
                connected += 1;
                continue;
            }
            let transport = shared.runtime.transport_named(transport_of(node));
            match shared.pool.get(&*transport, &node.address).await {
                Ok(_) => connected += 1,
                Err(e) => last = Some(e),
            }
        }
        match (connected, last) {
            (0, Some(e)) => Err(e),
            (n, _) => Ok(n),
        }
    }
}

impl tower::Service<Request> for Balance {
    type Response = Payload;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Payload, Failure>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Box::pin(Shared::attempt(self.shared.clone(), req))
    }
}

fn transport_of(node: &Node) -> Option<&str> {
    node.metadata.get("transport").map(String::as_str)
}

impl Shared {
    async fn attempt(self: Arc<Self>, req: Request) -> Result<Payload, Failure> {
        // The options are shared with the request, which `remote` consumes.
        let options = req.options.node.is_some().then(|| req.options.clone());
        if let Some(address) = options.as_ref().and_then(|o| o.node.as_deref()) {
            let transport = self.runtime.transport_for_address(address);
            return self.remote(address, &*transport, req).await;
        }
        let picked = self
            .pick(&req)
            .await
            .map_err(|e| Failure::new(e, Fault::Answered))?;
        let node = picked.node();
        let mut guard = Attempt {
            shared: &self,
            node,
            service: req.service.clone(),
            deadline: req.deadline,
            settled: false,
        };
        let outcome = match self.local(node) {
            // Boxed: the in-process path's future is larger than the network's, and every
            // attempt's box would otherwise be that large (past the allocator's fast sizes).
            Some(router) => Box::pin(local(&router, req)).await,
            None => {
                let transport = self.runtime.transport_named(transport_of(node));
                self.remote(&node.address, &*transport, req).await
            }
        };
        guard.settle(outcome.as_ref().err().map(|f| (&f.error, f.fault)));
        outcome.map_err(|mut f| {
            f.node = Some(node_key(node).into());
            f
        })
    }

    /// The router of `node` when this runtime serves it (and the fast path is on).
    fn local(&self, node: &Node) -> Option<Arc<Router>> {
        if !self.fast_path || node.id.is_empty() {
            return None;
        }
        self.runtime.hosted().get(&node.id).map(|r| r.clone())
    }

    /// Chooses a node for `req`: registry (cached), filters, outlier ejection, then the
    /// selector. Nodes this call already tried are avoided when others remain.
    async fn pick(&self, req: &Request) -> Result<Picked, Error> {
        let services = self.runtime.cache().lookup(&req.service).await?;
        if let Some(nodes) = self.all_eligible(req, &services) {
            // The usual case: the selector chooses among the registry's own list, copying
            // no node.
            let index = self.selector.select(&req.service, nodes).ok_or_else(|| {
                Error::unavailable(
                    "micro.client",
                    format_args!("service {} has no nodes", req.service),
                )
            })?;
            if index >= nodes.len() {
                return Err(Error::internal(
                    "micro.client",
                    format_args!("the selector chose node {index} of {}", nodes.len()),
                ));
            }
            return Ok(Picked::InPlace(services, index));
        }
        let candidates = discovery::candidates(
            &req.service,
            &services,
            &req.endpoint,
            req.options.version.as_deref(),
            &req.options.node_metadata,
        )?;
        let healthy: Vec<Node> = candidates
            .iter()
            .filter(|n| !req.tried.iter().any(|t| **t == *node_key(n)))
            .filter(|n| !self.ejections.is_out(n))
            .cloned()
            .collect();
        // Every node ejected or tried: better one more attempt on one of them than none.
        let mut pool = if healthy.is_empty() {
            candidates
        } else {
            healthy
        };
        let index = self.selector.select(&req.service, &pool).ok_or_else(|| {
            Error::unavailable(
                "micro.client",
                format_args!("service {} has no nodes", req.service),
            )
        })?;
        Ok(Picked::Copied(pool.swap_remove(index)))
    }

    /// The nodes of `services` when every one of them may take `req` (one record that serves
    /// the endpoint, no filters, nothing tried or ejected), which is what
    /// [`pick`](Self::pick) would otherwise copy them all to find out.
    fn all_eligible<'a>(&self, req: &Request, services: &'a [Service]) -> Option<&'a [Node]> {
        let [service] = services else {
            return None;
        };
        let serves = service.endpoints.is_empty()
            || service.endpoints.iter().any(|e| e.name == req.endpoint);
        let version = req.options.version.as_deref();
        let eligible = serves
            && version.is_none_or(|v| service.version == v)
            && req.options.node_metadata.is_empty()
            && req.tried.is_empty()
            && !service.nodes.is_empty()
            && !service.nodes.iter().any(|n| self.ejections.is_out(n));
        eligible.then_some(&service.nodes[..])
    }

    /// One attempt over the network.
    async fn remote(
        &self,
        address: &str,
        transport: &dyn Transport,
        req: Request,
    ) -> Result<Payload, Failure> {
        if req.options.stream != 0 {
            // Boxed: its future is as large as the rest of the attempt, which every call would
            // otherwise carry and copy.
            return Box::pin(self.remote_stream(address, transport, req)).await;
        }
        let content_type = req.options.content_type.unwrap_or(self.content_type);
        let body = req.payload.to_bytes(content_type).map_err(|e| {
            Failure::new(
                Error::bad_request(
                    "micro.client",
                    format_args!("cannot encode the request as {content_type}: {e}"),
                ),
                Fault::Answered,
            )
        })?;
        if body.len() + HEADER_ALLOWANCE > self.max_frame {
            return Err(Failure::new(
                Error::bad_request(
                    "micro.client",
                    format_args!(
                        "request of {} bytes exceeds the {}-byte frame limit",
                        body.len(),
                        self.max_frame
                    ),
                ),
                Fault::Answered,
            ));
        }
        let conn = self
            .pool
            .get(transport, address)
            .await
            .map_err(|e| Failure::new(e, Fault::Refused))?;
        let timeout_ms = wire_timeout(req.deadline);
        let Request {
            service,
            endpoint,
            metadata,
            ..
        } = req;
        let frame = conn
            .call(|id| Outgoing::Request {
                id,
                content_type,
                timeout_ms,
                service,
                endpoint,
                metadata,
                body,
            })
            .await
            .map_err(Failure::from)?;
        match frame {
            Frame::Reply {
                content_type, body, ..
            } => Ok(Payload::encoded(content_type, body)),
            Frame::Error {
                error,
                not_run: true,
                ..
            } => Err(Failure::new(error, Fault::Rejected)),
            Frame::Error { error, .. } => Err(Failure::new(error, Fault::Answered)),
            _ => Err(Failure::new(
                Error::internal("micro.client", "unexpected frame"),
                Fault::Lost,
            )),
        }
    }

    /// One attempt to open a stream over the network.
    async fn remote_stream(
        &self,
        address: &str,
        transport: &dyn Transport,
        req: Request,
    ) -> Result<Payload, Failure> {
        let content_type = req.options.content_type.unwrap_or(self.content_type);
        let flags = req.options.stream;
        let conn = self
            .pool
            .get(transport, address)
            .await
            .map_err(|e| Failure::new(e, Fault::Refused))?;
        let bad = |e: crate::codec::CodecError| {
            Failure::new(
                Error::bad_request(
                    "micro.client",
                    format_args!("cannot send the request as {content_type}: {e}"),
                ),
                Fault::Answered,
            )
        };
        let (body, requests) = if flags & crate::wire::FLAG_REQUEST_STREAM != 0 {
            (
                bytes::Bytes::new(),
                Some(req.payload.into_payloads().map_err(bad)?),
            )
        } else {
            let body = req.payload.to_bytes(content_type).map_err(bad)?;
            if body.len() + HEADER_ALLOWANCE > self.max_frame {
                return Err(bad(crate::codec::CodecError::new(format!(
                    "{} bytes exceed the {}-byte frame limit",
                    body.len(),
                    self.max_frame
                ))));
            }
            (body, None)
        };
        let deadline = req.options.stream_deadline;
        let timeout_ms = wire_timeout(deadline);
        let Request {
            service,
            endpoint,
            metadata,
            ..
        } = req;
        let answer = conn
            .open_stream(
                flags,
                |id| Outgoing::StreamOpen {
                    flags,
                    id,
                    content_type,
                    timeout_ms,
                    service,
                    endpoint,
                    metadata,
                    body,
                },
                requests,
                content_type,
                self.max_frame,
                deadline,
            )
            .await
            .map_err(Failure::from)?;
        answer.map_err(|(error, not_run)| {
            Failure::new(
                error,
                if not_run {
                    Fault::Rejected
                } else {
                    Fault::Answered
                },
            )
        })
    }

    /// Takes a node out of selection after a connection failure or timeout.
    fn eject(&self, service: &str, node: &Node, why: &Error) {
        let backoff = self.ejections.eject(node);
        tracing::info!(%service, node = %node.address, "ejected for {backoff:?}: {why}");
        // The registry may know better by now.
        self.runtime.cache().expire(service);
    }
}

/// The node chosen for an attempt.
enum Picked {
    /// Node `.1` of the only record in the registry's answer.
    InPlace(Arc<[Service]>, usize),
    /// A copy, from the candidates left after filtering.
    Copied(Node),
}

impl Picked {
    fn node(&self) -> &Node {
        match self {
            Picked::InPlace(services, index) => &services[0].nodes[*index],
            Picked::Copied(node) => node,
        }
    }
}

/// One attempt in-process: no socket, no encoding.
async fn local(router: &Router, req: Request) -> Result<Payload, Failure> {
    router.call_local(req).await.map_err(|(error, not_run)| {
        let fault = if not_run {
            Fault::Rejected
        } else {
            Fault::Answered
        };
        Failure::new(error, fault)
    })
}

/// Reports one attempt to the selector and the ejection table exactly once, including when
/// the attempt's future is dropped (its deadline passed: a timeout strike).
struct Attempt<'a> {
    shared: &'a Shared,
    node: &'a Node,
    service: Arc<str>,
    deadline: Option<Instant>,
    settled: bool,
}

impl Attempt<'_> {
    fn settle(&mut self, failure: Option<(&Error, Fault)>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let shared = self.shared;
        match failure {
            None | Some((_, Fault::Answered | Fault::Rejected)) => {
                shared.selector.report(&self.service, self.node, Ok(()));
                shared.ejections.forgive(self.node);
            }
            Some((error, Fault::Refused | Fault::Lost)) => {
                // Out of selection before anyone hears of the failure.
                shared.eject(&self.service, self.node, error);
                shared.selector.report(&self.service, self.node, Err(error));
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let timed_out = self.deadline.is_some_and(|d| d <= Instant::now());
        if timed_out {
            let error = Error::timeout("micro.client", "no reply before the deadline");
            self.settle(Some((&error, Fault::Lost)));
        } else {
            // Cancelled by the caller: not the node's fault.
            self.settled = true;
            self.shared
                .selector
                .report(&self.service, self.node, Ok(()));
        }
    }
}
