use std::io;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{BoxIo, Listener, Transport};
use crate::BoxFuture;

/// Streams within one process: each connection is a `tokio::io::duplex` pair.
///
/// Addresses are names in a process-wide table; `memory:` (or an empty name, or a name
/// ending in `:0`) picks a fresh unique one. Handy for tests of the wire path without sockets.
///
/// ```
/// use micro::transport::{Memory, Transport};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = Memory.listen("memory:").await?;
/// assert!(listener.local_addr().starts_with("memory:"));
/// assert!(Memory.dial("memory:nobody-here").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory;

const BUFFER: usize = 256 * 1024;

static LISTENERS: LazyLock<DashMap<String, mpsc::Sender<DuplexStream>>> =
    LazyLock::new(DashMap::new);
static NEXT: AtomicU64 = AtomicU64::new(1);

impl Transport for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn listen<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let name = addr.strip_prefix("memory:").unwrap_or(addr);
            let addr = if name.is_empty() || name.ends_with(":0") {
                format!("memory:{}", NEXT.fetch_add(1, Ordering::Relaxed))
            } else {
                format!("memory:{name}")
            };
            let (tx, rx) = mpsc::channel(128);
            match LISTENERS.entry(addr.clone()) {
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
            Ok(Box::new(MemoryListener { addr, rx }) as Box<dyn Listener>)
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
            let tx = LISTENERS.get(&key).map(|e| e.clone()).ok_or_else(refused)?;
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
        LISTENERS.remove(&self.addr);
    }
}
