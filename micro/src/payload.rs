//! Request and reply bodies, typed or encoded.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::codec::ContentType;
use crate::{Error, Message};

/// A request or reply body: either a typed Rust value (a call within one process, which is
/// never encoded) or bytes in a codec (a call that crossed the network, or came from a tool).
///
/// Either form converts to the other on demand, so a JSON caller reaches a typed handler and a
/// typed caller reaches a handler in another process.
///
/// ```
/// use micro::Payload;
/// use micro::codec::ContentType;
///
/// let typed = Payload::new(vec![1u8, 2]);
/// assert_eq!(&typed.to_bytes(ContentType::Json).unwrap()[..], b"[1,2]");
///
/// let encoded = Payload::encoded(ContentType::Json, &b"[1,2]"[..]);
/// assert_eq!(encoded.decode::<Vec<u8>>().unwrap(), [1, 2]);
/// ```
pub struct Payload(Repr);

enum Repr {
    /// Shared, so that a retry can hold the request without copying or encoding it; the
    /// first decode takes the value out.
    Local(Arc<dyn LocalValue>),
    Encoded(ContentType, Bytes),
}

/// A typed value that can still be encoded if its receiver wants another type.
trait LocalValue: Any + Send + Sync {
    fn encode(&self, content_type: ContentType) -> Result<Bytes, crate::codec::CodecError>;
    fn type_name(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
}

struct Cell<T>(Mutex<Option<T>>);

impl<T> Cell<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Serialize + Send + 'static> LocalValue for Cell<T> {
    fn encode(&self, content_type: ContentType) -> Result<Bytes, crate::codec::CodecError> {
        match &*self.lock() {
            Some(value) => content_type.encode(value),
            None => Err(consumed()),
        }
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn consumed() -> crate::codec::CodecError {
    crate::codec::CodecError::new("the body was already taken by a handler")
}

impl Payload {
    /// A typed value, as a call within one process carries it.
    ///
    /// See the [type-level example](Self).
    pub fn new<T: Serialize + Send + 'static>(value: T) -> Self {
        Self(Repr::Local(Arc::new(Cell(Mutex::new(Some(value))))))
    }

    /// Bytes in the given codec, as they arrive from the network or a tool.
    ///
    /// See the [type-level example](Self).
    pub fn encoded(content_type: ContentType, body: impl Into<Bytes>) -> Self {
        Self(Repr::Encoded(content_type, body.into()))
    }

    /// Whether this body is still a typed value (it never crossed a process boundary).
    ///
    /// ```
    /// assert!(micro::Payload::new(1u8).is_typed());
    /// ```
    pub fn is_typed(&self) -> bool {
        matches!(self.0, Repr::Local(_))
    }

    /// A second handle on the same body: bytes are shared, and so is a typed value, which
    /// only one of the handles can take.
    pub(crate) fn share(&self) -> Self {
        match &self.0 {
            Repr::Local(value) => Self(Repr::Local(value.clone())),
            Repr::Encoded(ct, body) => Self(Repr::Encoded(*ct, body.clone())),
        }
    }

    /// The body as a `T`: moved out when it already is one, decoded otherwise.
    ///
    /// # Errors
    /// When the bytes are not a valid `T` in their codec, or a typed value of another type
    /// does not convert (it is re-encoded as JSON and decoded as `T`).
    ///
    /// See the [type-level example](Self).
    pub fn decode<T: DeserializeOwned + 'static>(self) -> Result<T, crate::codec::CodecError> {
        match self.0 {
            Repr::Local(value) => match value.as_any().downcast_ref::<Cell<T>>() {
                Some(cell) => cell.lock().take().ok_or_else(consumed),
                // Another Rust type on the far side (a tool calling with JSON values, say):
                // go through JSON, which is the most forgiving about representation.
                None => ContentType::Json.decode(&value.encode(ContentType::Json)?),
            },
            Repr::Encoded(content_type, body) => content_type.decode(&body),
        }
    }

    /// The body as bytes in `content_type`, encoding a typed value if needed.
    ///
    /// # Errors
    /// When a typed value cannot be represented in `content_type`, or encoded bytes are in
    /// another codec and `content_type` cannot carry them unchanged.
    ///
    /// See the [type-level example](Self).
    pub fn to_bytes(&self, content_type: ContentType) -> Result<Bytes, crate::codec::CodecError> {
        match &self.0 {
            Repr::Local(value) => value.encode(content_type),
            Repr::Encoded(ct, body) if *ct == content_type => Ok(body.clone()),
            Repr::Encoded(ct, _) => Err(crate::codec::CodecError::new(format!(
                "cannot convert a {ct} body to {content_type}"
            ))),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Local(value) => f
                .debug_tuple("Payload::Typed")
                .field(&value.type_name())
                .finish(),
            Repr::Encoded(ct, body) => f
                .debug_struct("Payload::Encoded")
                .field("content_type", ct)
                .field("len", &body.len())
                .finish(),
        }
    }
}

/// Decodes a request for `endpoint`, naming it in the error.
pub(crate) fn decode_request<T: Message>(
    payload: Payload,
    endpoint: &str,
    request_type: &str,
) -> Result<T, Error> {
    payload.decode().map_err(|e| {
        Error::bad_request(
            "micro.server",
            format_args!("cannot decode the request for {endpoint} as {request_type}: {e}"),
        )
    })
}
