//! The server side: routing frames and local calls into handler mailboxes.

mod actor;
mod conn;
mod debug;
mod listen;
mod stream;

pub use actor::HandlerStats;
pub(crate) use actor::{Counters, Factory, Mounted, Plan, Started, mount};
pub(crate) use conn::Shutdown;
use conn::serve;
pub(crate) use debug::{Debug, Probe};
pub use debug::{Health, Stats};
pub(crate) use listen::spawn_accept_loop;
pub use listen::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_IN_FLIGHT, DEFAULT_WRITE_BUFFER, ServerLimits,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::client::Client;
use crate::codec::ContentType;
use crate::handler::EndpointDef;
use crate::middleware::{BoxLayer, BoxService, Request};
use crate::wire::{Outgoing, RequestFrame};
use crate::{BoxFuture, Error, Payload};

/// One request on its way through a mailbox.
pub(crate) struct Envelope {
    pub(crate) index: usize,
    pub(crate) request: Request,
    pub(crate) caller: Arc<str>,
    pub(crate) reply: ReplyTo,
    /// The running service's client, for the handler's [`Context`](crate::Context).
    pub(crate) client: Client,
}

/// Where the answer to an [`Envelope`] goes.
pub(crate) enum ReplyTo {
    /// A caller in this process, waiting for the reply. `true` with an error: the request
    /// was turned away before it ran.
    Local(oneshot::Sender<Result<Payload, (Error, bool)>>),
    /// A connection's write queue.
    Remote {
        tx: crate::framed::WriteQueue,
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

    /// Answers with what the handler returned (or why it could not run it).
    pub(crate) fn send(self, result: Result<Payload, Error>) {
        self.answer(result.map_err(|e| (e, false)));
    }

    /// Answers that the request was turned away before it ran: safe for the caller to retry.
    pub(crate) fn turn_away(self, error: Error) {
        self.answer(Err((error, true)));
    }

    fn answer(self, result: Result<Payload, (Error, bool)>) {
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
                // The connection is gone: nobody to tell.
                let _ = tx.send(reply_frame(id, content_type, max_frame, result));
            }
        }
    }
}

