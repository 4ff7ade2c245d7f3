//! Client-side load balancing: which node gets the next call.
//!
//! | selector | picks |
//! |----------|-------|
//! | [`Random`] (default) | a node uniformly at random |
//! | [`RoundRobin`] | nodes in turn, per service |
//! | [`LeastOutstanding`] | of two random nodes, the one with fewer calls in flight from this client |
//!
//! Whatever the selector, the client first leaves out nodes that failed recently (see
//! [`Client`](crate::Client): outlier ejection) and nodes that do not pass the call's filters
//! (version, metadata, endpoint).
//!
//! ```
//! use micro::registry::Node;
//! use micro::selector::{RoundRobin, Selector};
//!
//! let nodes: Vec<Node> = ["a", "b"].iter().map(|id| Node { id: id.to_string(), ..Default::default() }).collect();
//! let rr = RoundRobin::default();
//! let picks: Vec<_> = (0..4).map(|_| rr.select("svc", &nodes).unwrap()).collect();
//! assert_eq!(picks, [0, 1, 0, 1]);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::registry::Node;

/// Picks a node for each call. See the [module docs](self).
pub trait Selector: Send + Sync + fmt::Debug + 'static {
    /// The index in `nodes` of the node for the next call to `service`; `None` when `nodes`
    /// is empty.
    fn select(&self, service: &str, nodes: &[Node]) -> Option<usize>;

    /// Learns the outcome of an attempt on `node` that this selector chose: called exactly
    /// once per [`select`](Self::select), with `Ok` when the node answered (even with an
    /// application error) and `Err` when it could not be reached or did not answer. The
    /// default ignores it.
    fn report(&self, service: &str, node: &Node, outcome: Result<(), &crate::Error>) {
        let _ = (service, node, outcome);
    }
}

impl<S: Selector + ?Sized> Selector for std::sync::Arc<S> {
    fn select(&self, service: &str, nodes: &[Node]) -> Option<usize> {
        (**self).select(service, nodes)
    }

    fn report(&self, service: &str, node: &Node, outcome: Result<(), &crate::Error>) {
        (**self).report(service, node, outcome);
    }
}

/// Uniformly random choice.
///
/// ```
/// use micro::selector::{Random, Selector};
/// assert_eq!(Random.select("svc", &[]), None);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Random;

impl Selector for Random {
    fn select(&self, _service: &str, nodes: &[Node]) -> Option<usize> {
        (!nodes.is_empty()).then(|| fastrand::usize(..nodes.len()))
    }
}

/// Services whose turn [`RoundRobin`] remembers at once.
const MAX_SERVICES: usize = 4096;

/// Each node in turn, with a separate turn per service.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: DashMap<String, AtomicUsize>,
}

impl Selector for RoundRobin {
    fn select(&self, service: &str, nodes: &[Node]) -> Option<usize> {
        if nodes.is_empty() {
            return None;
        }
        let n = match self.next.get(service) {
            Some(counter) => counter.fetch_add(1, Ordering::Relaxed),
            None => {
                // Services come and go; a turn is cheap to lose, so the table never grows
                // past a bound.
                if self.next.len() >= MAX_SERVICES {
                    self.next.clear();
                }
                self.next
                    .entry(service.to_owned())
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed)
            }
        };
        Some(n % nodes.len())
    }
}

/// Least outstanding requests by the power of two choices: picks two nodes at random and
/// takes the one with fewer calls in flight from this client. A slow or overloaded node
/// accumulates calls in flight and so gets fewer new ones, without any shared state.
///
/// ```
/// use micro::registry::Node;
/// use micro::selector::{LeastOutstanding, Selector};
///
/// let nodes: Vec<Node> = ["a", "b"].iter().map(|id| Node { address: id.to_string(), ..Default::default() }).collect();
/// let p2c = LeastOutstanding::default();
/// let busy = p2c.select("svc", &nodes).unwrap(); // now one call in flight on `busy`
/// let next = p2c.select("svc", &nodes).unwrap();
/// assert_ne!(busy, next, "the idle node wins");
/// p2c.report("svc", &nodes[busy], Ok(()));
/// p2c.report("svc", &nodes[next], Ok(()));
/// assert_eq!(p2c.tracked(), 0, "idle nodes are not remembered");
/// ```
#[derive(Debug, Default)]
pub struct LeastOutstanding {
    in_flight: DashMap<String, AtomicUsize>,
}

impl LeastOutstanding {
    /// Nodes with calls in flight, as this selector counts them.
    ///
    /// See the [type-level example](Self).
    pub fn tracked(&self) -> usize {
        self.in_flight.len()
    }

    fn load(&self, node: &Node) -> usize {
        self.in_flight
            .get(&node.address)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

impl Selector for LeastOutstanding {
    fn select(&self, _service: &str, nodes: &[Node]) -> Option<usize> {
        let pick = match nodes.len() {
            0 => return None,
            1 => 0,
            n => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                if self.load(&nodes[b]) < self.load(&nodes[a]) {
                    b
                } else {
                    a
                }
            }
        };
        self.in_flight
            .entry(nodes[pick].address.clone())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
        Some(pick)
    }

    fn report(&self, _service: &str, node: &Node, _outcome: Result<(), &crate::Error>) {
        if let Some(n) = self.in_flight.get(&node.address) {
            let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
        // Idle nodes leave the table, so addresses that come and go never pile up.
        self.in_flight
            .remove_if(&node.address, |_, n| n.load(Ordering::Relaxed) == 0);
    }
}

/// The selector named `name` (`random`, `roundrobin` or `leastoutstanding`).
///
/// ```
/// assert!(micro::selector::by_name("roundrobin").is_some());
/// assert!(micro::selector::by_name("psychic").is_none());
/// ```
pub fn by_name(name: &str) -> Option<std::sync::Arc<dyn Selector>> {
    match name {
        "random" => Some(std::sync::Arc::new(Random)),
        "roundrobin" | "round_robin" => Some(std::sync::Arc::new(RoundRobin::default())),
        "leastoutstanding" | "least_outstanding" | "p2c" => {
            Some(std::sync::Arc::new(LeastOutstanding::default()))
        }
        _ => None,
    }
}
