//! Mailbox actors: each owns a service value and runs its handlers in turns: `&self`
//! handlers together, `&mut self` handlers alone, in arrival order.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{Envelope, ReplyTo, Route};
use crate::client::Client;
use crate::handler::{Handler, HandlerDef, Reads, Turn};
use crate::metrics::Side;
use crate::middleware::Request;
use crate::telemetry::{TraceParent, trace};
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
    pub(crate) reads: AtomicU64,
    pub(crate) reads_peak: AtomicU64,
    pub(crate) restarts: AtomicU64,
}

/// A snapshot of one handled type's counters, from
/// [`RunningService::stats`](crate::RunningService::stats).
///
/// Fields added after the first release default to zero when read from an older peer's
/// `Debug.Stats`.
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
    /// Handlers running right now, reads and writes.
    pub running: u64,
    /// Requests waiting in the mailbox right now.
    pub queued: usize,
    /// The mailbox's capacity.
    pub capacity: usize,
    /// Read turns (`&self` handlers) running right now, over all workers.
    #[serde(default)]
    pub reads: u64,
    /// The most read turns seen running at once since the service started.
    #[serde(default)]
    pub reads_peak: u64,
    /// The most read turns one actor runs at once (`reads = N`).
    #[serde(default)]
    pub read_limit: usize,
    /// States rebuilt after a write turn panicked (`on_panic = "rebuild"` or
    /// [`Service::handle_factory`](crate::Service::handle_factory)).
    #[serde(default)]
    pub restarts: u64,
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
            reads: c.reads.load(Ordering::Relaxed),
            reads_peak: c.reads_peak.load(Ordering::Relaxed),
            read_limit: self.read_limit,
            restarts: c.restarts.load(Ordering::Relaxed),
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
    read_limit: usize,
}

/// A freshly started handled value: its stats view, its routes, its actor tasks.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) mounted: Arc<Mounted>,
    pub(crate) routes: Vec<Route>,
    pub(crate) actors: Vec<JoinHandle<()>>,
}

/// Makes a handled type's state: the first one, one per worker, and a fresh one after a write
/// turn panicked.
pub(crate) type Factory<H> = Arc<dyn Fn() -> H + Send + Sync>;

/// How to run one handled type's actors, from its attribute and the service's builder.
pub(crate) struct Plan<H> {
    /// Actors over the one mailbox.
    pub(crate) workers: usize,
    /// Copies the state for each extra worker, when the builder asked for workers; else
    /// [`Handler::replicate`].
    pub(crate) replicate: Option<fn(&H) -> H>,
    /// Mailbox capacity.
    pub(crate) capacity: usize,
    /// Read turns per actor at once.
    pub(crate) reads: usize,
    /// Rebuilds the state after a write turn panicked, and makes each worker's; else
    /// [`Handler::rebuild`].
    pub(crate) factory: Option<Factory<H>>,
}

/// Starts the actors of `plan` for `value` over one mailbox.
///
/// With more than one worker, each gets its own state: from the plan's factory, else from
/// its `replicate`, else from [`Handler::replicate`].
pub(crate) fn mount<H: Handler>(value: H, plan: Plan<H>) -> Started {
    let def = H::DEF;
    let (tx, rx) = flume::bounded(plan.capacity.max(1));
    let stats = Arc::new(Counters::default());
    let workers = plan.workers.max(1);
    let mut states = Vec::with_capacity(workers);
    for _ in 1..workers {
        let copy = match (&plan.factory, plan.replicate) {
            (Some(make), _) => Some(make()),
            (None, Some(f)) => Some(f(&value)),
            (None, None) => value.replicate(),
        };
        match copy {
            Some(copy) => states.push(copy),
            None => break,
        }
    }
    states.push(value);
    let read_limit = plan.reads.max(1);
    let actors: Vec<JoinHandle<()>> = states
        .into_iter()
        .map(|state| {
            let actor = Actor {
                mailbox: rx.clone(),
                stats: stats.clone(),
                read_limit,
                factory: plan.factory.clone(),
            };
            tokio::spawn(actor.run(state))
        })
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
        read_limit,
    });
    Started {
        mounted,
        routes,
        actors,
    }
}

/// One actor: everything but the state it owns.
struct Actor<H> {
    mailbox: flume::Receiver<Envelope>,
    stats: Arc<Counters>,
    read_limit: usize,
    factory: Option<Factory<H>>,
}