/// The frame that answers call `id`.
fn reply_frame(
    id: u64,
    content_type: ContentType,
    max_frame: usize,
    result: Result<Payload, (Error, bool)>,
) -> Outgoing {
    let result =
        result.and_then(|p| encode_reply(&p, content_type, max_frame).map_err(|e| (e, false)));
    match result {
        Ok(body) => Outgoing::Reply {
            id,
            content_type,
            body,
        },
        Err((error, not_run)) => Outgoing::Error { id, error, not_run },
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
pub(crate) struct Router {
    pub(crate) service: Arc<str>,
    pub(crate) routes: HashMap<&'static str, Route>,
    pub(crate) max_frame: usize,
    /// Given to handlers through their context.
    pub(crate) client: Client,
    /// The service's layers around the mailbox, when it has any.
    pub(crate) layered: Option<BoxService>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("service", &self.service)
            .field("routes", &self.routes.len())
            .field("layered", &self.layered.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("endpoint", &self.request.endpoint)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router; with `layers`, every request passes through them before its mailbox.
    pub(crate) fn new(
        service: Arc<str>,
        routes: HashMap<&'static str, Route>,
        max_frame: usize,
        client: Client,
        layers: &[BoxLayer],
    ) -> Arc<Router> {
        Arc::new_cyclic(|router: &Weak<Router>| {
            let layered = (!layers.is_empty()).then(|| {
                let mailbox = BoxService::new(Mailbox {
                    router: router.clone(),
                });
                crate::middleware::apply(layers, mailbox)
            });
            Router {
                service,
                routes,
                max_frame,
                client,
                layered,
            }
        })
    }

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

    /// Puts an envelope in its mailbox, or turns it away at once when that is impossible.
    fn enqueue(&self, route: &Route, envelope: Envelope) {
        match route.mailbox.try_send(envelope) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(envelope)) => {
                route.stats.record_rejected();
                self.client
                    .runtime()
                    .observe()
                    .rejection(&self.service, route.def.name);
                let name = route.def.name;
                envelope.reply.turn_away(Error::overloaded(
                    &*self.service,
                    format_args!(
                        "{name}: mailbox full ({} queued); retry later",
                        route.mailbox.capacity().unwrap_or_default()
                    ),
                ));
            }
            Err(flume::TrySendError::Disconnected(envelope)) => {
                envelope.reply.turn_away(Error::unavailable(
                    &*self.service,
                    "the service is shutting down",
                ));
            }
        }
    }

    /// Serves a request frame from a connection; the answer goes to `tx`.
    pub(crate) fn dispatch_frame(
        self: &Arc<Self>,
        frame: RequestFrame,
        caller: &Arc<str>,
        tx: &crate::framed::WriteQueue,
    ) {
        let route = match self.route(frame.service(), frame.endpoint()) {
            Ok(route) => route,
            Err(error) => {
                let _ = tx.send(Outgoing::Error {
                    id: frame.id,
                    error,
                    not_run: false,
                });
                return;
            }
        };
        let deadline = (frame.timeout_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(u64::from(frame.timeout_ms)));
        let mut request = Request::new(
            self.service.clone(),
            route.def.name.into(),
            frame.metadata,
            deadline,
            Payload::encoded(frame.content_type, frame.body),
        );
        request.caller = caller.clone();
        let (id, content_type, max_frame) = (frame.id, frame.content_type, self.max_frame);
        if let Some(layered) = &self.layered {
            let (layered, tx) = (layered.clone(), tx.clone());
            tokio::spawn(async move {
                let turned_away = Arc::new(AtomicBool::new(false));
                request.turned_away = Some(turned_away.clone());
                let result = layered.oneshot(request).await;
                let not_run = turned_away.load(Ordering::Acquire);
                let _ = tx.send(reply_frame(
                    id,
                    content_type,
                    max_frame,
                    result.map_err(|e| (e, not_run)),
                ));
            });
            return;
        }
        let envelope = Envelope {
            index: route.index,
            request,
            caller: caller.clone(),
            reply: ReplyTo::Remote {
                tx: tx.clone(),
                id,
                content_type,
                max_frame,
            },
            client: self.client.clone(),
        };
        self.enqueue(route, envelope);
    }

    /// Serves a call from this process: no socket, no encoding. `true` with an error: the
    /// request was turned away before it ran.
    pub(crate) async fn call_local(&self, mut request: Request) -> Result<Payload, (Error, bool)> {
        request.caller = LOCAL_CALLER.with(Arc::clone);
        self.call_routed(request).await
    }

    /// Serves a request through the layers and the mailbox, answering the caller here.
    pub(crate) async fn call_routed(&self, mut request: Request) -> Result<Payload, (Error, bool)> {
        match &self.layered {
            Some(layered) => {
                let turned_away = Arc::new(AtomicBool::new(false));
                request.turned_away = Some(turned_away.clone());
                layered
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| (e, turned_away.load(Ordering::Acquire)))
            }
            None => self.enqueue_local(request).await,
        }
    }

    /// Puts a request in its mailbox and waits for the answer.
    async fn enqueue_local(&self, request: Request) -> Result<Payload, (Error, bool)> {
        let route = self
            .route(&request.service, &request.endpoint)
            .map_err(|e| (e, false))?;
        let (tx, rx) = oneshot::channel();
        let envelope = Envelope {
            index: route.index,
            caller: request.caller.clone(),
            request,
            reply: ReplyTo::Local(tx),
            client: self.client.clone(),
        };
        self.enqueue(route, envelope);
        rx.await.unwrap_or_else(|_| {
            Err((
                Error::unavailable(&*self.service, "the service stopped before answering"),
                false,
            ))
        })
    }
}

/// The innermost service of a layered router: the mailbox.
#[derive(Clone)]
struct Mailbox {
    router: Weak<Router>,
}

impl tower::Service<Request> for Mailbox {
    type Response = Payload;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Payload, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let router = self.router.upgrade();
        Box::pin(async move {
            let router =
                router.ok_or_else(|| Error::unavailable("micro.server", "the service stopped"))?;
            let turned_away = request.turned_away.clone();
            router
                .enqueue_local(request)
                .await
                .map_err(|(error, not_run)| {
                    if let (true, Some(flag)) = (not_run, turned_away) {
                        flag.store(true, Ordering::Release);
                    }
                    error
                })
        })
    }
}

thread_local! {
    static LOCAL_CALLER: Arc<str> = Arc::from("local");
}
