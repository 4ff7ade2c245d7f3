//! The outermost layer: a call ends with a timeout error when its deadline passes.

use std::task::{Context, Poll};

use tower::{Service, ServiceExt};

use crate::middleware::Request;
use crate::{BoxFuture, Error, Payload};

/// Ends each call at its request's deadline, dropping (so cancelling) whatever runs below.
#[derive(Clone, Debug)]
pub(super) struct Deadline<S> {
    inner: S,
}

impl<S> Deadline<S> {
    pub(super) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Payload, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Payload;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Payload, Error>>;

    /// Always ready: waiting for the layers below to be ready is part of the call, and
    /// so bounded by its deadline.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.inner.clone();
        let Some(deadline) = req.deadline else {
            return Box::pin(inner.oneshot(req));
        };
        let (service, endpoint, timeout) = (
            req.service.clone(),
            req.endpoint.clone(),
            req.options.timeout,
        );
        let call = inner.oneshot(req);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, call).await {
                Ok(result) => result,
                Err(_) => Err(match timeout {
                    Some(timeout) => Error::timeout(
                        "micro.client",
                        format_args!("call to {service} {endpoint} timed out after {timeout:?}"),
                    ),
                    None => Error::timeout(
                        "micro.client",
                        format_args!("call to {service} {endpoint} passed its deadline"),
                    ),
                }),
            }
        })
    }
}
