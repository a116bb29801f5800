//! `#rtcio:message`: forward one signaling envelope (SDP, ICE candidate, ...) to one peer.
//!
//! switchboard is stricter than the Node server here: `source` is the sender's real socket
//! id, whatever the client wrote, and the envelope is delivered only if sender and target
//! share a room. `data` is forwarded as the exact JSON text the sender wrote.
//!
//! In a cluster, a target on this node is reached without Redis (no publish, no round trip);
//! only a target on another node costs a lookup and a publish. Relays that need the lookup
//! wait in the session's [`super::remote_relays`] queue, so they never hold up relays to
//! sockets on this node. A resumable target is reached through its session (`deliver`),
//! which keeps the envelope while it is away.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use socketioxide::BroadcastError;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{Envelope, ErrorCode, ProtocolError, RoomId, ServerEvent};

use super::Signaling;
use super::deliver::to_session;
use super::session::{Reply, Session};
use crate::cluster::publish_required;
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
    let Some(Located {
        location,
        resumable,
    }) = locate_roommate(store, rooms, &target).await?
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
    if resumable {
        let payload = serde_json::to_string(&payload).unwrap_or_default();
        let hint = match location {
            Location::ThisNode => None,
            Location::OtherNode(node) => Some(node),
        };
        to_session(signaling, &target, names::MESSAGE, payload, hint).await?;
        return Ok(Reply::Done);
    }
    let to = socket.within(target.clone());
    match location {
        Location::ThisNode => {
            if let Err(e) = to.local().emit(names::MESSAGE, &payload).await {
                tracing::warn!(socket = source, %target, error = %e, "relay failed");
            }
        }
        Location::OtherNode(_) => {
            // Redis must take it: an ok ack promises the message was sent on.
            let started = Instant::now();
            match publish_required(to.emit(names::MESSAGE, &payload)).await {
                Ok(()) if started.elapsed() >= SLOW_PUBLISH && !store.still_intact().await => {
                    tracing::info!(socket = source, %target, "relay published across a Redis restart");
                    return Err(not_published());
                }
                Ok(()) => {}
                Err(e @ BroadcastError::Adapter(_)) => {
                    tracing::info!(socket = source, %target, error = %e, "relay not published");
                    return Err(not_published());
                }
                Err(e) => tracing::warn!(socket = source, %target, error = %e, "relay failed"),
            }
        }
    }
    Ok(Reply::Done)
}

/// The refusal of an event whose cluster publish Redis did not take.
pub(super) fn not_published() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::Unavailable,
        "the cluster could not take this message; nothing was delivered, try again",
    )
}

/// Where `target` is, if it shares a room with this socket.
async fn locate_roommate(
    store: &dyn RoomStore,
    rooms: &BTreeSet<RoomId>,
    target: &str,
) -> Result<Option<Located>, ProtocolError> {
    for room in rooms {
        if let Some(location) = store.locate(room, target).await? {
            return Ok(Some(location));
        }
    }
    Ok(None)
}

/// Whether a relay to `target` can be answered without waiting on the room store (a
/// roommate on this node; with a single process, always).
pub(super) fn answerable_now(
    store: &dyn RoomStore,
    rooms: &BTreeSet<RoomId>,
    target: &str,
) -> bool {
    let mut all_known = true;
    for room in rooms {
        match store.locate_now(room, target) {
            Some(Some(_)) => return true,
            Some(None) => {}
            None => all_known = false,
        }
    }
    all_known
}
