//! Client-side load balancing: which node gets the next call.
//!
//! | selector | picks |
//! |----------|-------|
//! | [`Random`] (default) | a node uniformly at random |
//! | [`RoundRobin`] | nodes in turn, per service |
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

    /// Learns the outcome of a call to `node`: `Ok` when it answered (even with an
    /// application error), `Err` when it could not be reached. The default ignores it.
    fn report(&self, service: &str, node: &Node, outcome: Result<(), &crate::Error>) {
        let _ = (service, node, outcome);
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
            None => self
                .next
                .entry(service.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed),
        };
        Some(n % nodes.len())
    }
}

/// The selector named `name` (`random` or `roundrobin`).
///
/// ```
/// assert!(micro::selector::by_name("roundrobin").is_some());
/// assert!(micro::selector::by_name("psychic").is_none());
/// ```
pub fn by_name(name: &str) -> Option<std::sync::Arc<dyn Selector>> {
    match name {
        "random" => Some(std::sync::Arc::new(Random)),
        "roundrobin" | "round_robin" => Some(std::sync::Arc::new(RoundRobin::default())),
        _ => None,
    }
}
