//! Middleware: one chain around every outgoing call, one around every incoming dispatch.
//!
//! A [`Middleware`] sees each [`Request`] on its way in, may change it, answer it itself
//! (an auth check, a rate limit), or pass it on through [`Next`], and sees the outcome on
//! the way back (metrics, tracing). The same trait serves both sides:
//!
//! - client side, installed with [`ClientBuilder::middleware`](crate::client::ClientBuilder::middleware):
//!   wraps every call made through that client, before a node is chosen;
//! - server side, installed with [`Service::middleware`](crate::Service::middleware): wraps
//!   every dispatch to a handler. It runs inside the handler's actor, after the request left
//!   the mailbox, so it sees the handler's real outcome (errors and panics included).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use micro::middleware::{Middleware, Next, Request};
//! use micro::{BoxFuture, Payload};
//!
//! #[derive(Debug, Default)]
//! struct CountCalls(AtomicUsize);
//!
//! impl Middleware for CountCalls {
//!     fn call<'a>(&'a self, req: Request, next: Next<'a>) -> BoxFuture<'a, micro::Result<Payload>> {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         next.run(req)
//!     }
//! }
//!
//! let counter = Arc::new(CountCalls::default());
//! let client = micro::Client::builder().middleware(counter.clone()).build();
//! # drop(client);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::{BoxFuture, Error, Metadata, Payload};

/// A call passing through a middleware chain.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request {
    /// The service addressed.
    pub service: Arc<str>,
    /// The endpoint's wire name, such as `Greeter.SayHello`.
    pub endpoint: Cow<'static, str>,
    /// Metadata; a client middleware may add entries (an auth token, a trace id).
    pub metadata: Metadata,
    /// When the caller stops waiting.
    pub deadline: Option<Instant>,
    /// The body.
    pub payload: Payload,
}

/// Code that runs around calls. See the [module docs](self).
pub trait Middleware: Send + Sync + 'static {
    /// Handles `req`, usually by passing it on with `next.run(req)`.
    fn call<'a>(&'a self, req: Request, next: Next<'a>) -> BoxFuture<'a, Result<Payload, Error>>;
}

impl<M: Middleware + ?Sized> Middleware for Arc<M> {
    fn call<'a>(&'a self, req: Request, next: Next<'a>) -> BoxFuture<'a, Result<Payload, Error>> {
        (**self).call(req, next)
    }
}

type Terminal<'a> = Box<dyn FnOnce(Request) -> BoxFuture<'a, Result<Payload, Error>> + Send + 'a>;

/// The rest of the chain after the current middleware.
pub struct Next<'a> {
    chain: &'a [Arc<dyn Middleware>],
    terminal: Terminal<'a>,
}

impl<'a> Next<'a> {
    pub(crate) fn new(chain: &'a [Arc<dyn Middleware>], terminal: Terminal<'a>) -> Self {
        Self { chain, terminal }
    }

    /// Passes `req` to the next middleware, or to the call itself at the end of the chain.
    ///
    /// See the [module docs](self).
    pub fn run(self, req: Request) -> BoxFuture<'a, Result<Payload, Error>> {
        match self.chain.split_first() {
            Some((first, rest)) => first.call(req, Next::new(rest, self.terminal)),
            None => (self.terminal)(req),
        }
    }
}

impl fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// An ordered list of middleware, cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Chain(Arc<[Arc<dyn Middleware>]>);

impl Chain {
    pub(crate) fn push(&mut self, m: Arc<dyn Middleware>) {
        let mut v: Vec<_> = self.0.iter().cloned().collect();
        v.push(m);
        self.0 = v.into();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn run<'a>(
        &'a self,
        req: Request,
        terminal: Terminal<'a>,
    ) -> BoxFuture<'a, Result<Payload, Error>> {
        Next::new(&self.0, terminal).run(req)
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({} middleware)", self.0.len())
    }
}
