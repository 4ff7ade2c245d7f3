use std::sync::Arc;
use std::task::{Context, Poll};

use super::AUTHORIZATION;
use crate::middleware::Request;

/// Attaches a bearer token to every call that carries none: a client layer.
///
/// A runtime with a token ([`RuntimeBuilder::token`](crate::RuntimeBuilder::token),
/// `MICRO_AUTH_TOKEN`) puts this layer on all its clients, so the calls a service's handlers
/// make through [`Context::client`](crate::Context::client) carry the service's own token.
///
/// ```
/// let client = micro::Client::builder()
///     .layer(micro::auth::TokenLayer::new("eyJ…"))
///     .build();
/// # drop(client);
/// ```
#[derive(Clone, Debug)]
pub struct TokenLayer {
    header: Arc<str>,
}

impl TokenLayer {
    /// A layer attaching `Authorization: Bearer <token>`.
    ///
    /// See the [type-level example](Self).
    pub fn new(token: impl AsRef<str>) -> Self {
        Self {
            header: Arc::from(format!("Bearer {}", token.as_ref())),
        }
    }
}

impl<S> tower::Layer<S> for TokenLayer {
    type Service = Token<S>;

    fn layer(&self, inner: S) -> Token<S> {
        Token {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service made by [`TokenLayer`].
#[derive(Clone, Debug)]
pub struct Token<S> {
    inner: S,
    header: Arc<str>,
}

impl<S: tower::Service<Request>> tower::Service<Request> for Token<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> S::Future {
        // A token given for this one call wins.
        if !req
            .metadata
            .keys()
            .any(|k| k.eq_ignore_ascii_case(AUTHORIZATION))
        {
            req.metadata
                .insert(AUTHORIZATION.to_owned(), self.header.to_string());
        }
        self.inner.call(req)
    }
}
