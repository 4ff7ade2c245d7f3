//! Codecs: bytes to and from serde types, chosen per call by content type.
//!
//! Every endpoint answers both codecs: Rust peers talk [`Bincode`] (the default), tools and
//! other languages talk [`Json`]. The content type travels in each frame's header, and the
//! reply is encoded with the request's codec.
//!
//! ```
//! use micro::codec::ContentType;
//!
//! let bytes = ContentType::Json.encode(&vec![1, 2, 3]).unwrap();
//! assert_eq!(&bytes[..], b"[1,2,3]");
//! let back: Vec<i32> = ContentType::Json.decode(&bytes).unwrap();
//! assert_eq!(back, [1, 2, 3]);
//! ```

mod limits;

use std::fmt;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use self::limits::{Budget, Limited};
pub use self::limits::{MAX_DEPTH, SPARE_ELEMENTS};

/// A way to turn serde types into bytes and back.
///
/// Codecs are static: the set a process speaks is the [`ContentType`] enum, so the hot path
/// never goes through a trait object.
///
/// ```
/// use micro::codec::{Bincode, Codec};
///
/// let bytes = Bincode::encode(&("hi", 7u8)).unwrap();
/// let (s, n): (String, u8) = Bincode::decode(&bytes).unwrap();
/// assert_eq!((s.as_str(), n), ("hi", 7));
/// ```
pub trait Codec {
    /// The MIME type this codec is known by.
    const CONTENT_TYPE: &'static str;

    /// Serializes `value`.
    ///
    /// # Errors
    /// When the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError>;

    /// Deserializes a `T` from the whole of `bytes`.
    ///
    /// # Errors
    /// When `bytes` is not a valid encoding of a `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// bincode 2 with its standard configuration (varint integers, little endian).
///
/// bincode cannot encode types that need `deserialize_any`, such as `serde_json::Value` or
/// `#[serde(flatten)]`; use JSON for those.
///
/// Decoding is bounded by the body, in both codecs: no allocation from a length the body does
/// not hold, at most [`MAX_DEPTH`] levels of nesting, and at most one element of a sequence
/// or map per byte plus [`SPARE_ELEMENTS`] (see the [wire format](crate::wire)).
///
/// ```
/// use micro::codec::{Bincode, Codec};
/// assert_eq!(Bincode::CONTENT_TYPE, "application/bincode");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const CONTENT_TYPE: &'static str = "application/bincode";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| CodecError(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        // bincode allocates a string or byte buffer from its declared length before reading
        // it; only a limit stops a 2^40-byte `String` declared in a 40-byte body. The limit
        // is a const parameter, so pick the smallest of a few buckets that fits the body.
        let (value, read) = match bytes.len() {
            n if n <= 1 << 10 => decode_within::<T, { CLAIM_FACTOR << 10 }>(bytes),
            n if n <= 1 << 14 => decode_within::<T, { CLAIM_FACTOR << 14 }>(bytes),
            n if n <= 1 << 18 => decode_within::<T, { CLAIM_FACTOR << 18 }>(bytes),
            n if n <= 1 << 22 => decode_within::<T, { CLAIM_FACTOR << 22 }>(bytes),
            n if n <= 1 << 26 => decode_within::<T, { CLAIM_FACTOR << 26 }>(bytes),
            _ => decode_within::<T, { CLAIM_FACTOR << 30 }>(bytes),
        }?;
        if read != bytes.len() {
            return Err(CodecError(format!(
                "{} trailing bytes after the value",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// How many bytes of memory a decode may claim per byte of body. bincode counts what it
/// builds, not what it read: a one-byte varint claims the eight bytes of its `u64`, a `u128`
/// sixteen, so a valid body can claim up to sixteen times its size.
const CLAIM_FACTOR: usize = 16;

/// Decodes with bincode's allocation limit set to `LIMIT` bytes, and within the depth and
/// element limits of [`limits`].
fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let budget = Budget::new(bytes.len());
    let mut unread = Unread(bytes);
    let mut decoder = bincode::serde::OwnedSerdeDecoder::from_reader(&mut unread, config);
    match T::deserialize(Limited::<_, false>::new(decoder.as_deserializer(), &budget)) {
        // A visitor may have swallowed the error of a limit it ran into.
        Ok(value) if budget.exceeded().is_none() => Ok((value, bytes.len() - unread.0.len())),
        Ok(_) => Err(refused(&budget, None, bytes.len())),
        Err(e) => Err(refused(&budget, Some(e), bytes.len())),
    }
}

/// The error for a bincode body of `len` bytes that failed with `error` (or only ran into a
/// limit): the limit it ran into first, whatever error that caused.
#[cold]
fn refused(budget: &Budget, error: Option<bincode::error::DecodeError>, len: usize) -> CodecError {
    match (budget.exceeded(), error) {
        (Some(limit), _) => CodecError(limit.to_string()),
        (None, Some(bincode::error::DecodeError::LimitExceeded)) => CodecError(format!(
            "a length in the body claims more than the {len} bytes received"
        )),
        (None, Some(e)) => CodecError(e.to_string()),
        (None, None) => CodecError("the body could not be decoded".into()),
    }
}

/// What bincode has not read yet of a body. bincode's own slice reader does not say how far
/// it got once it sits inside the serde decoder that [`Limited`] wraps.
struct Unread<'a>(&'a [u8]);

impl bincode::de::read::Reader for Unread<'_> {
    #[inline]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        let Some((read, rest)) = self.0.split_at_checked(bytes.len()) else {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        };
        bytes.copy_from_slice(read);
        self.0 = rest;
        Ok(())
    }

    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
}

/// JSON via `serde_json`.
///
/// ```
/// use micro::codec::{Codec, Json};
/// assert_eq!(Json::encode(&[1, 2]).unwrap(), b"[1,2]");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    const CONTENT_TYPE: &'static str = "application/json";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| CodecError(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        // An empty body is how tools say "no request"; treat it as JSON null so `()` decodes.
        let bytes = if bytes.is_empty() { b"null" } else { bytes };
        // serde_json stops at 128 nested brackets, but a newtype around an `Option` recurses
        // without one: the depth limit applies to JSON too.
        let budget = Budget::new(bytes.len());
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let result = T::deserialize(Limited::<_, true>::new(&mut de, &budget)).and_then(|value| {
            de.end()?;
            Ok(value)
        });
        if let Some(limit) = budget.exceeded() {
            return Err(CodecError(limit.to_string()));
        }
        result.map_err(|e| CodecError(e.to_string()))
    }
}

