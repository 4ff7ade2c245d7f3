//! The accept loop: every connection a peer can open is counted, limited and released.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Router, Shutdown, serve};
use crate::Error;
use crate::transport::{BoxIo, Listener};
use crate::wire::Outgoing;

/// Default [`ServerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default [`ServerLimits::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1024;
/// Default [`ServerLimits::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;
/// Default [`ServerLimits::write_buffer`]: 8 MiB.
pub const DEFAULT_WRITE_BUFFER: usize = 8 * 1024 * 1024;
/// Default [`ServerLimits::idle_timeout`]: 5 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default [`ServerLimits::frame_timeout`]: 30 seconds.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Refusals answered with a reason at once; past this, a refused connection is just closed.
const MAX_REFUSING: usize = 64;

/// What peers can hold on a server: connections, calls, queued bytes and time.
///
/// Every limit has a `MICRO_SERVER_*` variable (see [`config`](crate::config)); the
/// [wire docs](crate::wire) say what happens when each is reached.
///
/// ```
/// use std::time::Duration;
/// use micro::ServerLimits;
///
/// let limits = ServerLimits::default()
///     .max_connections(100)
///     .max_connections_per_ip(10)
///     .idle_timeout(Duration::from_secs(60));
/// assert_eq!(limits.get_max_connections(), 100);
/// assert_eq!(ServerLimits::default().get_max_in_flight(), micro::DEFAULT_MAX_IN_FLIGHT);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    max_connections: usize,
    max_connections_per_ip: usize,
    max_in_flight: usize,
    write_buffer: usize,
    idle_timeout: Duration,
    frame_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            write_buffer: DEFAULT_WRITE_BUFFER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
        }
    }
}

impl ServerLimits {
    /// Connections open at once; more are refused with a reason and closed
    /// (`MICRO_SERVER_MAX_CONNECTIONS`).
    ///
    /// See the [type-level example](Self).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections open at once from one IP address (`MICRO_SERVER_MAX_CONNECTIONS_PER_IP`).
    /// Peers without an IP address (the memory transport) count only against
    /// [`max_connections`](Self::max_connections).
    ///
    /// See the [type-level example](Self).
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.max_connections_per_ip = n.max(1);
        self
    }

    /// Calls read from one connection and not yet answered; at the limit the server stops
    /// reading that connection until one is answered (`MICRO_SERVER_MAX_IN_FLIGHT`).
    ///
    /// See the [type-level example](Self).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Bytes of replies queued on one connection past which the server stops reading its
    /// requests until the peer reads (`MICRO_SERVER_WRITE_BUFFER`).
    ///
    /// See the [type-level example](Self).
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes.max(1);
        self
    }

    /// How long a connection may sit with no call in flight and nothing arriving before the
    /// server says go away; also how long a reply write may make no progress before the
    /// connection is closed (`MICRO_SERVER_IDLE_TIMEOUT`).
    ///
    /// See the [type-level example](Self).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a frame may take to arrive once its first byte has
    /// (`MICRO_SERVER_FRAME_TIMEOUT`): a peer that sends part of a frame and stalls is closed.
    ///
    /// See the [type-level example](Self).
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// See [`max_connections`](Self::max_connections).
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// See [`max_connections_per_ip`](Self::max_connections_per_ip).
    pub fn get_max_connections_per_ip(&self) -> usize {
        self.max_connections_per_ip
    }

    /// See [`max_in_flight`](Self::max_in_flight).
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// See [`write_buffer`](Self::write_buffer).
    pub fn get_write_buffer(&self) -> usize {
        self.write_buffer
    }

    /// See [`idle_timeout`](Self::idle_timeout).
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`frame_timeout`](Self::frame_timeout).
    pub fn get_frame_timeout(&self) -> Duration {
        self.frame_timeout
    }

    /// Applies the limits set in `opts`.
    pub(crate) fn apply(&mut self, opts: &crate::config::Options) {
        if let Some(n) = opts.server_max_connections {
            *self = self.max_connections(n);
        }
        if let Some(n) = opts.server_max_connections_per_ip {
            *self = self.max_connections_per_ip(n);
        }
        if let Some(n) = opts.server_max_in_flight {
            *self = self.max_in_flight(n);
        }
        if let Some(n) = opts.server_write_buffer {
            *self = self.write_buffer(n);
        }
        if let Some(d) = opts.server_idle_timeout {
            *self = self.idle_timeout(d);
        }
        if let Some(d) = opts.server_frame_timeout {
            *self = self.frame_timeout(d);
        }
    }
}

/// Connections open now, in total and per IP address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Releases a connection's place when its task ends, however it ends.
struct Admitted {
    open: Arc<Mutex<Open>>,
    ip: Option<IpAddr>,
    router: Arc<Router>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let runtime = self.router.client.runtime();
        runtime.observe().connection(&self.router.service, false);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(ip) = self.ip {
            if let Some(n) = open.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    // Gone with its last connection: the map never outgrows what is open.
                    open.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Accepts connections until `stop`, serving each on `connections`.
pub(crate) fn spawn_accept_loop(
    mut listener: Box<dyn Listener>,
    router: Arc<Router>,
    limits: ServerLimits,
    shutdown: Shutdown,
    stop: CancellationToken,
    connections: TaskTracker,
) -> JoinHandle<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    let refusing = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (io, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, usually: give connections time to close.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let ip = peer.parse::<SocketAddr>().ok().map(|a| a.ip());
            let admitted = {
                let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
                let from_ip = ip.map_or(0, |ip| o.per_ip.get(&ip).copied().unwrap_or(0));
                if o.total >= limits.max_connections {
                    Err((
                        "max_connections",
                        format!("too many connections ({} open)", limits.max_connections),
                    ))
                } else if from_ip >= limits.max_connections_per_ip {
                    Err((
                        "max_connections_per_ip",
                        format!("too many connections from {peer} ({from_ip} open)"),
                    ))
                } else {
                    o.total += 1;
                    if let Some(ip) = ip {
                        *o.per_ip.entry(ip).or_default() += 1;
                    }
                    Ok(Admitted {
                        open: open.clone(),
                        ip,
                        router: router.clone(),
                    })
                }
            };
            let observe = router.client.runtime().observe();
            match admitted {
                Ok(admitted) => {
                    observe.connection(&router.service, true);
                    let (router, shutdown) = (router.clone(), shutdown.clone());
                    connections.spawn(async move {
                        serve(io, peer, router, limits, shutdown).await;
                        drop(admitted);
                    });
                }
                Err((limit, why)) => {
                    observe.connection_refused(&router.service, limit);
                    refuse(io, &peer, why, &refusing);
                }
            }
        }
    })
}

/// Tells a peer over the limit why, briefly and without holding up the accept loop.
fn refuse(mut io: BoxIo, peer: &str, why: String, refusing: &Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    tracing::warn!(%peer, "refusing connection: {why}");
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let mut frame = bytes::BytesMut::new();
        Outgoing::Error {
            id: 0,
            error: Error::unavailable("micro.server", format_args!("connection refused: {why}")),
            // Refused before any request was read.
            not_run: true,
        }
        .encode(&mut frame);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            io.write_all(&frame).await?;
            io.shutdown().await
        })
        .await;
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}
