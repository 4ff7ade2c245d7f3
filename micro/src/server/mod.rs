//! The server side: routing frames and local calls into handler mailboxes.

mod actor;
mod conn;
mod debug;
pub(crate) mod local;

pub use actor::HandlerStats;
pub(crate) use actor::{Counters, Factory, Mounted, Plan, Started, mount};
pub(crate) use conn::{Shutdown, serve};
pub(crate) use debug::{Debug, Probe};
pub use debug::{Health, Stats};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::codec::ContentType;
use crate::handler::EndpointDef;
use crate::middleware::Request;
use crate::wire::{Outgoing, RequestFrame};
use crate::{Error, Payload};

/// One request on its way through a mailbox.
pub(crate) struct Envelope {
    pub(crate) index: usize,
    pub(crate) request: Request,
    pub(crate) caller: Arc<str>,
    pub(crate) reply: ReplyTo,
}

/// Where the answer to an [`Envelope`] goes.
pub(crate) enum ReplyTo {
    /// A caller in this process, waiting for the typed reply.
    Local(oneshot::Sender<Result<Payload, Error>>),
    /// A connection's write queue.
    Remote {
        tx: flume::Sender<Outgoing>,
        id: u64,
        content_type: ContentType,
        max_frame: usize,
    },
}

impl ReplyTo {
    /// Nobody is waiting any more: the local caller dropped its future, or the connection died.
    pub(crate) fn is_abandoned(&self) -> bool {
        match self {
            ReplyTo::Local(tx) => tx.is_closed(),
            ReplyTo::Remote { tx, .. } => tx.is_disconnected(),
        }
    }

    pub(crate) fn send(self, result: Result<Payload, Error>) {
        match self {
            ReplyTo::Local(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Remote {
                tx,
                id,
                content_type,
                max_frame,
            } => {
                let frame = match result.and_then(|p| encode_reply(&p, content_type, max_frame)) {
                    Ok(body) => Outgoing::Reply {
                        id,
                        content_type,
                        body,
                    },
                    Err(error) => Outgoing::Error { id, error },
                };
                // The connection is gone: nobody to tell.
                let _ = tx.send(frame);
            }
        }
    }
}

fn encode_reply(p: &Payload, ct: ContentType, max_frame: usize) -> Result<bytes::Bytes, Error> {
    let body = p.to_bytes(ct).map_err(|e| {
        Error::internal(
            "micro.server",
            format_args!("cannot encode the reply as {ct}: {e}"),
        )
    })?;
    if body.len() + HEADER_ALLOWANCE > max_frame {
        return Err(Error::internal(
            "micro.server",
            format_args!(
                "reply of {} bytes exceeds the {max_frame}-byte frame limit",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// Room kept for a frame's header when checking a body against the frame limit.
pub(crate) const HEADER_ALLOWANCE: usize = 1024;

/// Where an endpoint's requests go.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) mailbox: flume::Sender<Envelope>,
    pub(crate) index: usize,
    pub(crate) def: &'static EndpointDef,
    pub(crate) stats: Arc<Counters>,
}

/// The endpoints of one running service, by wire name.
#[derive(Debug)]
pub(crate) struct Router {
    pub(crate) service: Arc<str>,
    pub(crate) routes: HashMap<&'static str, Route>,
    pub(crate) max_frame: usize,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("endpoint", &self.request.endpoint)
            .finish_non_exhaustive()
    }
}

impl Router {
    fn route(&self, service: &str, endpoint: &str) -> Result<&Route, Error> {
        if service != &*self.service {
            return Err(Error::not_found(
                "micro.server",
                format_args!(
                    "unknown service {service}: this node serves {}",
                    self.service
                ),
            ));
        }
        self.routes.get(endpoint).ok_or_else(|| {
            Error::not_found(
                "micro.server",
                format_args!("unknown endpoint {endpoint} on service {service}"),
            )
        })
    }

    /// Puts an envelope in its mailbox, or answers it at once when that is impossible.
    fn enqueue(&self, route: &Route, envelope: Envelope) {
        match route.mailbox.try_send(envelope) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(envelope)) => {
                route.stats.record_rejected();
                let name = route.def.name;
                envelope.reply.send(Err(Error::overloaded(
                    &*self.service,
                    format_args!(
                        "{name}: mailbox full ({} queued); retry later",
                        route.mailbox.capacity().unwrap_or_default()
                    ),
                )));
            }
            Err(flume::TrySendError::Disconnected(envelope)) => {
                envelope.reply.send(Err(Error::unavailable(
                    &*self.service,
                    "the service is shutting down",
                )));
            }
        }
    }

    /// Serves a request frame from a connection; the answer goes to `tx`.
    pub(crate) fn dispatch_frame(
        &self,
        frame: RequestFrame,
        caller: &Arc<str>,
        tx: &flume::Sender<Outgoing>,
    ) {
        let route = match self.route(frame.service(), frame.endpoint()) {
            Ok(route) => route,
            Err(error) => {
                let _ = tx.send(Outgoing::Error {
                    id: frame.id,
                    error,
                });
                return;
            }
        };
        let deadline = (frame.timeout_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(u64::from(frame.timeout_ms)));
        let envelope = Envelope {
            index: route.index,
            request: Request {
                service: self.service.clone(),
                endpoint: route.def.name.into(),
                metadata: frame.metadata,
                deadline,
                payload: Payload::encoded(frame.content_type, frame.body),
            },
            caller: caller.clone(),
            reply: ReplyTo::Remote {
                tx: tx.clone(),
                id: frame.id,
                content_type: frame.content_type,
                max_frame: self.max_frame,
            },
        };
        self.enqueue(route, envelope);
    }

    /// Serves a call from this process: no socket, no encoding.
    pub(crate) async fn call_local(&self, request: Request) -> Result<Payload, Error> {
        let route = self.route(&request.service, &request.endpoint)?;
        let (tx, rx) = oneshot::channel();
        let envelope = Envelope {
            index: route.index,
            request,
            caller: Arc::clone(&LOCAL_CALLER),
            reply: ReplyTo::Local(tx),
        };
        self.enqueue(route, envelope);
        rx.await.unwrap_or_else(|_| {
            Err(Error::unavailable(
                &*self.service,
                "the service stopped before answering",
            ))
        })
    }
}

static LOCAL_CALLER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "local".into());