/// The codecs a frame can name, by the one-byte code in its header.
///
/// ```
/// use micro::codec::ContentType;
/// assert_eq!(ContentType::from_mime("application/json"), Some(ContentType::Json));
/// assert_eq!(ContentType::default(), ContentType::Bincode);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentType {
    /// [`Bincode`], the default between Rust peers.
    #[default]
    Bincode,
    /// [`Json`], for tools, gateways and other languages.
    Json,
}

impl ContentType {
    /// The byte that names this codec in a frame header.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Bincode => 1,
            Self::Json => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Bincode),
            2 => Some(Self::Json),
            _ => None,
        }
    }

    /// The MIME type, as `Content-Type` headers spell it.
    ///
    /// ```
    /// assert_eq!(micro::codec::ContentType::Json.mime(), "application/json");
    /// ```
    pub fn mime(self) -> &'static str {
        match self {
            Self::Bincode => Bincode::CONTENT_TYPE,
            Self::Json => Json::CONTENT_TYPE,
        }
    }

    /// The codec for a MIME type (parameters such as `; charset=utf-8` are ignored).
    ///
    /// ```
    /// use micro::codec::ContentType;
    /// assert_eq!(ContentType::from_mime("application/json; charset=utf-8"), Some(ContentType::Json));
    /// assert_eq!(ContentType::from_mime("text/plain"), None);
    /// ```
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime.split(';').next().unwrap_or("").trim() {
            Bincode::CONTENT_TYPE => Some(Self::Bincode),
            Json::CONTENT_TYPE => Some(Self::Json),
            _ => None,
        }
    }

    /// Serializes `value` with this codec.
    ///
    /// # Errors
    /// When the value cannot be represented in this format.
    ///
    /// ```
    /// let b = micro::codec::ContentType::Json.encode(&"hi").unwrap();
    /// assert_eq!(&b[..], b"\"hi\"");
    /// ```
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, CodecError> {
        match self {
            Self::Bincode => Bincode::encode(value),
            Self::Json => Json::encode(value),
        }
        .map(Bytes::from)
    }

    /// Deserializes a `T` with this codec.
    ///
    /// # Errors
    /// When `bytes` is not a valid encoding of a `T`.
    ///
    /// ```
    /// let n: u32 = micro::codec::ContentType::Json.decode(b"7").unwrap();
    /// assert_eq!(n, 7);
    /// ```
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Self::Bincode => Bincode::decode(bytes),
            Self::Json => Json::decode(bytes),
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

/// A value could not be encoded or decoded.
///
/// ```
/// let err = micro::codec::ContentType::Json.decode::<u32>(b"nope").unwrap_err();
/// assert!(err.to_string().starts_with("expected"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(String);

impl CodecError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A bincode body that declares a `String` (or `Vec`, or map) of `len` and then ends:
    /// the varint length (0xfd = u64 follows) and a few bytes.
    fn bomb(len: u64) -> Vec<u8> {
        let mut body = vec![0xfd];
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(b"abc");
        body
    }

    /// Regression: a 2^40-byte `String` declared in a 12-byte body aborted the process
    /// (bincode allocated it before reading).
    #[test]
    fn declared_lengths_beyond_the_body_are_errors_not_allocations() {
        for shift in [34, 40, 60, 63] {
            let body = bomb(1 << shift);
            let e = Bincode::decode::<String>(&body).unwrap_err();
            assert!(e.to_string().contains("claims more than"), "{e}");
            assert!(Bincode::decode::<Vec<u8>>(&body).is_err());
            assert!(Bincode::decode::<Vec<u64>>(&body).is_err());
            assert!(Bincode::decode::<Vec<String>>(&body).is_err());
            assert!(Bincode::decode::<HashMap<String, String>>(&body).is_err());
            assert!(Bincode::decode::<bytes::Bytes>(&body).is_err());
        }
    }

    #[test]
    fn bodies_of_every_bucket_still_decode() {
        for len in [0usize, 1000, 1 << 12, 1 << 16, 1 << 20, 5 << 20] {
            let s = "x".repeat(len);
            assert_eq!(
                Bincode::decode::<String>(&Bincode::encode(&s).unwrap()).unwrap(),
                s
            );
            // Small integers are one byte on the wire but claim eight: still within budget.
            let v = vec![1u64; len];
            assert_eq!(
                Bincode::decode::<Vec<u64>>(&Bincode::encode(&v).unwrap()).unwrap(),
                v
            );
            let v = vec![1u128; len];
            assert_eq!(
                Bincode::decode::<Vec<u128>>(&Bincode::encode(&v).unwrap()).unwrap(),
                v
            );
        }
    }
}
