//! One monotonic clock for the whole run.
//!
//! Relay payloads carry the time they were sent, in microseconds since this clock started, so
//! the receiving task (any task of this process) computes latency without a lookup table.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the run's epoch (the first call).
pub fn now_micros() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_micros() as u64
}

/// Elapsed time between two readings of [`now_micros`].
pub fn micros_between(earlier: u64, later: u64) -> Duration {
    Duration::from_micros(later.saturating_sub(earlier))
}
