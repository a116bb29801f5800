//! Room events beyond this node: to exactly the nodes that have members in the room.
//!
//! socket.io's cluster adapter publishes every room emit on one channel that every node
//! reads, so every node pays for every room's traffic. A node knows which other nodes have
//! members in its rooms (`rooms::view`), so a room event goes to its own sockets directly and,
//! as node mail (`redis::mail`), to each of those nodes; a node with no member in the room
//! never sees it. Everything one node sends another (room events and relays) travels on that
//! node's one channel, so it arrives in the order it was sent.

use serde::Serialize;
use switchboard_protocol::RoomId;

use super::Signaling;
use crate::redis::{Mail, RosterChange};
use crate::rooms::Member;

/// Sends a room event to `nodes`, for their sockets in `room` (only those of `to` when it is
/// not empty). Whether Redis took it for every node; a node nobody listens for any more (it
/// crashed or exited) counts as reached: its sockets are gone.
pub(super) async fn to_nodes<T: Serialize + ?Sized>(
    signaling: &Signaling,
    nodes: &[String],
    room: &RoomId,
    to: Vec<String>,
    event: &str,
    payload: &T,
) -> bool {
    if nodes.is_empty() {
        return true;
    }
    let mail = Mail::Emit {
        room: room.clone(),
        to,
        event: event.to_owned(),
        payload: serde_json::to_string(payload).unwrap_or_default(),
    };
    send_each(signaling, nodes, &mail).await
}

/// Tells `nodes` that `member` is now in `room` on this node, for their views of the room.
/// Whether Redis took it for every node.
pub(super) async fn joined(
    signaling: &Signaling,
    nodes: &[String],
    room: &RoomId,
    member: &Member,
) -> bool {
    let mail = Mail::Roster(RosterChange::Joined {
        room: room.clone(),
        member: member.id.clone(),
        node: member.node.clone(),
        resumable: member.resumable,
    });
    send_each(signaling, nodes, &mail).await
}

/// Sends `mail` to each of `nodes` (see [`crate::redis::RedisBus::send_each`]).
async fn send_each(signaling: &Signaling, nodes: &[String], mail: &Mail) -> bool {
    match &signaling.bus {
        Some(bus) => bus.send_each(nodes, mail).await,
        None => true,
    }
}
