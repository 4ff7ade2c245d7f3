use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};

use super::{ACCOUNT, Authenticate, Resource, Rules, bearer};
use crate::middleware::Request;
use crate::{Error, Payload};

/// Checks every request's bearer token against the rules before it takes a mailbox slot: a
/// server layer, for [`Service::layer`](crate::Service::layer).
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    authenticate: Box<dyn Authenticate>,
    rules: Rules,
}

impl AuthLayer {
    /// Verifies tokens with `authenticate`, and lets in what `rules` allow.
    ///
    /// See the [module docs](super) for an example.
    pub fn new(authenticate: impl Authenticate, rules: Rules) -> Self {
        Self {
            shared: Arc::new(Shared {
                authenticate: Box::new(authenticate),
                rules,
            }),
        }
    }

    /// Authenticates and authorizes `req`; on success, records the caller's account id in
    /// its metadata ([`ACCOUNT`]).
    fn check(&self, req: &mut Request) -> Result<(), Error> {
        // Only this layer says who the caller is.
        req.metadata.retain(|k, _| !k.eq_ignore_ascii_case(ACCOUNT));
        let account = match bearer(&req.metadata) {
            None => None,
            Some(token) => Some(self.shared.authenticate.inspect(token?)?),
        };
        let resource = Resource::service(&*req.service, &*req.endpoint);
        self.shared.rules.verify(account.as_ref(), &resource)?;
        if let Some(account) = account {
            req.metadata.insert(ACCOUNT.to_owned(), account.id);
        }
        Ok(())
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> tower::Service<Request> for Auth<S>
where
    S: tower::Service<Request, Response = Payload, Error = Error>,
{
    type Response = Payload;
    type Error = Error;
    type Future = Either<Ready<Result<Payload, Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.layer.check(&mut req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(e) => {
                tracing::debug!(service = %req.service, endpoint = %req.endpoint, caller = %req.caller, "refused: {e}");
                Either::Left(ready(Err(e)))
            }
        }
    }
}
