//! `#rtcio:message`: forward one signaling envelope (SDP, ICE candidate, ...) to one peer.
//!
//! switchboard is stricter than the Node server here: `source` is the sender's real socket
//! id, whatever the client wrote, and the envelope is delivered only if sender and target
//! share a room. `data` is forwarded as the exact JSON text the sender wrote.
//!
//! In a cluster, a target on this node is reached without Redis (no publish, no round trip).
//! A target on another node is found in this node's view of the room (`rooms::view`) and
//! costs one publish, on its node's own channel (`redis::mail`): only that node receives
//! it. A target missing from the view costs one lookup in Redis first. Relays to another node
//! wait in the session's [`super::remote_relays`] queue, so a Redis that hangs never holds up
//! relays to sockets on this node. A
//! resumable target is reached through its session (`deliver`), which keeps the envelope
//! while it is away.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{Envelope, ErrorCode, ProtocolError, RoomId, ServerEvent};

use super::Signaling;
use super::deliver::to_session;
use super::session::{Reply, Session};
use crate::metrics::{self, Route};
use crate::redis::Mail;
use crate::rooms::{Located, Location, RoomStore};

impl<A: Adapter> Session<A> {
    pub(super) async fn relay(&mut self, envelope: Envelope) -> Result<Reply, ProtocolError> {
        relay(
            &self.socket,
            &self.id,
            &self.signaling,
            &self.rooms,
            envelope,
        )
        .await
    }
}

/// A publish that took this long may have waited for a reconnection (the first attempt comes
/// after 50 ms), and so may have gone to a Redis restarted empty: checked before it is acked.
pub(super) const SLOW_PUBLISH: Duration = Duration::from_millis(40);

/// Delivers one envelope from socket `source` (a member of `rooms`) to its target, if they
/// share a room. A relay to another node is accepted only once Redis accepted its publish.
pub(super) async fn relay<A: Adapter>(
    socket: &SocketRef<A>,
    source: &str,
    signaling: &Signaling,
    rooms: &BTreeSet<RoomId>,
    envelope: Envelope,
) -> Result<Reply, ProtocolError> {
    let store = signaling.store.as_ref();
    let Envelope { target, data } = envelope;
    let Some((
        room,
        Located {
            location,
            resumable,
        },
    )) = store.locate(rooms, &target).await?
    else {
        return Err(ProtocolError::new(
            ErrorCode::NotInRoom,
            format!("no room in common with \"{target}\"; nothing was delivered"),
        ));
    };
    let payload = ServerEvent::Message {
        source,
        target: &target,
        data: &data,
    };
    let node = match location {
        Location::ThisNode if !resumable => {
            metrics::relay_routed(Route::Local);
            if let Err(e) = socket
                .within(target.clone())
                .local()
                .emit(names::MESSAGE, &payload)
                .await
            {
                tracing::warn!(socket = source, %target, error = %e, "relay failed");
            }
            return Ok(Reply::Done);
        }
        Location::ThisNode => None,
        Location::OtherNode(node) => Some(node),
    };
    metrics::relay_routed(if node.is_some() {
        Route::Remote
    } else {
        Route::Local
    });
    let payload = serde_json::to_string(&payload).unwrap_or_default();
    if resumable {
        to_session(signaling, &target, names::MESSAGE, payload, node).await?;
        return Ok(Reply::Done);
    }
    let (Some(node), Some(bus)) = (node, &signaling.bus) else {
        return Err(not_published()); // another node, but no cluster: cannot happen
    };
    // Redis must take it: an ok ack promises the message was sent on.
    let mail = Mail::Relay {
        from: signaling.node_id.clone(),
        room,
        target,
        payload,
    };
    let started = Instant::now();
    match bus.send_mail(&node, &mail).await {
        Ok(true) if started.elapsed() >= SLOW_PUBLISH && !store.still_intact().await => {
            tracing::info!(socket = source, "relay published across a Redis restart");
            Err(not_published())
        }
        Ok(true) => Ok(Reply::Done),
        Ok(false) => Err(ProtocolError::new(
            ErrorCode::Unavailable,
            "the peer's node is not reachable; nothing was delivered, try again",
        )),
        Err(e) => {
            bus.count_failed();
            tracing::info!(socket = source, error = %e, "relay not published");
            Err(not_published())
        }
    }
}

/// The refusal of an event whose cluster publish Redis did not take.
pub(super) fn not_published() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::Unavailable,
        "the cluster could not take this message; nothing was delivered, try again",
    )
}

/// Whether a relay to `target` is answered without waiting on Redis: a roommate on this
/// node (with a single process, always). Anything else waits on Redis for its lookup or its
/// publish, which stalls for the command timeout when Redis hangs.
pub(super) fn answerable_now(
    store: &dyn RoomStore,
    rooms: &BTreeSet<RoomId>,
    target: &str,
) -> bool {
    let mut all_known = true;
    for room in rooms {
        match store.locate_now(room, target) {
            Some(Some(Located {
                location: Location::ThisNode,
                ..
            })) => return true,
            Some(None) => {}
            Some(Some(_)) | None => all_known = false,
        }
    }
    all_known
}
