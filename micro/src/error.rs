//! The error type that crosses the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A `Result` whose error is [`micro::Error`](Error).
///
/// ```
/// fn check(n: i32) -> micro::Result<i32> {
///     if n < 0 {
///         return Err(micro::Error::bad_request("greeter", "n must not be negative"));
///     }
///     Ok(n)
/// }
/// assert_eq!(check(-1).unwrap_err().code, 400);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error that travels between services.
///
/// It serializes to the same JSON as go-micro's `errors.Error`, so tools written for
/// go-micro read it unchanged:
///
/// ```
/// let err = micro::Error::not_found("greeter", "no user 42");
/// assert_eq!(
///     serde_json::to_string(&err).unwrap(),
///     r#"{"id":"greeter","code":404,"detail":"no user 42","status":"Not Found"}"#,
/// );
/// ```
///
/// `id` names who produced the error (a service name, or `micro.client` / `micro.server` for
/// the framework itself), `code` is an HTTP status code, `detail` is for people, and `status`
/// is the HTTP reason phrase for `code`.
///
/// Handlers may return any error type that converts into this one (`E: Into<micro::Error>`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// Who produced the error: a service name, `micro.client` or `micro.server`.
    #[serde(default)]
    pub id: String,
    /// HTTP status code: 400, 404, 408, 500, 503, …
    #[serde(default)]
    pub code: u16,
    /// Human-readable explanation.
    #[serde(default)]
    pub detail: String,
    /// HTTP reason phrase for `code` ("Not Found").
    #[serde(default)]
    pub status: String,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(id: impl Into<String>, detail: impl fmt::Display) -> Self {
                Self::new(id, $code, detail)
            }
        )*
    };
}

impl Error {
    /// An error with any status code; `status` is filled in from the code.
    ///
    /// ```
    /// let err = micro::Error::new("billing", 402, "card declined");
    /// assert_eq!(err.status, "Payment Required");
    /// ```
    pub fn new(id: impl Into<String>, code: u16, detail: impl fmt::Display) -> Self {
        Self {
            id: id.into(),
            code,
            detail: detail.to_string(),
            status: reason_phrase(code).to_owned(),
        }
    }

    constructors! {
        /// 400: the request cannot be understood (bad JSON, a value out of range…).
        ///
        /// ```
        /// assert_eq!(micro::Error::bad_request("svc", "empty name").code, 400);
        /// ```
        bad_request => 400;
        /// 401: the caller is not authenticated.
        ///
        /// ```
        /// assert_eq!(micro::Error::unauthorized("svc", "no token").code, 401);
        /// ```
        unauthorized => 401;
        /// 403: the caller may not do this.
        ///
        /// ```
        /// assert_eq!(micro::Error::forbidden("svc", "admins only").code, 403);
        /// ```
        forbidden => 403;
        /// 404: no such thing (also: unknown service, unknown endpoint).
        ///
        /// ```
        /// assert_eq!(micro::Error::not_found("svc", "no user 42").code, 404);
        /// ```
        not_found => 404;
        /// 408: the call's deadline passed.
        ///
        /// ```
        /// assert!(micro::Error::timeout("svc", "too slow").is_timeout());
        /// ```
        timeout => 408;
        /// 409: the request conflicts with the current state.
        ///
        /// ```
        /// assert_eq!(micro::Error::conflict("svc", "already exists").code, 409);
        /// ```
        conflict => 409;
        /// 500: the service failed (including a panicking handler).
        ///
        /// ```
        /// assert_eq!(micro::Error::internal("svc", "disk full").code, 500);
        /// ```
        internal => 500;
        /// 503: the service's mailbox is full; the request was rejected before it ran, so it is
        /// safe to retry after a pause.
        ///
        /// ```
        /// assert!(micro::Error::overloaded("svc", "mailbox full").is_overloaded());
        /// ```
        overloaded => 503;
    }

    /// 502: no node could be reached (no nodes registered, connection refused or lost).
    ///
    /// Uses 502 "Bad Gateway" so that it stays distinct from [`overloaded`](Self::overloaded).
    ///
    /// ```
    /// assert!(micro::Error::unavailable("micro.client", "no nodes").is_unavailable());
    /// ```
    pub fn unavailable(id: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self::new(id, 502, detail)
    }

    /// Whether this is a [`timeout`](Self::timeout) (408).
    ///
    /// ```
    /// assert!(micro::Error::timeout("svc", "slow").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.code == 408
    }

    /// Whether this is an [`overloaded`](Self::overloaded) rejection (503).
    ///
    /// ```
    /// assert!(!micro::Error::internal("svc", "boom").is_overloaded());
    /// ```
    pub fn is_overloaded(&self) -> bool {
        self.code == 503
    }

    /// Whether this is [`unavailable`](Self::unavailable) (502): nothing reached a handler.
    ///
    /// ```
    /// assert!(micro::Error::unavailable("micro.client", "refused").is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        self.code == 502
    }

    /// Parses the JSON form, as printed by go-micro or by [`Display`](fmt::Display)'s
    /// alternate form. Text that is not such JSON becomes an internal error with it as detail.
    ///
    /// ```
    /// let err = micro::Error::parse(r#"{"id":"svc","code":404,"detail":"gone","status":"Not Found"}"#);
    /// assert_eq!(err, micro::Error::not_found("svc", "gone"));
    /// assert_eq!(micro::Error::parse("boom").detail, "boom");
    /// ```
    pub fn parse(text: &str) -> Self {
        match serde_json::from_str::<Error>(text) {
            Ok(err) if err.code != 0 => err,
            _ => Self::internal("", text),
        }
    }
}

/// `id: detail (code status)`; the alternate form (`{:#}`) prints the JSON.
///
/// ```
/// let err = micro::Error::timeout("greeter", "deadline exceeded");
/// assert_eq!(err.to_string(), "greeter: deadline exceeded (408 Request Timeout)");
/// assert!(format!("{err:#}").starts_with('{'));
/// ```
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
            return f.write_str(&json);
        }
        if !self.id.is_empty() {
            write!(f, "{}: ", self.id)?;
        }
        write!(f, "{} ({} {})", self.detail, self.code, self.status)
    }
}

/// `{:?}` prints the [`Display`](fmt::Display) line, because that is what a `main` returning
/// `micro::Result` shows when it fails (`Error: micro.config: invalid MICRO_REGISTRY …`); the
/// alternate form (`{:#?}`) prints the fields.
///
/// ```
/// let err = micro::Error::not_found("greeter", "no user 42");
/// assert_eq!(format!("{err:?}"), "greeter: no user 42 (404 Not Found)");
/// assert!(format!("{err:#?}").contains("code: 404"));
/// ```
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        f.debug_struct("Error")
            .field("id", &self.id)
            .field("code", &self.code)
            .field("detail", &self.detail)
            .field("status", &self.status)
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal("", err)
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}
