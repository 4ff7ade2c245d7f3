use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{BoxIo, Listener, Transport};
use crate::BoxFuture;

/// Streams within one process: each connection is a `tokio::io::duplex` pair.
///
/// A `Memory` value is a network of its own: addresses are names in its table, and clones
/// share it. `memory:` (or an empty name, or a name ending in `:0`) picks a fresh unique
/// one. Handy for tests of the wire path without sockets. A [`Runtime`](crate::Runtime)
/// has one, which its services and clients use for `memory:` addresses.
///
/// ```
/// use micro::transport::{Memory, Transport};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let network = Memory::new();
/// let listener = network.listen("memory:").await?;
/// assert!(listener.local_addr().starts_with("memory:"));
/// assert!(network.dial("memory:nobody-here").await.is_err());
/// assert!(Memory::new().dial(&listener.local_addr()).await.is_err(), "another network");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Memory {
    net: Arc<Net>,
}

#[derive(Debug, Default)]
struct Net {
    listeners: DashMap<String, mpsc::Sender<DuplexStream>>,
    next: AtomicU64,
}

impl Memory {
    /// A new, empty network.
    ///
    /// See the [type-level example](Self).
    pub fn new() -> Self {
        Self::default()
    }
}

const BUFFER: usize = 256 * 1024;

impl Transport for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn listen<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let name = addr.strip_prefix("memory:").unwrap_or(addr);
            let addr = if name.is_empty() || name.ends_with(":0") {
                format!(
                    "memory:{}",
                    self.net.next.fetch_add(1, Ordering::Relaxed) + 1
                )
            } else {
                format!("memory:{name}")
            };
            let (tx, rx) = mpsc::channel(128);
            match self.net.listeners.entry(addr.clone()) {
                dashmap::Entry::Occupied(e) if !e.get().is_closed() => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{addr} is already listening"),
                    ));
                }
                dashmap::Entry::Occupied(mut e) => {
                    e.insert(tx);
                }
                dashmap::Entry::Vacant(e) => {
                    e.insert(tx);
                }
            }
            Ok(Box::new(MemoryListener {
                addr,
                rx,
                net: Arc::downgrade(&self.net),
            }) as Box<dyn Listener>)
        })
    }

    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let key = if addr.starts_with("memory:") {
                addr.to_owned()
            } else {
                format!("memory:{addr}")
            };
            let refused = || {
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on {key}"),
                )
            };
            let tx = self
                .net
                .listeners
                .get(&key)
                .map(|e| e.clone())
                .ok_or_else(refused)?;
            let (ours, theirs) = tokio::io::duplex(BUFFER);
            tx.send(theirs).await.map_err(|_| refused())?;
            Ok(Box::new(ours) as BoxIo)
        })
    }
}

#[derive(Debug)]
struct MemoryListener {
    addr: String,
    rx: mpsc::Receiver<DuplexStream>,
    net: Weak<Net>,
}

impl Listener for MemoryListener {
    fn local_addr(&self) -> String {
        self.addr.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, String)>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(stream) => Ok((Box::new(stream) as BoxIo, "memory".to_owned())),
                None => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "listener closed",
                )),
            }
        })
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        if let Some(net) = self.net.upgrade() {
            net.listeners.remove(&self.addr);
        }
    }
}
