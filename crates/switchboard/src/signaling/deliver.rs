//! Events addressed to a resumable session, wherever it is.
//!
//! A socket.io room reaches only connected sockets, so an event for a session between two
//! connections would vanish. Events for resumable peers (relays and join introductions) go
//! through the session instead: delivered if this node holds it live, kept if it is parked,
//! and otherwise sent to the node that holds it (`redis::mail`). A node that is not there
//! to receive it (crashed, exited) cannot lose it: the event is then kept in Redis for the
//! session's next connection.

use std::time::Duration;

use crate::rooms::StoreError;
use crate::sessions::{Delivery, Keeping, Kept};

use super::Signaling;

/// Times an event is routed again when the session moves while it travels.
const ATTEMPTS: usize = 5;
/// Pause before trying again when Redis says this node holds a session that it is still
/// starting (its resume has just been recorded).
const STARTING_PAUSE: Duration = Duration::from_millis(20);

/// Delivers `event` with its JSON `payload` to the session `peer`: here, kept, or sent to
/// the node that holds it (`hint`: the node its room record names). `Ok` once it was handed
/// to its connection, kept, or sent to a node that received it, or the session no longer
/// exists; `Unavailable` if Redis could not be asked.
pub async fn to_session(
    signaling: &Signaling,
    peer: &str,
    event: &str,
    payload: String,
    mut hint: Option<String>,
) -> Result<(), StoreError> {
    let sessions = &signaling.sessions;
    let kept = Kept {
        event: event.to_owned(),
        payload,
    };
    for _ in 0..ATTEMPTS {
        match sessions.deliver(peer, &kept.event, &kept.payload).await {
            Delivery::Done | Delivery::Overflow => return Ok(()),
            Delivery::NotHere => {}
        }
        let Some(directory) = sessions.directory() else {
            return Ok(()); // single process: the session is gone
        };
        let node = match hint.take().filter(|n| n != directory.node()) {
            Some(node) => node,
            None => match directory.keep(peer, &kept, "").await? {
                Keeping::LiveOn(node) => node,
                Keeping::Kept | Keeping::Overflow | Keeping::Gone => return Ok(()),
            },
        };
        if node == directory.node() {
            tokio::time::sleep(STARTING_PAUSE).await;
            continue;
        }
        if directory.forward(&node, peer, &kept).await? {
            return Ok(());
        }
        // Nobody listens on that node: it crashed or exited. Keep the event for the
        // session's next connection, unless it is live elsewhere already.
        match directory.keep(peer, &kept, &node).await? {
            Keeping::LiveOn(other) => hint = Some(other),
            Keeping::Kept | Keeping::Overflow | Keeping::Gone => return Ok(()),
        }
    }
    Err(StoreError::Unavailable(format!(
        "session {peer} kept moving; event not delivered"
    )))
}
