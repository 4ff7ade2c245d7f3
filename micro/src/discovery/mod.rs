//! Discovery: which nodes can take a call, below both the client and the broker.
//!
//! The registry is read through a [`Cache`] kept current by a watch; the nodes a call may go
//! to are those whose record lists its endpoint and that pass its filters; nodes that failed
//! recently are left out for a while ([`Ejections`]). The client's balance layer then lets
//! the selector choose among what remains.

mod cache;

pub(crate) use cache::Cache;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::Error;
use crate::registry::{Node, Service};

/// How long a node stays out of selection after its first failure; doubled on each repeat.
pub const DEFAULT_EJECTION: Duration = Duration::from_secs(10);
const MAX_EJECTION: Duration = Duration::from_secs(300);
/// Nodes remembered as failing at once; past this, entries whose time is up are dropped.
const MAX_EJECTED: usize = 4096;

/// Ejection is per node id (a restarted process is a new node), or address when unknown.
pub(crate) fn node_key(node: &Node) -> &str {
    if node.id.is_empty() {
        &node.address
    } else {
        &node.id
    }
}

/// The nodes of `services` that can serve `endpoint` and pass the call's filters.
///
/// # Errors
/// `not_found` when no version lists the endpoint, `unavailable` when no node passes the
/// filters.
pub(crate) fn candidates(
    service: &str,
    services: &[Service],
    endpoint: &str,
    version: Option<&str>,
    node_metadata: &[(String, String)],
) -> Result<Vec<Node>, Error> {
    let serving: Vec<&Service> = services
        .iter()
        // Records that list endpoints must list this one (a rolling deploy may add it).
        .filter(|s| s.endpoints.is_empty() || s.endpoints.iter().any(|e| e.name == endpoint))
        .collect();
    if serving.is_empty() {
        return Err(Error::not_found(
            "micro.client",
            format_args!("unknown endpoint {endpoint} on service {service}"),
        ));
    }
    let nodes: Vec<Node> = serving
        .into_iter()
        .filter(|s| version.is_none_or(|v| s.version == v))
        .flat_map(|s| s.nodes.iter())
        .filter(|n| {
            node_metadata
                .iter()
                .all(|(k, v)| n.metadata.get(k) == Some(v))
        })
        .cloned()
        .collect();
    if nodes.is_empty() {
        return Err(Error::unavailable(
            "micro.client",
            format_args!("service {service} has no node matching the call's filters"),
        ));
    }
    Ok(nodes)
}

/// Nodes taken out of selection after a refused or lost connection or a timed-out attempt,
/// for a time that doubles on each repeat (up to 5 minutes) and ends early on a success.
#[derive(Debug)]
pub(crate) struct Ejections {
    base: Duration,
    table: DashMap<Arc<str>, Ejection>,
}

#[derive(Debug)]
struct Ejection {
    until: Instant,
    strikes: u32,
}

impl Ejections {
    pub(crate) fn new(base: Duration) -> Self {
        Self {
            base,
            table: DashMap::new(),
        }
    }

    /// Whether `node` is out of selection now.
    pub(crate) fn is_out(&self, node: &Node) -> bool {
        self.table
            .get(node_key(node))
            .is_some_and(|e| e.until > Instant::now())
    }

    /// Takes `node` out of selection, for longer on each repeat; returns for how long.
    pub(crate) fn eject(&self, node: &Node) -> Duration {
        self.prune();
        let now = Instant::now();
        let mut entry = self.table.entry(node_key(node).into()).or_insert(Ejection {
            until: now,
            strikes: 0,
        });
        entry.strikes = entry.strikes.saturating_add(1);
        let factor = 1u32 << (entry.strikes - 1).min(10);
        let backoff = self.base.saturating_mul(factor).min(MAX_EJECTION);
        entry.until = now + backoff;
        backoff
    }

    /// Puts `node` back: it answered.
    pub(crate) fn forgive(&self, node: &Node) {
        if !self.table.is_empty() {
            self.table.remove(node_key(node));
        }
    }

    /// How many nodes are remembered as failing (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    fn prune(&self) {
        if self.table.len() >= MAX_EJECTED {
            let now = Instant::now();
            self.table.retain(|_, e| e.until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            address: format!("{id}:1"),
            ..Node::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_doubles_ends_on_time_and_on_success() {
        let ejections = Ejections::new(Duration::from_secs(10));
        let a = node("a");
        assert_eq!(ejections.eject(&a), Duration::from_secs(10));
        assert!(ejections.is_out(&a));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!ejections.is_out(&a));
        assert_eq!(ejections.eject(&a), Duration::from_secs(20));
        ejections.forgive(&a);
        assert!(!ejections.is_out(&a));
        assert_eq!(ejections.eject(&a), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_failing_nodes_leaves_a_bounded_table() {
        let ejections = Ejections::new(Duration::from_secs(1));
        for i in 0..MAX_EJECTED {
            ejections.eject(&node(&i.to_string()));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..100 {
            ejections.eject(&node(&format!("late-{i}")));
        }
        assert!(ejections.len() <= 101, "{}", ejections.len());
    }
}
