//! The node's mail room: what other nodes send this one, and the roster changes it sends.
//!
//! Every node reads its own channel (`redis::mail`) in one task, in the order the messages
//! arrived: relays and room events for its sockets (each checked against its own members:
//! a node delivers only to its members of the room the sender named), roster changes for its
//! view of its rooms, and events for the resumable sessions it holds. What its own members
//! do (join, leave) is told to the nodes in its view by another task, in the order it
//! happened; what concerns every node (a node died, departures told late) goes to every
//! live node, since no node knows which others keep that room in view.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide_redis::drivers::Driver;
use switchboard_protocol::RoomId;
use switchboard_protocol::outbound::names;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Cluster, ClusterAdapter};
use crate::redis::{Mail, RosterChange, STREAM_BUFFER, mail_channel};
use crate::rooms::{Departure, Told};
use crate::signaling::{self, Signaling};

impl Cluster {
    /// Sends the roster changes of this node's members to the nodes that must hear them, in
    /// the order they happened, until the process ends.
    pub(super) async fn tell_roster_changes(self: Arc<Self>, mut told: UnboundedReceiver<Told>) {
        while let Some(Told { to, change }) = told.recv().await {
            // Not told, a view heals: a relay to the wrong node is answered with `Left`.
            let to: Vec<String> = to.into_iter().collect();
            self.bus.send_each(&to, &Mail::Roster(change)).await;
        }
    }

    /// Tells every live node that these members (of `node`) left their rooms.
    pub(super) async fn tell_departures(&self, departures: &[Departure], node: &str) {
        for d in departures {
            let left = RosterChange::Left {
                room: d.room.clone(),
                member: d.member_id.clone(),
                node: node.to_owned(),
            };
            self.store.apply(&left);
            self.tell_live_nodes(left).await;
        }
    }

    /// Tells every other live node a roster change (rare events: a node died, departures
    /// told late), since this node cannot know which of them have the room in their view.
    pub(super) async fn tell_live_nodes(&self, change: RosterChange) {
        let nodes = match self.registry.live().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::debug!(error = %e, "could not list live nodes; roster change not told");
                return;
            }
        };
        let others: Vec<String> = nodes
            .into_iter()
            .map(|n| n.id)
            .filter(|id| *id != self.node.id)
            .collect();
        self.bus.send_each(&others, &Mail::Roster(change)).await;
    }

    /// Delivers a relay from another node to its target here, if the target is a member of
    /// the room the sender named on this node; otherwise tells the sender's node, whose view
    /// was stale, that the target is not here.
    async fn relay_here(
        &self,
        io: &SocketIo<ClusterAdapter>,
        from: String,
        room: RoomId,
        target: String,
        payload: String,
    ) {
        if !self.store.delivers_here(&room, &target) {
            self.bus.count_misrouted();
            tracing::debug!(%room, %target, %from, "relay for a member not here");
            let left = Mail::Roster(RosterChange::Left {
                room,
                member: target,
                node: self.node.id.clone(),
            });
            self.bus.send_each(&[from], &left).await;
            return;
        }
        let Some(payload) = json(payload) else {
            return;
        };
        let to = io.to(target).local();
        if let Err(e) = to.emit(names::MESSAGE, &payload).await {
            tracing::debug!(error = %e, "relay from another node not delivered");
        }
    }

    /// Emits a room event from another node to this node's sockets in the room (those of
    /// `to` only, when it names some).
    async fn emit_here(
        &self,
        io: &SocketIo<ClusterAdapter>,
        room: RoomId,
        to: Vec<String>,
        event: &str,
        payload: String,
    ) {
        let Some(payload) = json(payload) else {
            return;
        };
        let sent = if to.is_empty() {
            io.to(signaling::call_room(&room))
                .local()
                .emit(event, &payload)
                .await
        } else {
            let members: Vec<String> = to
                .into_iter()
                .filter(|id| self.store.delivers_here(&room, id))
                .collect();
            if members.is_empty() {
                self.bus.count_misrouted();
                return;
            }
            io.to(members).local().emit(event, &payload).await
        };
        if let Err(e) = sent {
            tracing::debug!(%room, event, error = %e, "room event not delivered to every member");
        }
    }

    /// Handles the mail addressed to this node (see `mail`), until the process ends.
    pub(super) async fn read_mail(
        self: Arc<Self>,
        io: SocketIo<ClusterAdapter>,
        signaling: Arc<Signaling>,
    ) {
        let channel = mail_channel(&self.node.id);
        let mut inbox = match self.bus.subscribe(channel, STREAM_BUFFER).await {
            Ok(inbox) => inbox,
            Err(e) => {
                tracing::error!(error = %e, "cannot receive node mail; resumable sessions degrade");
                return;
            }
        };
        while let Some((_, bytes)) = inbox.next().await {
            match Mail::decode(&bytes) {
                Some(Mail::Deliver {
                    peer,
                    event,
                    payload,
                }) => {
                    // In its own task: a session being kept in Redis must not hold up the
                    // others. Events for one session arrive from one sender's node in order
                    // and are handed on in order unless its session is parked.
                    let result =
                        signaling::to_session(&signaling, &peer, &event, payload, None).await;
                    if let Err(e) = result {
                        tracing::warn!(peer, event, error = %e, "event for a session lost");
                    }
                }
                Some(Mail::Relay {
                    from,
                    room,
                    target,
                    payload,
                }) => self.relay_here(&io, from, room, target, payload).await,
                Some(Mail::Roster(change)) => self.store.apply(&change),
                Some(Mail::Emit {
                    room,
                    to,
                    event,
                    payload,
                }) => self.emit_here(&io, room, to, &event, payload).await,
                Some(Mail::Moved { peer }) => {
                    if signaling.sessions.moved_away(&peer) {
                        let rooms = signaling.store.release(&peer).await;
                        tracing::info!(
                            peer,
                            rooms = rooms.len(),
                            "session resumed on another node"
                        );
                    }
                }
                None => tracing::warn!("unreadable node mail ignored"),
            }
        }
        self.mail_read.send_replace(true);
    }
}

/// The JSON payload of mail from another node, ready to emit as is; `None` (logged) if it is
/// not JSON, which this version never sends.
fn json(payload: String) -> Option<Box<RawValue>> {
    RawValue::from_string(payload)
        .inspect_err(|e| tracing::warn!(error = %e, "node mail payload is not JSON; dropped"))
        .ok()
}
