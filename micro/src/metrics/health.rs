//! Readiness: the services of a runtime, whether they drain, and their checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;

/// A user check: `Err(reason)` makes the service not ready.
pub(crate) type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// One running service's part in readiness.
pub(crate) struct Entry {
    pub(crate) service: String,
    pub(crate) draining: AtomicBool,
    pub(crate) checks: Vec<(String, Check)>,
}

/// The running services of a runtime, by node id.
#[derive(Default)]
pub(crate) struct Health {
    entries: DashMap<String, Arc<Entry>>,
}

impl Health {
    pub(crate) fn add(
        &self,
        node: &str,
        service: &str,
        checks: Vec<(String, Check)>,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            service: service.to_owned(),
            draining: AtomicBool::new(false),
            checks,
        });
        self.entries.insert(node.to_owned(), entry.clone());
        entry
    }

    pub(crate) fn remove(&self, node: &str) {
        self.entries.remove(node);
    }

    /// Why the runtime is not ready; empty when it is. Ready when at least one service runs, none drains, and every check passes.
    pub(crate) fn readiness(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.entries.is_empty() {
            failures.push("no service is running".to_owned());
        }
        for entry in self.entries.iter() {
            if entry.draining.load(Ordering::Acquire) {
                failures.push(format!("{}: draining", entry.service));
            }
            for (name, check) in &entry.checks {
                // A panicking check is a failing one, not a dead listener.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check()))
                    .unwrap_or_else(|_| Err("the check panicked".to_owned()));
                if let Err(reason) = outcome {
                    failures.push(format!("{}: {name}: {reason}", entry.service));
                }
            }
        }
        failures.sort();
        failures
    }
}