impl<H: Handler> Actor<H> {
    /// Alternates read phases, where `&self` handlers run together, and write turns, which
    /// run alone, until the mailbox closes.
    async fn run(self, mut state: H) {
        loop {
            let Some(write) = self.read_phase(state.reads()).await else {
                return;
            };
            self.write_turn(&mut state, write).await;
        }
    }

    /// Takes requests in arrival order and runs the reads among them together, up to the read
    /// limit, until a write is next: then stops taking requests, lets the reads in flight
    /// finish, and returns the write. `None` once the mailbox closed and the reads finished.
    ///
    /// Only `&dyn Reads`, which is `Sync`, is held across awaits: the actor's future stays
    /// `Send` for every `H: Send`, as a write-only service need not be `Sync`.
    async fn read_phase(&self, reader: Option<&dyn Reads>) -> Option<Envelope> {
        let mut reads = FuturesUnordered::new();
        let write = loop {
            let received = if reads.len() >= self.read_limit {
                reads.next().await;
                continue;
            } else if reads.is_empty() {
                self.mailbox.recv_async().await
            } else {
                tokio::select! {
                    biased;
                    Some(()) = reads.next() => continue,
                    received = self.mailbox.recv_async() => received,
                }
            };
            let Ok(envelope) = received else {
                break None;
            };
            let Some(envelope) = self.admit(envelope) else {
                continue;
            };
            match (turn::<H>(envelope.index), reader) {
                (Turn::Read, Some(reader)) => reads.push(self.read_turn(reader, envelope)),
                _ => break Some(envelope),
            }
        };
        while reads.next().await.is_some() {}
        write
    }

    /// Answers a request whose caller stopped waiting before its turn came, and returns the
    /// others.
    fn admit(&self, envelope: Envelope) -> Option<Envelope> {
        let request = &envelope.request;
        if request.deadline.is_some_and(|d| d <= Instant::now()) {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
            let error = Error::timeout(
                &*request.service,
                format_args!(
                    "{}: deadline passed while queued; the handler did not run",
                    request.endpoint
                ),
            );
            envelope.reply.send(Err(error));
            return None;
        }
        (!envelope.reply.is_abandoned()).then_some(envelope)
    }

    /// Runs one `&self` handler. A local caller that drops its call drops this turn with it:
    /// a read changes nothing, so stopping it halfway loses nothing.
    async fn read_turn(&self, reader: &dyn Reads, envelope: Envelope) {
        let Envelope {
            index,
            request,
            caller,
            mut reply,
            client,
        } = envelope;
        let turn = Running::new(&self.stats, Turn::Read);
        let service = request.service.clone();
        let work =
            AssertUnwindSafe(call_read(reader, index, request, caller, client)).catch_unwind();
        let outcome = match &mut reply {
            ReplyTo::Local(tx) => {
                tokio::select! {
                    outcome = work => outcome,
                    () = tx.closed() => return,
                }
            }
            ReplyTo::Remote { .. } => work.await,
        };
        // Counted as ended before the caller hears back, so stats it reads next agree.
        drop(turn);
        self.finish(&service, index, outcome, reply);
    }

    /// Runs one `&mut self` handler alone; after a panic, rebuilds the state when the policy
    /// says so.
    async fn write_turn(&self, state: &mut H, envelope: Envelope) {
        // The reads before it may have taken a while: look again.
        let Some(envelope) = self.admit(envelope) else {
            return;
        };
        let Envelope {
            index,
            request,
            caller,
            reply,
            client,
        } = envelope;
        let service = request.service.clone();
        let outcome = {
            let _turn = Running::new(&self.stats, Turn::Write);
            AssertUnwindSafe(call(state, index, request, caller, client))
                .catch_unwind()
                .await
        };
        let panicked = outcome.is_err();
        self.finish(&service, index, outcome, reply);
        if panicked {
            self.restart(state, &service);
        }
    }

    /// Replaces a state a panic may have left half-updated, when the policy says so.
    fn restart(&self, state: &mut H, service: &str) {
        let fresh = match &self.factory {
            Some(make) => std::panic::catch_unwind(AssertUnwindSafe(|| Some(make()))),
            None => std::panic::catch_unwind(H::rebuild),
        };
        match fresh {
            Ok(Some(fresh)) => {
                *state = fresh;
                self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    service,
                    handler = H::DEF.type_name,
                    "state rebuilt after a panic"
                );
            }
            Ok(None) => {}
            Err(panic) => tracing::error!(
                service,
                handler = H::DEF.type_name,
                "rebuilding the state panicked, so it stays as the handler left it: {}",
                panic_message(&*panic)
            ),
        }
    }

    /// Counts an outcome and sends it to the caller.
    fn finish(
        &self,
        service: &str,
        index: usize,
        outcome: Result<Result<Payload, Error>, Box<dyn Any + Send>>,
        reply: ReplyTo,
    ) {
        let result = outcome.unwrap_or_else(|panic| {
            self.stats.panics.fetch_add(1, Ordering::Relaxed);
            let endpoint = H::DEF.endpoints.get(index).map_or("", |e| e.name);
            let why = panic_message(&*panic);
            tracing::error!(service, endpoint, "handler panicked: {why}");
            Err(Error::internal(
                service,
                format_args!("{endpoint} panicked: {why}"),
            ))
        });
        if result.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        reply.send(result);
    }
}

