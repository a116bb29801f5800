//! A budget of refusals per socket: a client that keeps breaking the rules is disconnected.
//!
//! Every refusal costs the server a log line, an `error` event and an ack, whatever the event
//! was; the rate limit bounds events, not what refusing them costs. So each socket gets an
//! allowance of `--max-refusals` refused events, refilled at a tenth of that per second. A
//! stock client never comes near it (a few refusals per call at worst); a client that
//! exhausts it is disconnected with a socket.io disconnect packet (the stock client does not
//! reconnect after one), counted as `repeat-offender`, and its further refusals are neither
//! answered nor logged.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use crate::metrics::{self, CutReason};

/// One socket's allowance of refusals, kept in its extensions.
pub struct Refusals {
    allowance: DefaultDirectRateLimiter,
    /// Set once the socket was disconnected for exhausting it.
    exhausted: AtomicBool,
}

impl Refusals {
    /// `None` when `max` is 0 (no limit).
    pub fn new(max: u32) -> Option<Arc<Self>> {
        let burst = NonZeroU32::new(max)?;
        let refill = NonZeroU32::new(max / 10).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(refill).allow_burst(burst);
        Some(Arc::new(Self {
            allowance: RateLimiter::direct(quota),
            exhausted: AtomicBool::new(false),
        }))
    }
}

/// Whether a refusal may be answered. The first refusal beyond the allowance disconnects the
/// socket; it and every later one are dropped silently.
pub fn allow<A: Adapter>(socket: &SocketRef<A>) -> bool {
    let Some(refusals) = socket.extensions.get::<Arc<Refusals>>() else {
        return true;
    };
    if refusals.exhausted.load(Ordering::Relaxed) {
        return false;
    }
    if refusals.allowance.check().is_ok() {
        return true;
    }
    if !refusals.exhausted.swap(true, Ordering::Relaxed) {
        metrics::connection_cut(CutReason::RepeatOffender);
        tracing::warn!(socket = %socket.id, reason = CutReason::RepeatOffender.name(), "disconnecting: too many refused events");
        if let Err(e) = socket.clone().disconnect() {
            tracing::debug!(socket = %socket.id, error = %e, "disconnect failed");
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowance_is_a_burst_of_max() {
        assert!(Refusals::new(0).is_none());
        let refusals = Refusals::new(20).unwrap();
        let allowed = (0..100)
            .take_while(|_| refusals.allowance.check().is_ok())
            .count();
        assert_eq!(allowed, 20);
    }
}
