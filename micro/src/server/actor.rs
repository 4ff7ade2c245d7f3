//! Mailbox actors: each owns a service value and runs its handlers one at a time.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use futures_util::FutureExt;
use tokio::task::JoinHandle;

use super::{Envelope, Route};
use crate::client::Client;
use crate::handler::{Handler, HandlerDef};
use crate::middleware::Request;
use crate::{Context, Error, Payload};

/// Counters for one handled type, shared by its actors and the routing layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) running: AtomicU64,
}

/// A snapshot of one handled type's counters, from
/// [`RunningService::stats`](crate::RunningService::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct HandlerStats {
    /// The handled type, such as `Greeter`.
    pub handler: String,
    /// Actors serving it.
    pub workers: usize,
    /// Requests its handlers ran.
    pub calls: u64,
    /// Of those, the ones that returned an error or panicked.
    pub errors: u64,
    /// Of those, the ones that panicked.
    pub panics: u64,
    /// Requests turned away with `overloaded` because the mailbox was full.
    pub rejected: u64,
    /// Requests answered with a timeout because their deadline passed in the mailbox.
    pub expired: u64,
    /// Handlers running right now.
    pub running: u64,
    /// Requests waiting in the mailbox right now.
    pub queued: usize,
    /// The mailbox's capacity.
    pub capacity: usize,
}

impl Mounted {
    pub(crate) fn snapshot(&self) -> HandlerStats {
        let c = &self.stats;
        HandlerStats {
            handler: self.def.type_name.to_owned(),
            workers: self.workers,
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            queued: self.queue.len(),
            capacity: self.queue.capacity().unwrap_or_default(),
        }
    }
}

impl Counters {
    pub(crate) fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// What stays visible of a handled value once it moved into its actors: enough for stats,
/// and nothing that keeps its mailbox open.
#[derive(Debug)]
pub(crate) struct Mounted {
    pub(crate) def: &'static HandlerDef,
    queue: flume::Receiver<Envelope>,
    stats: Arc<Counters>,
    workers: usize,
}

/// A freshly started handled value: its stats view, its routes, its actor tasks.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) mounted: Arc<Mounted>,
    pub(crate) routes: Vec<Route>,
    pub(crate) actors: Vec<JoinHandle<()>>,
}

/// Starts `workers` actors for `value` over one mailbox of `capacity`.
///
/// With more than one worker, each gets its own state from [`Handler::replicate`], or a
/// clone made by `replicate` when the caller asked for workers through the builder.
pub(crate) fn mount<H: Handler>(
    value: H,
    workers: usize,
    replicate: Option<fn(&H) -> H>,
    capacity: usize,
) -> Started {
    let def = H::DEF;
    let (tx, rx) = flume::bounded(capacity.max(1));
    let stats = Arc::new(Counters::default());
    let mut states = Vec::with_capacity(workers.max(1));
    for _ in 1..workers.max(1) {
        let copy = match replicate {
            Some(f) => Some(f(&value)),
            None => value.replicate(),
        };
        match copy {
            Some(copy) => states.push(copy),
            None => break,
        }
    }
    states.push(value);
    let actors: Vec<JoinHandle<()>> = states
        .into_iter()
        .map(|state| tokio::spawn(run(state, rx.clone(), stats.clone())))
        .collect();
    let routes = def
        .endpoints
        .iter()
        .enumerate()
        .map(|(index, ep)| Route {
            mailbox: tx.clone(),
            index,
            def: ep,
            stats: stats.clone(),
        })
        .collect();
    drop(tx);
    let mounted = Arc::new(Mounted {
        def,
        workers: actors.len(),
        queue: rx,
        stats,
    });
    Started {
        mounted,
        routes,
        actors,
    }
}

async fn run<H: Handler>(mut state: H, mailbox: flume::Receiver<Envelope>, stats: Arc<Counters>) {
    while let Ok(envelope) = mailbox.recv_async().await {
        let Envelope {
            index,
            request,
            caller,
            reply,
            client,
        } = envelope;
        if request.deadline.is_some_and(|d| d <= Instant::now()) {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            reply.send(Err(Error::timeout(
                &*request.service,
                format_args!(
                    "{}: deadline passed while queued; the handler did not run",
                    request.endpoint
                ),
            )));
            continue;
        }
        if reply.is_abandoned() {
            continue;
        }
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.running.fetch_add(1, Ordering::Relaxed);
        let service = request.service.clone();
        let endpoint = H::DEF.endpoints.get(index).map_or("", |e| e.name);
        let outcome = AssertUnwindSafe(call(&mut state, index, request, caller, client))
            .catch_unwind()
            .await;
        stats.running.fetch_sub(1, Ordering::Relaxed);
        let result = outcome.unwrap_or_else(|panic| {
            stats.panics.fetch_add(1, Ordering::Relaxed);
            let why = panic_message(&*panic);
            tracing::error!(service = %service, endpoint, "handler panicked: {why}");
            Err(Error::internal(
                &*service,
                format_args!("{endpoint} panicked: {why}"),
            ))
        });
        if result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        reply.send(result);
    }
}

async fn call<H: Handler>(
    state: &mut H,
    index: usize,
    request: Request,
    caller: Arc<str>,
    client: Client,
) -> Result<Payload, Error> {
    let Request {
        service,
        endpoint,
        metadata,
        deadline,
        payload,
        ..
    } = request;
    let ctx = Context::new(service, endpoint, caller, deadline, metadata, client);
    ctx.clone()
        .scope(state.dispatch(&ctx, index, payload))
        .await
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "a non-string panic payload"
    }
}
