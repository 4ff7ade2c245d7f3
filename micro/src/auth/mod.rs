//! Authentication and authorization: bearer tokens in call metadata, checked against access
//! rules before a request takes a mailbox slot.
//!
//! A caller sends `Authorization: Bearer <token>` in its call metadata (a client of a
//! runtime with a [token](crate::RuntimeBuilder::token) or `MICRO_AUTH_TOKEN` does so on
//! every call; `micro call --token` too). A service guards its endpoints with an
//! [`AuthLayer`]: it turns the token into an [`Account`] through an [`Authenticate`]
//! implementation (such as [`Jwt`], feature `jwt`), then asks the [`Rules`] whether that
//! account (or nobody, without a token) may call the endpoint. A refused request never
//! reaches the handler's mailbox; the caller gets
//!
//! - `401 unauthorized` when the token is missing or invalid (expired, badly signed…) and
//!   the rules do not let anonymous callers in,
//! - `403 forbidden` when the token is valid but the rules refuse its account.
//!
//! Rules follow go-micro's: a rule names a [`Resource`] (type, name, endpoint; `*` matches
//! any, `Greeter.*` every endpoint of a handler), the scope an account needs (`""`: anyone,
//! even without a token; `"*"`: any authenticated account; otherwise a scope the account
//! holds), whether it grants or denies, and a priority: the matching rule of highest
//! priority decides, and no matching rule means no access.
//!
//! ```
//! use micro::auth::{Access, Account, AuthLayer, Authenticate, Resource, Rule, Rules};
//! use micro::prelude::*;
//!
//! #[derive(Default)]
//! struct Vault;
//!
//! #[micro::service(name = "vault")]
//! impl Vault {
//!     pub async fn peek(&self) -> micro::Result<String> { Ok("gold".into()) }
//! }
//!
//! // Fixed tokens for the example; in production, `micro::auth::Jwt` (feature `jwt`).
//! #[derive(Debug)]
//! struct Tokens;
//! impl Authenticate for Tokens {
//!     fn inspect(&self, token: &str) -> Result<Account, micro::Error> {
//!         match token {
//!             "ada-token" => Ok(Account::new("ada").scope("vault.read")),
//!             "bob-token" => Ok(Account::new("bob")),
//!             _ => Err(micro::Error::unauthorized("vault", "unknown token")),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> micro::Result<()> {
//! let rules = Rules::new([Rule::new(Resource::service("vault", "Vault.*"), "vault.read", Access::Granted)]);
//! let runtime = micro::Runtime::in_memory();
//! let service = runtime.service("vault")
//!     .handle(Vault)
//!     .layer(AuthLayer::new(Tokens, rules))
//!     .start().await?;
//!
//! let vault = VaultClient::new(runtime.client());
//! let gold = vault.peek().metadata("Authorization", "Bearer ada-token").await?;
//! assert_eq!(gold, "gold");
//! assert_eq!(vault.peek().await.unwrap_err().code, 401); // no token
//! let refused = vault.peek().metadata("Authorization", "Bearer bob-token").await;
//! assert_eq!(refused.unwrap_err().code, 403); // no `vault.read` scope
//! # service.stop().await;
//! # Ok(()) }
//! ```

#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod rules;
mod token;

/// Keys and algorithms for [`Jwt::with_keys`], from the `jsonwebtoken` crate.
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
#[cfg(feature = "jwt")]
pub use jwt::Jwt;
pub use layer::{Auth, AuthLayer};
pub use rules::{Access, Resource, Rule, Rules};
pub use token::{Token, TokenLayer};

use std::collections::HashMap;

use crate::{Error, Metadata};

/// The metadata key of a call's bearer token, as HTTP's header.
pub const AUTHORIZATION: &str = "Authorization";

/// The metadata key under which a guarded handler finds the id of the caller's account
/// (set by [`AuthLayer`]; a value sent by the caller is removed).
pub const ACCOUNT: &str = "Micro-Account";

