use std::io;

use tokio::net::{TcpListener, TcpStream};

use super::{BoxIo, Listener, Transport};
use crate::BoxFuture;
use crate::addr::ListenAddr;

/// TCP, with Nagle's algorithm off (writes are already coalesced into frames).
///
/// It listens on addresses as [`ListenAddr`] reads them (`:8080`, `0.0.0.0:0`, `[::]:0`,
/// `10.0.0.7:8080`, `db-1:8080`), and dials `host:port` (names are resolved).
///
/// ```
/// use micro::transport::{Tcp, Transport};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = Tcp.listen("127.0.0.1:0").await?;
/// assert!(listener.local_addr().starts_with("127.0.0.1:"));
///
/// let every_interface = Tcp.listen(":0").await?;
/// assert!(every_interface.local_addr().starts_with("0.0.0.0:"));
///
/// let err = Tcp.listen("localhost").await.unwrap_err();
/// assert_eq!(err.to_string(), "invalid address `localhost`: missing port (host:port or :port)");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Tcp;

impl Transport for Tcp {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn listen<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let inner = ListenAddr::parse(addr)?.bind().await?;
            let local = inner.local_addr()?.to_string();
            Ok(Box::new(TcpListen { inner, local }) as Box<dyn Listener>)
        })
    }

    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}

impl Tcp {
    /// A listener on a socket the program bound itself.
    ///
    /// # Errors
    /// When the socket cannot be put in non-blocking mode or has no local address.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = socket.local_addr()?.port();
    /// let listener = micro::transport::Tcp::from_std(socket)?;
    /// assert_eq!(listener.local_addr(), format!("127.0.0.1:{port}"));
    /// # Ok(()) }
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Box<dyn Listener>> {
        listener.set_nonblocking(true)?;
        let inner = TcpListener::from_std(listener)?;
        let local = inner.local_addr()?.to_string();
        Ok(Box::new(TcpListen { inner, local }))
    }
}

#[derive(Debug)]
struct TcpListen {
    inner: TcpListener,
    local: String,
}

impl Listener for TcpListen {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxIo, peer.to_string()))
        })
    }
}
