//! The deadline: a call ends with a timeout error when its deadline passes.

use std::future::Future;

use crate::middleware::Request;
use crate::{Error, Payload};

/// Runs `call` on `req` until the request's deadline, then drops it (so cancels whatever
/// runs below) and answers with a timeout error. `call` includes waiting for the layers
/// below to be ready, which is part of the call and so bounded by its deadline too.
///
/// A step of the client's own path rather than a layer: its future is part of the call's,
/// not a box of its own.
pub(super) async fn within<F>(req: Request, call: impl FnOnce(Request) -> F) -> Result<Payload, Error>
where
    F: Future<Output = Result<Payload, Error>>,
{
    let Some(deadline) = req.deadline else {
        return call(req).await;
    };
    let (service, endpoint, timeout) = (
        req.service.clone(),
        req.endpoint.clone(),
        req.options.timeout,
    );
    match tokio::time::timeout_at(deadline, call(req)).await {
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
}
