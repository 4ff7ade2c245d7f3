//! The retry policy: what is safe to send again, and when.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::balance::{Failure, Fault};
use super::budget::Budget;
use crate::Payload;
use crate::middleware::Request;

/// The first pause before a retry; doubled on each further one, jittered.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The first pause after the service turned the request away as overloaded: long enough to
/// let its mailbox drain a little.
const REJECTED_BACKOFF: Duration = Duration::from_millis(20);

/// Retries what provably did not run (and, for idempotent calls, what may have), up to a
/// number of times and within a budget shared by the client's calls, pausing between
/// attempts inside the call's deadline.
#[derive(Clone, Debug)]
pub(super) struct Policy {
    remaining: u32,
    attempts: u32,
    backoff: Duration,
    budget: Arc<Budget>,
}

impl Policy {
    pub(super) fn new(retries: u32, budget: Arc<Budget>) -> Self {
        Self {
            remaining: retries,
            attempts: 0,
            backoff: FIRST_BACKOFF,
            budget,
        }
    }
}

impl tower::retry::Policy<Request, Payload, Failure> for Policy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request,
        result: &mut Result<Payload, Failure>,
    ) -> Option<Self::Future> {
        // Each call deposits once, so retries stay a fraction of the calls made; at the
        // instant it started, so that no clock is read on the way of a call that succeeds.
        if self.attempts == 0 {
            self.budget
                .deposit(req.options.started.unwrap_or_else(Instant::now));
        }
        self.attempts += 1;
        let failure = result.as_mut().err()?;
        let safe = match failure.fault {
            Fault::Refused | Fault::Rejected => true,
            Fault::Lost => req.options.idempotent,
            Fault::Answered => false,
        };
        if !safe || self.remaining == 0 {
            return None;
        }
        let base = match failure.fault {
            Fault::Rejected => self.backoff.max(REJECTED_BACKOFF),
            _ => self.backoff,
        };
        let wait = base + Duration::from_micros(fastrand::u64(..=base.as_micros() as u64));
        let now = Instant::now();
        if req.deadline.is_some_and(|d| now + wait >= d) {
            return None;
        }
        if !self.budget.withdraw(now) {
            tracing::debug!(service = %req.service, "not retrying: the retry budget is spent");
            return None;
        }
        self.remaining -= 1;
        self.backoff = base.saturating_mul(2);
        if let Some(node) = failure.node.take() {
            req.tried.push(node);
        }
        tracing::debug!(
            service = %req.service,
            endpoint = %req.endpoint,
            "retry {} in {wait:?} after: {}",
            self.attempts,
            failure.error
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request) -> Option<Request> {
        Some(req.share())
    }
}
