//! The deadline: a call ends with a timeout error when its deadline passes.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use tokio::time::Instant;

use crate::middleware::Request;
use crate::{Error, Payload};

/// When a call must end, and what to say then.
pub(super) struct Deadline {
    at: Instant,
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    timeout: Option<Duration>,
}

impl Deadline {
    /// The deadline of `req`, if it has one.
    pub(super) fn of(req: &Request) -> Option<Self> {
        Some(Self {
            at: req.deadline?,
            service: req.service.clone(),
            endpoint: req.endpoint.clone(),
            timeout: req.options.timeout,
        })
    }
}

/// Runs `call` until `deadline`, then drops it (so cancels whatever runs below) and answers
/// with a timeout error. `call` includes waiting for the layers below to be ready, which is
/// part of the call and so bounded by its deadline too.
///
/// A step of the client's own path rather than a layer: its future is part of the call's,
/// not a box of its own (and a combinator rather than an `async fn`, which would hold
/// `call` twice: as its argument and in its state).
pub(super) fn within<F>(
    deadline: Option<Deadline>,
    call: F,
) -> impl Future<Output = Result<Payload, Error>>
where
    F: Future<Output = Result<Payload, Error>>,
{
    let Some(deadline) = deadline else {
        return Either::Left(call);
    };
    Either::Right(
        tokio::time::timeout_at(deadline.at, call)
            .map(move |result| result.unwrap_or_else(|_| Err(deadline.expired()))),
    )
}

impl Deadline {
    fn expired(self) -> Error {
        let Deadline {
            service,
            endpoint,
            timeout,
            ..
        } = self;
        match timeout {
            Some(timeout) => Error::timeout(
                "micro.client",
                format_args!("call to {service} {endpoint} timed out after {timeout:?}"),
            ),
            None => Error::timeout(
                "micro.client",
                format_args!("call to {service} {endpoint} passed its deadline"),
            ),
        }
    }
}
