//! Connections kept open per node address.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use super::conn::Conn;
use crate::Error;
use crate::transport::Transport;

#[derive(Debug)]
pub(crate) struct Pool {
    per_node: usize,
    max_frame: usize,
    nodes: DashMap<String, Arc<Slots>>,
}

#[derive(Debug)]
struct Slots {
    next: AtomicUsize,
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    conn: Mutex<Option<Arc<Conn>>>,
    dialing: tokio::sync::Mutex<()>,
}

/// One slot of an address's, holding the address's entry.
struct SlotRef {
    slots: Arc<Slots>,
    index: usize,
}

impl std::ops::Deref for SlotRef {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        &self.slots.slots[self.index]
    }
}

impl Slot {
    fn live(&self) -> Option<Arc<Conn>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

/// Addresses kept at once. Callers may name addresses (`Call::node`), so past this the
/// entries without a live connection are dropped.
const MAX_NODES: usize = 1024;

impl Pool {
    fn prune(&self) {
        if self.nodes.len() >= MAX_NODES {
            self.nodes
                .retain(|_, slots| slots.slots.iter().any(|s| s.live().is_some()));
        }
    }

    pub(crate) fn new(per_node: usize, max_frame: usize) -> Self {
        Self {
            per_node: per_node.max(1),
            max_frame,
            nodes: DashMap::new(),
        }
    }

    /// A live connection to `addr`, dialing one if needed (one dial at a time per slot).
    pub(crate) async fn get(
        &self,
        transport: &dyn Transport,
        addr: &str,
    ) -> Result<Arc<Conn>, Error> {
        let slot = self.slot(addr);
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        // Boxed, so that the future of every call does not carry the dial's.
        Box::pin(self.dial(&slot, transport, addr)).await
    }

    /// The next slot of `addr`'s, made on first use.
    fn slot(&self, addr: &str) -> SlotRef {
        let slots = match self.nodes.get(addr) {
            Some(slots) => slots.clone(),
            None => {
                self.prune();
                self.nodes
                    .entry(addr.to_owned())
                    .or_insert_with(|| {
                        Arc::new(Slots {
                            next: AtomicUsize::new(0),
                            slots: (0..self.per_node).map(|_| Slot::default()).collect(),
                        })
                    })
                    .clone()
            }
        };
        let index = slots.next.fetch_add(1, Ordering::Relaxed) % slots.slots.len();
        SlotRef { slots, index }
    }

    async fn dial(
        &self,
        slot: &Slot,
        transport: &dyn Transport,
        addr: &str,
    ) -> Result<Arc<Conn>, Error> {
        let _dialing = slot.dialing.lock().await;
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        let io = transport.dial(addr).await.map_err(|e| {
            Error::unavailable(
                "micro.client",
                format_args!("cannot connect to {addr} over {}: {e}", transport.name()),
            )
        })?;
        let conn = Conn::start(io, addr, self.max_frame);
        *slot.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }
}