/// How endpoint `index` takes the state; an unknown index is a write, which answers it with
/// an error.
fn turn<H: Handler>(index: usize) -> Turn {
    H::DEF.endpoints.get(index).map_or(Turn::Write, |e| e.turn)
}

/// Counts a turn as running for as long as it lives, dropped or finished.
struct Running<'a> {
    stats: &'a Counters,
    turn: Turn,
}

impl<'a> Running<'a> {
    fn new(stats: &'a Counters, turn: Turn) -> Self {
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.running.fetch_add(1, Ordering::Relaxed);
        if turn == Turn::Read {
            let now = stats.reads.fetch_add(1, Ordering::Relaxed) + 1;
            stats.reads_peak.fetch_max(now, Ordering::Relaxed);
        }
        Running { stats, turn }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        if self.turn == Turn::Read {
            self.stats.reads.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Counts a handler's outcome in the metrics (when on) and on its span.
fn record(
    observe: &crate::metrics::Observe,
    start: Option<Instant>,
    ctx: &Context,
    span: &tracing::Span,
    result: &Result<Payload, Error>,
) {
    if let Some(start) = start {
        let code = result.as_ref().err().map_or(0, |e| e.code);
        observe.call(
            Side::Server,
            ctx.service(),
            ctx.endpoint(),
            start.elapsed(),
            code,
        );
    }
    trace::record_outcome(span, result);
}

/// Runs one `&self` handler in its context.
async fn call_read(
    reader: &dyn Reads,
    index: usize,
    request: Request,
    caller: Arc<str>,
    client: Client,
) -> Result<Payload, Error> {
    let observe = client.runtime().observe().clone();
    let start = observe.enabled().then(Instant::now);
    let (ctx, span) = context(request.service.clone(), &request, caller, client);
    let result = ctx
        .clone()
        .scope(reader.dispatch_read(&ctx, index, request.payload))
        .instrument(span.clone())
        .await;
    record(&observe, start, &ctx, &span, &result);
    result
}

/// Runs one `&mut self` handler in its context.
async fn call<H: Handler>(
    state: &mut H,
    index: usize,
    request: Request,
    caller: Arc<str>,
    client: Client,
) -> Result<Payload, Error> {
    let observe = client.runtime().observe().clone();
    let start = observe.enabled().then(Instant::now);
    let (ctx, span) = context(request.service.clone(), &request, caller, client);
    let result = ctx
        .clone()
        .scope(state.dispatch(&ctx, index, request.payload))
        .instrument(span.clone())
        .await;
    record(&observe, start, &ctx, &span, &result);
    result
}

/// The handler's context, and the `serve` span it runs in: a child of the caller's.
fn context(
    service: Arc<str>,
    request: &Request,
    caller: Arc<str>,
    client: Client,
) -> (Context, tracing::Span) {
    let span = trace::server_span(&service, &request.endpoint);
    let trace = trace::link(&span, TraceParent::from_metadata(&request.metadata));
    let ctx = Context::new(
        service,
        request.endpoint.clone(),
        caller,
        request.deadline,
        request.metadata.clone(),
        client,
        trace,
    );
    (ctx, span)
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

#[cfg(test)]
mod tests {
    use super::HandlerStats;

    #[test]
    fn stats_from_a_peer_without_turns_still_parse() {
        let older = r#"{"handler":"Greeter","workers":1,"calls":3,"errors":0,"panics":0,
            "rejected":0,"expired":0,"running":0,"queued":0,"capacity":1024}"#;
        let stats: HandlerStats = serde_json::from_str(older).unwrap();
        assert_eq!((stats.calls, stats.reads_peak, stats.restarts), (3, 0, 0));
        let now = serde_json::to_value(&stats).unwrap();
        for field in ["reads", "reads_peak", "read_limit", "restarts"] {
            assert!(now.get(field).is_some(), "{field} missing from {now}");
        }
    }
}
