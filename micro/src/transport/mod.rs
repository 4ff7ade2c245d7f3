//! Transports: how bytes get from one node to another.
//!
//! A transport listens on an address and dials addresses; it yields plain byte streams.
//! Framing, multiplexing and codecs sit above it, so every transport speaks the same
//! [wire format](crate::wire). Two are built in, a third with the `tls` feature:
//!
//! | name | addresses | use |
//! |------|-----------|-----|
//! | [`tcp`](Tcp) (default) | `127.0.0.1:8080`, `:8080` (every interface), [more](crate::addr); port 0 picks a free port | between processes and machines |
//! | [`memory`](Memory) | any name, `memory:greeter` | several services in one process, tests |
//! | [`tls`](Tls) (feature `tls`) | as `tcp` | TCP with TLS: certificates verified, optionally mutual |
//!
//! Nodes record their transport in their registry metadata (`transport`), so a client dials
//! each node with the right one.
//!
//! ```
//! use micro::transport::{Memory, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let transport = Memory::new();
//! let mut listener = transport.listen("memory:doc-example").await?;
//! let _client_side = transport.dial(&listener.local_addr()).await?;
//! let (_server_side, peer) = listener.accept().await?;
//! assert_eq!(peer, "memory");
//! # Ok(()) }
//! ```

mod memory;
mod tcp;
#[cfg(feature = "tls")]
mod tls;

pub use memory::Memory;
pub use tcp::Tcp;
#[cfg(feature = "tls")]
pub use tls::{Tls, TlsBuilder, TlsError};

use std::fmt;
use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::BoxFuture;

/// A bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// Listens and dials. See the [module docs](self).
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The name nodes record in their metadata (`tcp`, `memory`, …).
    fn name(&self) -> &'static str;

    /// Starts listening on `addr`.
    ///
    /// # Errors
    /// When the address is malformed or already taken.
    fn listen<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>>;

    /// Opens a stream to `addr`.
    ///
    /// # Errors
    /// When nothing listens there, or the connection fails.
    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>>;
}

/// A bound listener, from [`Transport::listen`].
pub trait Listener: Send + fmt::Debug {
    /// The bound address, with the real port when 0 was asked for. A wildcard (`0.0.0.0:PORT`)
    /// is not dialable: services register what [`advertised`](crate::addr::advertised) makes
    /// of it.
    fn local_addr(&self) -> String;

    /// Waits for the next connection; returns it and the peer's address.
    ///
    /// # Errors
    /// On I/O errors of the listening socket.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses no connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, String)>>;
}

/// The transport named `name` (`tcp` or `memory`). A TLS transport needs certificates, so
/// it is made from settings (`MICRO_TLS_*`) rather than from its name alone.
///
/// ```
/// assert_eq!(micro::transport::by_name("tcp").unwrap().name(), "tcp");
/// assert!(micro::transport::by_name("carrier-pigeon").is_none());
/// ```
pub fn by_name(name: &str) -> Option<Arc<dyn Transport>> {
    match name {
        "tcp" => Some(Arc::new(Tcp)),
        "memory" => Some(Arc::new(Memory::new())),
        _ => None,
    }
}

/// Stands in for a transport that cannot be used, and says why on every use: a node that
/// names a transport this client has no settings for, or TLS settings that failed to load.
#[derive(Debug)]
pub(crate) struct Unusable {
    pub(crate) name: &'static str,
    pub(crate) why: Arc<str>,
}

impl Transport for Unusable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn listen<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::InvalidInput, &*self.why)) })
    }

    fn dial<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::InvalidInput, &*self.why)) })
    }
}
