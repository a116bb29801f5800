//! Graceful drain: take a node out of service without breaking anyone's call set-up.
//!
//! Three phases, as operators of real-time systems run them:
//!
//! 1. **cordon**: `/ready` answers 503, new socket.io handshakes get 503 (a balancer retries
//!    them on another node), and the node tells the registry it is draining. Existing sockets
//!    keep working.
//! 2. **wait**: sockets may finish their calls and leave on their own, for up to
//!    `--drain-wait`.
//! 3. **move**: the sockets still there are cut off in small batches spread over
//!    `--drain-spread`, so they reconnect to other nodes without a thundering herd (see
//!    `connections` for how). Then the node ends the remaining sessions, closes, leaves the
//!    registry and exits.
//!
//! A signal (SIGTERM, SIGINT) or `POST /admin/drain` starts it; `main` runs it and exits.

use std::time::Duration;

use tokio::time::Instant;

use crate::connections::WebSockets;
use crate::lifecycle::{Lifecycle, Phase};
use crate::signaling::Signaling;

/// How often the move phase cuts a batch.
const MOVE_TICK: Duration = Duration::from_millis(250);

/// The drain state of this node, shared by the HTTP handlers, the cordon middleware and
/// `main`.
#[derive(Debug)]
pub struct Drain {
    lifecycle: Lifecycle,
    /// Connections carrying a WebSocket: what the move phase cuts.
    pub websockets: WebSockets,
    wait: Duration,
    spread: Duration,
}

impl Drain {
    pub fn new(lifecycle: Lifecycle, wait: Duration, spread: Duration) -> Self {
        Self {
            lifecycle,
            websockets: WebSockets::default(),
            wait,
            spread,
        }
    }

    pub fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    pub fn is_draining(&self) -> bool {
        self.lifecycle.is_draining()
    }

    /// Cordons the node. Returns false if it was draining already.
    pub fn begin(&self) -> bool {
        let begun = self.lifecycle.advance(Phase::Waiting);
        if begun {
            crate::metrics::set_draining(true);
        }
        begun
    }

    /// Resolves once the drain has begun, however it was started.
    pub async fn begun(&self) {
        self.lifecycle.reached(Phase::Waiting).await;
    }

    /// The wait and move phases. Returns the deadline by which the caller must have closed
    /// what remains (long-polling sockets, and sessions still ending) so the node exits within
    /// `--drain-wait` + `--drain-spread`.
    pub async fn run(&self, signaling: &Signaling) -> Instant {
        let sockets = || signaling.connected_sockets();
        let deadline = Instant::now() + self.wait + self.spread;
        tracing::info!(
            sockets = sockets(),
            wait_secs = self.wait.as_secs(),
            spread_secs = self.spread.as_secs(),
            "draining: new connections refused, waiting for sockets to leave"
        );
        let waited = Instant::now() + self.wait;
        while sockets() > 0 && Instant::now() < waited {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if sockets() == 0 {
            return deadline;
        }

        self.lifecycle.advance(Phase::Moving);
        // The last fifth of the spread is left for the moved sockets' sessions to end (each
        // announces its departure and updates room state) and for closing the rest.
        let moving = self.spread.saturating_sub(self.spread / 5);
        let ticks = (moving.as_millis() / MOVE_TICK.as_millis()).max(1) as usize;
        tracing::info!(
            sockets = sockets(),
            websockets = self.websockets.open(),
            "draining: moving the remaining sockets to other nodes"
        );
        let mut interval = tokio::time::interval(MOVE_TICK);
        for tick in 0..ticks {
            interval.tick().await;
            if sockets() == 0 {
                break;
            }
            // Even batches over the ticks left, recomputed as sockets also leave on their own.
            let open = self.websockets.open();
            let batch = open.div_ceil(ticks - tick);
            let cut = self
                .websockets
                .cut(batch, |socket| signaling.sessions.leave(socket));
            tracing::debug!(cut, open, "draining: cut a batch of WebSockets");
        }
        self.lifecycle.advance(Phase::Closing);
        tracing::info!(
            sockets = sockets(),
            "draining: closing the remaining sockets"
        );
        deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begins_once() {
        let drain = Drain::new(Lifecycle::default(), Duration::ZERO, Duration::ZERO);
        assert!(!drain.is_draining());
        assert!(drain.begin());
        assert!(drain.is_draining());
        assert!(!drain.begin());
        assert_eq!(drain.phase(), Phase::Waiting);
    }
}
