use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{Account, Authenticate};
use crate::Error;

/// JSON Web Tokens (through the `jsonwebtoken` crate): issues tokens for accounts and
/// verifies them. Claims: `sub` (the account id), `exp`, `scopes`, `metadata`, and `iss`
/// when an issuer is set.
///
/// ```
/// use std::time::Duration;
/// use micro::auth::{Account, Authenticate, Jwt};
///
/// let jwt = Jwt::hs256(b"a secret of at least 32 bytes, please!");
/// let token = jwt.issue(&Account::new("ada").scope("admin"), Duration::from_secs(60))?;
/// assert_eq!(jwt.inspect(&token)?.scopes, ["admin"]);
///
/// let forged = Jwt::hs256(b"another secret of at least 32 bytes!!").issue(&Account::new("eve"), Duration::from_secs(60))?;
/// assert_eq!(jwt.inspect(&forged).unwrap_err().code, 401);
/// # Ok::<(), micro::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
#[derive(Clone)]
pub struct Jwt {
    inner: Arc<Keys>,
}

struct Keys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    issuer: Option<String>,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.inner.algorithm)
            .field("issues", &self.inner.encoding.is_some())
            .field("issuer", &self.inner.issuer)
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    metadata: HashMap<String, String>,
}

impl Jwt {
    /// HMAC-SHA256 with a shared secret: every service that verifies can also issue.
    ///
    /// See the [type-level example](Self).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        Self::with_keys(
            Algorithm::HS256,
            Some(EncodingKey::from_secret(secret)),
            DecodingKey::from_secret(secret),
        )
    }

    /// Any algorithm `jsonwebtoken` supports, such as RS256 or EdDSA with keys from DER:
    /// services that only verify get no encoding key.
    ///
    /// ```
    /// use micro::auth::{Algorithm, DecodingKey};
    /// let verify_only = micro::auth::Jwt::with_keys(Algorithm::HS256, None, DecodingKey::from_secret(b"k"));
    /// assert!(verify_only.issue(&micro::auth::Account::new("x"), std::time::Duration::from_secs(1)).is_err());
    /// ```
    pub fn with_keys(
        algorithm: Algorithm,
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
    ) -> Self {
        Self {
            inner: Arc::new(Keys {
                algorithm,
                encoding,
                decoding,
                issuer: None,
            }),
        }
    }

    /// Issued tokens name this issuer, and only tokens naming it are accepted.
    ///
    /// ```
    /// let jwt = micro::auth::Jwt::hs256(b"a secret of at least 32 bytes, please!").issuer("shippy");
    /// # drop(jwt);
    /// ```
    #[must_use]
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        let keys = &self.inner;
        Self {
            inner: Arc::new(Keys {
                algorithm: keys.algorithm,
                encoding: keys.encoding.clone(),
                decoding: keys.decoding.clone(),
                issuer: Some(issuer.into()),
            }),
        }
    }

    /// A token for `account`, valid for `ttl`.
    ///
    /// # Errors
    /// When this value has no key to sign with.
    ///
    /// See the [type-level example](Self).
    pub fn issue(&self, account: &Account, ttl: Duration) -> Result<String, Error> {
        self.issue_until(account, SystemTime::now() + ttl)
    }

    /// A token for `account` that expires at `expiry` (whole seconds; verifiers allow a
    /// minute of clock skew, as `jsonwebtoken` does by default).
    ///
    /// # Errors
    /// When this value has no key to sign with.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use micro::auth::{Account, Authenticate, Jwt};
    /// let jwt = Jwt::hs256(b"a secret of at least 32 bytes, please!");
    /// let old = jwt.issue_until(&Account::new("ada"), UNIX_EPOCH + Duration::from_secs(1_000_000))?;
    /// assert_eq!(jwt.inspect(&old).unwrap_err().detail, "the token has expired");
    /// # Ok::<(), micro::Error>(())
    /// ```
    pub fn issue_until(&self, account: &Account, expiry: SystemTime) -> Result<String, Error> {
        let key = self.inner.encoding.as_ref().ok_or_else(|| {
            Error::internal(
                "micro.auth",
                "this jwt value only verifies: it has no signing key",
            )
        })?;
        let claims = Claims {
            sub: account.id.clone(),
            exp: expiry
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            iss: self.inner.issuer.clone(),
            scopes: account.scopes.clone(),
            metadata: account.metadata.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.inner.algorithm), &claims, key)
            .map_err(|e| Error::internal("micro.auth", format_args!("cannot sign a token: {e}")))
    }
}

impl Authenticate for Jwt {
    fn inspect(&self, token: &str) -> Result<Account, Error> {
        let mut validation = Validation::new(self.inner.algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.inner.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    ErrorKind::InvalidSignature => "the token's signature is not valid".to_owned(),
                    ErrorKind::InvalidIssuer => "the token is from another issuer".to_owned(),
                    _ => format!("invalid token: {e}"),
                };
                Error::unauthorized("micro.auth", why)
            })?;
        let claims = data.claims;
        Ok(Account {
            id: claims.sub,
            scopes: claims.scopes,
            metadata: claims.metadata,
        })
    }
}

/// The longest key file read: keys and secrets are a few KiB at most.
const MAX_KEY_FILE: u64 = 64 * 1024;

impl Jwt {
    /// The verifier a key file describes: a PEM public key (RSA: RS256, EC P-256: ES256,
    /// Ed25519: EdDSA) verifies only; any other content is an HS256 shared secret (trailing
    /// line breaks ignored), at least 32 bytes, which can also issue. This is what
    /// `MICRO_AUTH_KEY` names.
    ///
    /// # Errors
    /// The file cannot be read, is over 64 KiB, holds a PEM block that is not a public key of
    /// those kinds, or a secret shorter than 32 bytes.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("micro-doc-secret-{}", std::process::id()));
    /// std::fs::write(&path, "a secret of at least 32 bytes, please!\n").unwrap();
    /// let jwt = micro::auth::Jwt::from_key_file(&path).unwrap();
    /// assert!(format!("{jwt:?}").contains("HS256"));
    /// std::fs::write(&path, "short").unwrap();
    /// assert!(micro::auth::Jwt::from_key_file(&path).is_err());
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn from_key_file(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        use std::io::Read;
        let path = path.as_ref();
        let failed = |why: &dyn fmt::Display| {
            Error::bad_request(
                "micro.auth",
                format_args!("auth key {}: {why}", path.display()),
            )
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
            .map_err(|e| failed(&e))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(failed(&"larger than 64 KiB: not a key"));
        }
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            let (algorithm, decoding) = if let Ok(key) = DecodingKey::from_rsa_pem(&bytes) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = DecodingKey::from_ec_pem(&bytes) {
                (Algorithm::ES256, key)
            } else if let Ok(key) = DecodingKey::from_ed_pem(&bytes) {
                (Algorithm::EdDSA, key)
            } else {
                return Err(failed(&"not an RSA, EC or Ed25519 public key in PEM"));
            };
            return Ok(Self::with_keys(algorithm, None, decoding));
        }
        let secret = bytes.trim_ascii_end();
        if secret.len() < 32 {
            return Err(failed(&"a shared secret must be at least 32 bytes"));
        }
        Ok(Self::hs256(secret))
    }
}
