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

use std::fmt;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

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
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| CodecError(e.to_string()))?;
        if read != bytes.len() {
            return Err(CodecError(format!(
                "{} trailing bytes after the value",
                bytes.len() - read
            )));
        }
        Ok(value)
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
        serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
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
