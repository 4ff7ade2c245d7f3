//! The retry budget: retries stay a fraction of the calls a client makes.
//!
//! The same rule as tower's `TpsBudget` with its defaults (each call deposits one token, a
//! retry withdraws five, so about a fifth of the calls may be retried, plus a reserve of ten
//! retries a second; tokens count for ten seconds), kept in atomics: every call of a client
//! deposits into one budget, and `TpsBudget` takes a mutex and reads the clock on each
//! deposit, which showed as a contended lock under load. Here a deposit is one
//! compare-and-swap on the current second's slot, at the instant the caller already read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a window lasts; tokens are kept per window.
const WINDOW: Duration = Duration::from_secs(1);
/// How many windows a token counts for after the one it was made in (`TpsBudget`'s ten
/// seconds).
const TTL_WINDOWS: u32 = 10;
/// The current window and the ten before it.
const SLOTS: usize = TTL_WINDOWS as usize + 1;
/// Tokens a call deposits.
const DEPOSIT: i32 = 1;
/// Tokens a retry withdraws: one retry per five calls, 20 %.
const WITHDRAW: i32 = 5;
/// Retries allowed each second whatever the calls, so that a client making few calls can
/// still retry.
const MIN_PER_SEC: i64 = 10;

/// Retries allowed as a share of recent calls, plus a reserve per second.
#[derive(Debug)]
pub(super) struct Budget {
    origin: Instant,
    /// Net tokens of one window each: the window's number in the high 32 bits, its tokens
    /// (an `i32`) in the low 32, so that a slot is claimed for a new window and updated in
    /// one atomic step.
    slots: [AtomicU64; SLOTS],
    /// Tokens always there, refilled as withdrawals age out.
    reserve: i64,
}

impl Budget {
    /// An empty budget whose windows start at `origin`.
    pub(super) fn new(origin: Instant) -> Self {
        Self {
            origin,
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            reserve: MIN_PER_SEC * i64::from(TTL_WINDOWS) * i64::from(WITHDRAW),
        }
    }

    /// Counts a call made at `at` (when it started: the budget reads no clock of its own).
    pub(super) fn deposit(&self, at: Instant) {
        self.add(self.window(at), DEPOSIT);
    }

    /// Takes the tokens of one retry at `now`, if the budget holds them.
    pub(super) fn withdraw(&self, now: Instant) -> bool {
        let window = self.window(now);
        // Like `TpsBudget`, check then take: two racing retries may both pass and leave the
        // balance a little below zero, which the next deposits make up.
        if self.balance(window) < i64::from(WITHDRAW) {
            return false;
        }
        self.add(window, -WITHDRAW);
        true
    }

    /// The window `at` falls in; wraps after 136 years, which the comparisons allow for.
    fn window(&self, at: Instant) -> u32 {
        let since = at.saturating_duration_since(self.origin);
        (since.as_nanos() / WINDOW.as_nanos()) as u32
    }

    fn add(&self, window: u32, tokens: i32) {
        let slot = &self.slots[window as usize % SLOTS];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (held, value) = unpack(current);
            let next = if held == window {
                pack(window, value.saturating_add(tokens))
            } else if newer(window, held) {
                // The slot still holds a window that has aged out: start this one.
                pack(window, tokens)
            } else {
                // Made so long ago (a call that started before a newer window took its slot)
                // that it no longer counts.
                return;
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The tokens usable in `window`: the reserve plus what the last windows left.
    fn balance(&self, window: u32) -> i64 {
        let recent: i64 = self
            .slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .filter(|&(held, _)| window.wrapping_sub(held) <= TTL_WINDOWS)
            .map(|(_, value)| i64::from(value))
            .sum();
        self.reserve + recent
    }
}

/// Whether window `a` comes after window `b` (window numbers wrap).
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn pack(window: u32, value: i32) -> u64 {
    (u64::from(window) << 32) | u64::from(value as u32)
}

fn unpack(slot: u64) -> (u32, i32) {
    ((slot >> 32) as u32, slot as u32 as i32)
}

#[cfg(test)]
mod tests {
    //! The clock is an argument, so these tests give each operation its instant: what they
    //! check is the arithmetic of windows, and no real time passes.

    use super::*;

    fn at(origin: Instant, millis: u64) -> Instant {
        origin + Duration::from_millis(millis)
    }

    /// Withdraws until refused, at `now`; returns how many retries were allowed.
    fn drain(budget: &Budget, now: Instant) -> usize {
        (0..10_000).take_while(|_| budget.withdraw(now)).count()
    }

    #[test]
    fn without_calls_the_reserve_allows_ten_retries_a_second_over_ten_seconds() {
        let origin = Instant::now();
        let budget = Budget::new(origin);
        assert_eq!(drain(&budget, origin), 100);
        assert!(!budget.withdraw(at(origin, 9_999)));
    }

    #[test]
    fn a_fifth_of_the_calls_may_be_retried_beyond_the_reserve() {
        let origin = Instant::now();
        let budget = Budget::new(origin);
        for i in 0..1_000 {
            budget.deposit(at(origin, i));
        }
        assert_eq!(drain(&budget, at(origin, 2_000)), 100 + 200);
    }

    #[test]
    fn calls_stop_counting_after_ten_seconds() {
        let origin = Instant::now();
        let budget = Budget::new(origin);
        for _ in 0..500 {
            budget.deposit(at(origin, 500));
        }
        // Still counted in the tenth second after the one they were made in...
        assert_eq!(drain(&budget, at(origin, 10_900)), 100 + 100);
        let budget = Budget::new(origin);
        for _ in 0..500 {
            budget.deposit(at(origin, 500));
        }
        // ...and gone after it.
        assert_eq!(drain(&budget, at(origin, 11_000)), 100);
    }

    #[test]
    fn the_reserve_comes_back_as_retries_age_out() {
        let origin = Instant::now();
        let budget = Budget::new(origin);
        assert_eq!(drain(&budget, origin), 100);
        assert_eq!(drain(&budget, at(origin, 5_000)), 0);
        assert_eq!(drain(&budget, at(origin, 11_000)), 100);
    }

    #[test]
    fn a_call_that_started_long_ago_counts_for_the_second_it_started() {
        let origin = Instant::now();
        let budget = Budget::new(origin);
        // Slot 1 belongs to second 12 now; a call from second 1 ending late adds nothing.
        budget.deposit(at(origin, 12_000));
        for _ in 0..50 {
            budget.deposit(at(origin, 1_000));
        }
        assert_eq!(drain(&budget, at(origin, 12_500)), 100);
        // One from second 3 still counts at second 12, in its own slot.
        let budget = Budget::new(origin);
        for _ in 0..50 {
            budget.deposit(at(origin, 3_000));
        }
        assert_eq!(drain(&budget, at(origin, 12_500)), 100 + 10);
    }

    #[test]
    fn window_numbers_wrap_without_losing_the_order() {
        assert!(newer(0, u32::MAX));
        assert!(newer(5, 4));
        assert!(!newer(4, 5));
        assert_eq!(unpack(pack(u32::MAX, -5)), (u32::MAX, -5));
        assert_eq!(unpack(pack(7, i32::MAX)), (7, i32::MAX));
    }

    #[test]
    fn concurrent_deposits_are_all_counted() {
        let origin = Instant::now();
        let budget = std::sync::Arc::new(Budget::new(origin));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_500 {
                        budget.deposit(at(origin, 100));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("depositing thread");
        }
        assert_eq!(budget.balance(0), 500 + 10_000);
    }
}