/// Who a valid token speaks for.
///
/// ```
/// let account = micro::auth::Account::new("ada").scope("admin");
/// assert!(account.scopes.contains(&"admin".to_string()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// The account's id (a JWT's `sub`).
    pub id: String,
    /// What it may do, as rules name it.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Anything else the issuer recorded.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl Account {
    /// An account with no scopes.
    ///
    /// See the [type-level example](Self).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// Adds a scope.
    ///
    /// See the [type-level example](Self).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }
}

/// Turns a bearer token into the account it speaks for.
///
/// ```
/// use micro::auth::{Account, Authenticate};
///
/// // Fixed tokens, for a test.
/// #[derive(Debug)]
/// struct Fixed;
/// impl Authenticate for Fixed {
///     fn inspect(&self, token: &str) -> Result<Account, micro::Error> {
///         match token {
///             "ada-token" => Ok(Account::new("ada")),
///             _ => Err(micro::Error::unauthorized("auth", "unknown token")),
///         }
///     }
/// }
/// assert_eq!(Fixed.inspect("ada-token").unwrap().id, "ada");
/// ```
pub trait Authenticate: Send + Sync + std::fmt::Debug + 'static {
    /// The account `token` speaks for.
    ///
    /// # Errors
    /// When the token is not valid (badly formed or signed, expired): a `401` error saying why.
    fn inspect(&self, token: &str) -> Result<Account, Error>;
}

/// The token check that settings ask for (`MICRO_AUTH=jwt` with `MICRO_AUTH_KEY`,
/// `MICRO_AUTH_ISSUER` and `MICRO_AUTH_PUBLIC`), to run before every other layer of a
/// service; `None` when they ask for none.
///
/// The rules: any valid token may call every endpoint, and the endpoints of
/// `MICRO_AUTH_PUBLIC` (`Debug.Health`, `Greeter.*`) take callers without one. Finer rules
/// are given in code, with an [`AuthLayer`] of their own.
pub(crate) fn from_options(options: &crate::config::Options) -> Result<Option<AuthLayer>, Error> {
    match options.auth.as_deref() {
        None | Some("none") => Ok(None),
        #[cfg(feature = "jwt")]
        Some("jwt") => {
            let Some(key) = &options.auth_key else {
                return Err(Error::bad_request(
                    "micro.auth",
                    "MICRO_AUTH=jwt needs MICRO_AUTH_KEY",
                ));
            };
            let mut jwt = Jwt::from_key_file(key)?;
            if let Some(issuer) = &options.auth_issuer {
                jwt = jwt.issuer(issuer);
            }
            let public = options.auth_public.iter().map(|endpoint| {
                Rule::new(Resource::service("*", endpoint), "", Access::Granted).priority(1)
            });
            let rules =
                Rules::new(public.chain([Rule::new(Resource::any(), "*", Access::Granted)]));
            Ok(Some(AuthLayer::new(jwt, rules)))
        }
        Some(other) => Err(Error::bad_request(
            "micro.auth",
            format_args!("MICRO_AUTH={other} is not built in (features: jwt)"),
        )),
    }
}

/// The bearer token in `metadata`, if any (the key in any letter case).
///
/// ```
/// let mut md = micro::Metadata::new();
/// md.insert("authorization".into(), "Bearer abc".into());
/// assert_eq!(micro::auth::bearer(&md), Some(Ok("abc")));
/// md.insert("authorization".into(), "Basic abc".into());
/// assert!(matches!(micro::auth::bearer(&md), Some(Err(_))));
/// ```
pub fn bearer(metadata: &Metadata) -> Option<Result<&str, Error>> {
    let value = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(AUTHORIZATION))
        .map(|(_, v)| v.trim())?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    Some(token.ok_or_else(|| {
        Error::unauthorized(
            "micro.auth",
            "the Authorization metadata is not `Bearer <token>`",
        )
    }))
}
