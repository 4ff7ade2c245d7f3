//! Counting calls and their latencies over a measurement window.

use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The stretch of time a throughput cell is measured over, after its warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// When counting starts.
    pub start: Instant,
    /// When counting stops and callers stop sending.
    pub end: Instant,
}

impl Window {
    /// A window of `length` that opens `warmup` from now.
    pub fn after(warmup: Duration, length: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + length,
        }
    }

    /// Whether a call that finished at `t` counts.
    pub fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        self.end - self.start
    }
}

/// Calls that succeeded, with their latencies, and calls that failed.
#[derive(Clone)]
pub struct Tally {
    /// Calls recorded.
    pub calls: u64,
    /// Calls that failed (counted whether or not they fell in a window).
    pub errors: u64,
    /// The first failure, to say what went wrong.
    pub first_error: Option<String>,
    latency: Histogram<u64>,
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tally")
            .field("calls", &self.calls)
            .field("errors", &self.errors)
            .field("p50_us", &self.percentile_us(50.0))
            .finish_non_exhaustive()
    }
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// An empty tally; latencies from 1 ns to 60 s, to two significant digits (1%).
    ///
    /// Two digits keep a histogram near 30 KB; three would make it over 200 KB, and a
    /// throughput cell holds one per caller (1024 of them), enough that allocating,
    /// touching and merging them showed up in the client's CPU time.
    pub fn new() -> Self {
        Self {
            calls: 0,
            errors: 0,
            first_error: None,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 2)
                .expect("constant bounds are valid"),
        }
    }

    /// Records a call sent at `sent` that answered at `done`.
    pub fn record(&mut self, sent: Instant, done: Instant) {
        let nanos = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
        self.record_nanos(nanos);
    }

    /// Records a latency measured some other way (across processes, say), in nanoseconds.
    pub fn record_nanos(&mut self, nanos: u64) {
        self.calls += 1;
        self.latency.saturating_record(nanos.max(1));
    }

    /// Records the call if it answered inside `window`.
    pub fn record_in(&mut self, window: &Window, sent: Instant, done: Instant) {
        if window.contains(done) {
            self.record(sent, done);
        }
    }

    /// Counts a failed call.
    pub fn error(&mut self, error: impl fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// Adds another tally's calls, errors and latencies to this one.
    pub fn merge(&mut self, other: Tally) {
        self.calls += other.calls;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// The latency at `percentile` (0 to 100), in microseconds; 0 with no calls.
    pub fn percentile_us(&self, percentile: f64) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        self.latency.value_at_percentile(percentile) as f64 / 1_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_inside_the_window_count() {
        let window = Window::after(Duration::from_secs(1), Duration::from_secs(1));
        let mut tally = Tally::new();
        tally.record_in(
            &window,
            window.start,
            window.start - Duration::from_millis(1),
        );
        tally.record_in(
            &window,
            window.start,
            window.start + Duration::from_micros(10),
        );
        tally.record_in(&window, window.start, window.end);
        assert_eq!(tally.calls, 1);
        assert!(
            (tally.percentile_us(50.0) - 10.0).abs() < 0.1,
            "1% of 10 µs"
        );
    }

    #[test]
    fn merge_adds_everything() {
        let now = Instant::now();
        let mut a = Tally::new();
        a.record(now, now + Duration::from_micros(5));
        let mut b = Tally::new();
        b.record(now, now + Duration::from_micros(500));
        b.error("boom");
        a.merge(b);
        assert_eq!((a.calls, a.errors), (2, 1));
        assert_eq!(a.first_error.as_deref(), Some("boom"));
        assert!(a.percentile_us(100.0) >= 499.0);
    }
}
