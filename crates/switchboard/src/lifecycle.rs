//! The node's lifecycle: serving, then (once a drain begins) waiting, moving and closing.
//!
//! One value, passed explicitly to whoever needs it: the drain advances it; the admission
//! gate and `/ready` read it; sessions end when it reaches closing; and a disconnect's cause
//! depends on it (a transport closed while the node moves its sockets is the node's doing,
//! and a resumable session is parked, not ended, whatever the node is doing).

use std::sync::Arc;

use tokio::sync::watch;

/// Where the node is in its life. Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Taking new clients.
    Serving,
    /// Draining: new clients refused; sockets may leave on their own.
    Waiting,
    /// Draining: the remaining connections are being cut, a batch at a time.
    Moving,
    /// Ending every remaining session and closing.
    Closing,
}

/// A shared handle on the node's phase. Cheap to clone; clones share the phase.
#[derive(Debug, Clone)]
pub struct Lifecycle(Arc<watch::Sender<Phase>>);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Phase::Serving)))
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Whether the node has begun draining (any phase after serving).
    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Serving
    }

    /// Moves to `phase` if that is forward; returns whether it moved.
    pub fn advance(&self, phase: Phase) -> bool {
        self.0.send_if_modified(|now| {
            let forward = phase > *now;
            if forward {
                *now = phase;
            }
            forward
        })
    }

    /// Resolves once the node has reached `phase` (at once if it is there or beyond).
    pub async fn reached(&self, phase: Phase) {
        let mut now = self.0.subscribe();
        let _ = now.wait_for(|p| *p >= phase).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let lifecycle = Lifecycle::default();
        let other = lifecycle.clone();
        assert!(!lifecycle.is_draining());
        assert!(lifecycle.advance(Phase::Moving));
        assert!(!other.advance(Phase::Waiting));
        assert_eq!(other.phase(), Phase::Moving);
        other.reached(Phase::Waiting).await;
        assert!(other.advance(Phase::Closing));
        lifecycle.reached(Phase::Closing).await;
    }
}
