//! Bounded polling: every wait in a test ends, with an answer either way.

use std::time::{Duration, Instant};

/// How often [`wait_until`] checks.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns true or `timeout` has passed; returns whether it did.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
