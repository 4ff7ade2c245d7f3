//! Request and reply bodies, typed or encoded.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::codec::ContentType;
use crate::stream::{PayloadStream, Streaming};
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
    /// A stream of items: never encoded as a whole, taken once by whoever carries it.
    Stream(Arc<Mutex<Option<AnyStream>>>),
}

/// A [`Streaming`] of some type, typed for a reader in this process that wants that type,
/// erased to payloads for any other reader.
struct AnyStream {
    typed: Box<dyn Any + Send>,
    erase: fn(Box<dyn Any + Send>) -> PayloadStream,
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

fn not_a_message() -> crate::codec::CodecError {
    crate::codec::CodecError::new("expected a single message, got a stream of items")
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

    /// A stream of typed items, as a streaming call within one process carries it: taken by
    /// its reader as the same `Streaming<T>`, never encoded.
    ///
    /// ```
    /// use micro::{Payload, Streaming};
    /// let p = Payload::stream(Streaming::iter([1u8, 2]));
    /// assert!(p.is_stream());
    /// ```
    pub fn stream<T: Message>(items: Streaming<T>) -> Self {
        Self::from_stream(AnyStream {
            typed: Box::new(items),
            erase: |typed| match typed.downcast::<Streaming<T>>() {
                Ok(items) => items.erase(),
                Err(_) => unreachable!("an AnyStream holds the type it was made with"),
            },
        })
    }

    /// A stream of payloads, as a streaming call from the network carries it.
    pub(crate) fn payloads(items: PayloadStream) -> Self {
        Self::from_stream(AnyStream {
            typed: Box::new(items),
            erase: |typed| match typed.downcast::<PayloadStream>() {
                Ok(items) => *items,
                Err(_) => unreachable!("an AnyStream holds the type it was made with"),
            },
        })
    }

    fn from_stream(items: AnyStream) -> Self {
        Self(Repr::Stream(Arc::new(Mutex::new(Some(items)))))
    }

    /// Whether this body is a stream of items rather than one message.
    ///
    /// See [`stream`](Self::stream) for an example.
    pub fn is_stream(&self) -> bool {
        matches!(self.0, Repr::Stream(_))
    }

    fn take_stream(self) -> Result<AnyStream, crate::codec::CodecError> {
        match self.0 {
            Repr::Stream(cell) => cell
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(consumed),
            _ => Err(crate::codec::CodecError::new(
                "expected a stream of items, got a single message",
            )),
        }
    }

    /// The stream of items as `T`s: moved out when it is a `Streaming<T>` of this process,
    /// each item decoded otherwise.
    ///
    /// # Errors
    /// When the body is a single message rather than a stream, or its stream was taken.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures_util::StreamExt;
    /// use micro::{Payload, Streaming};
    /// let mut items = Payload::stream(Streaming::iter([7u8])).into_streaming::<u8>("doc").unwrap();
    /// assert_eq!(items.next().await.unwrap().unwrap(), 7);
    /// assert!(Payload::new(1u8).into_streaming::<u8>("doc").is_err());
    /// # }
    /// ```
    pub fn into_streaming<T: Message>(
        self,
        what: &'static str,
    ) -> Result<Streaming<T>, crate::codec::CodecError> {
        let any = self.take_stream()?;
        match any.typed.downcast::<Streaming<T>>() {
            Ok(items) => Ok(*items),
            Err(typed) => Ok(Streaming::decoding((any.erase)(typed), what)),
        }
    }

    /// The stream of items as payloads, for the runtime to carry across the network.
    pub(crate) fn into_payloads(self) -> Result<PayloadStream, crate::codec::CodecError> {
        let any = self.take_stream()?;
        Ok((any.erase)(any.typed))
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
            Repr::Stream(items) => Self(Repr::Stream(items.clone())),
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
            Repr::Stream(_) => Err(not_a_message()),
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
            Repr::Stream(_) => Err(not_a_message()),
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
            Repr::Stream(_) => f.write_str("Payload::Stream"),
        }
    }
}

/// Takes the stream of requests for `endpoint`, naming it in the error.
pub(crate) fn stream_request<T: Message>(
    payload: Payload,
    endpoint: &'static str,
) -> Result<Streaming<T>, Error> {
    payload.into_streaming(endpoint).map_err(|e| {
        Error::bad_request(
            "micro.server",
            format_args!("{endpoint} takes a stream of requests: {e}"),
        )
    })
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
