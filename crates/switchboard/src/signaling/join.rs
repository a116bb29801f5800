//! `join-room`: admit a socket to a call room and introduce it to everyone there.
//!
//! ```text
//!  B ─ join-room {roomId, name} ─► S   store.join: atomic snapshot of A.. + add B
//!  S ─ user-connected {A}, media-state {A} ─► B      (backfill, oldest first)
//!  S ─ user-connected {B}, #rtcio:init-offer {source: B} ─► A..   (exactly the snapshot)
//!  S ─ ack {ok, roomId, self: B, peers: [A..]} ─► B
//! ```
//!
//! The introductions go to exactly the members in B's snapshot, addressed by socket id, not
//! to the socket.io room. With two joins racing, each newcomer is then introduced once,
//! by whichever of them the store admitted second, so no pair of peers sees two
//! `#rtcio:init-offer`s (offer glare) or none (no call). The socket joins the socket.io room
//! before the store admits it, so it cannot miss a departure or media change of a peer its
//! backfill lists.

use std::collections::BTreeMap;

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{ErrorCode, JoinRoom, ProtocolError, RoomId, ServerEvent};

use super::broadcast;
use super::deliver::to_session;
use super::relay::{SLOW_PUBLISH, not_published};
use super::session::{Reply, Session, call_room};
use crate::metrics;
use crate::rooms::{Joined, Member, Peer, now_ms};

impl<A: Adapter> Session<A> {
    pub(super) async fn join(&mut self, join: JoinRoom) -> Result<Reply, ProtocolError> {
        let JoinRoom { room_id, name } = join;
        if !self.grant.may_join(&room_id) {
            return Err(ProtocolError::new(
                ErrorCode::Unauthorized,
                format!("this token does not allow joining room \"{room_id}\""),
            ));
        }
        if self.rooms.contains(&room_id) {
            // rtc.io clients re-send join-room freely: answer, but tell nobody again. A
            // resumable session (which re-sends it on every connect) gets its backfill again.
            let peers = self.signaling.store.peers(&room_id).await?;
            let peers: Vec<Peer> = peers
                .into_iter()
                .filter(|p| p.member.id != self.id)
                .collect();
            if self.resumable {
                self.backfill(&room_id, &peers);
            }
            return Ok(Reply::Joined {
                room: room_id,
                peers: peers.iter().map(Peer::info).collect(),
            });
        }

        if self.rooms.len() >= self.signaling.limits.max_rooms_per_socket {
            return Err(ProtocolError::new(
                ErrorCode::TooManyRooms,
                format!(
                    "a socket may be in {} rooms at once; leave one first",
                    self.signaling.limits.max_rooms_per_socket
                ),
            ));
        }
        let member = Member {
            id: self.id.clone(),
            name,
            node: self.signaling.node_id.clone(),
            joined_at_ms: now_ms(),
            resumable: self.resumable,
        };
        self.socket.join(call_room(&room_id));
        let joined = self
            .signaling
            .store
            .join(&room_id, &member, self.signaling.limits.room_capacity)
            .await;
        let peers = match joined {
            Ok(Joined::Admitted { peers }) => Ok(peers),
            Ok(Joined::Full) => Err(ProtocolError::new(
                ErrorCode::RoomFull,
                format!("room \"{room_id}\" is full"),
            )),
            Err(e) => Err(e.into()),
        }
        .inspect_err(|_| self.socket.leave(call_room(&room_id)))?;
        self.rooms.insert(room_id.clone());
        metrics::joined();
        tracing::info!(socket = %self.id, room = %room_id, peers = peers.len(), "joined room");

        self.backfill(&room_id, &peers);

        let name = member.name.as_str();
        let introduction = ServerEvent::UserConnected { id: &self.id, name };
        let offer = ServerEvent::InitOffer { source: &self.id };
        let (resumable, sockets): (Vec<&Peer>, Vec<&Peer>) =
            peers.iter().partition(|p| p.member.resumable);
        // Earlier members that are plain sockets, by node.
        let mut earlier: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for peer in &sockets {
            let ids = earlier.entry(peer.member.node.as_str()).or_default();
            ids.push(peer.member.id.clone());
        }
        let here = earlier
            .remove(self.signaling.node_id.as_str())
            .unwrap_or_default();
        if !here.is_empty() {
            let to = || self.socket.to(here.clone()).local();
            // A peer's connection closing at this very moment: the others were told.
            let _ = to().emit(names::USER_CONNECTED, &introduction).await;
            let _ = to().emit(names::INIT_OFFER, &offer).await;
        }
        // An ok ack promises that the earlier members were told: Redis must take every
        // message (and be the Redis the snapshot came from, if they were slow). Each other
        // node with members here hears first that the newcomer is in the room (its view), then
        // the introductions, in that order on its one channel.
        let started = std::time::Instant::now();
        let mut nodes: Vec<String> = peers
            .iter()
            .map(|p| p.member.node.clone())
            .filter(|n| *n != self.signaling.node_id)
            .collect();
        nodes.sort();
        nodes.dedup();
        let mut published = broadcast::joined(&self.signaling, &nodes, &room_id, &member).await;
        for (node, ids) in earlier {
            let nodes = [node.to_owned()];
            for (event, payload) in [
                (names::USER_CONNECTED, &introduction),
                (names::INIT_OFFER, &offer),
            ] {
                let to = ids.clone();
                published &=
                    broadcast::to_nodes(&self.signaling, &nodes, &room_id, to, event, payload)
                        .await;
            }
        }
        if published && started.elapsed() >= SLOW_PUBLISH {
            published = self.signaling.store.still_intact().await;
        }
        // Resumable peers are introduced through their sessions, so one between two
        // connections still hears of the newcomer when it comes back.
        for peer in resumable {
            if !published {
                break;
            }
            for (event, payload) in [
                (names::USER_CONNECTED, &introduction),
                (names::INIT_OFFER, &offer),
            ] {
                let payload = serde_json::to_string(payload).unwrap_or_default();
                let hint = Some(peer.member.node.clone());
                if let Err(e) =
                    to_session(&self.signaling, &peer.member.id, event, payload, hint).await
                {
                    tracing::info!(peer = %peer.member.id, event, error = %e, "introduction not delivered");
                    published = false;
                    break;
                }
            }
        }
        if !published {
            tracing::info!(socket = %self.id, room = %room_id, "introductions not published");
            self.rooms.remove(&room_id);
            self.socket.leave(call_room(&room_id));
            let nodes = self.signaling.store.room_nodes(&room_id);
            let left = self.signaling.store.leave(&room_id, &self.id).await;
            let nodes = left.map_or(nodes, |left| left.nodes);
            let departed = ServerEvent::Departed { id: &self.id };
            self.emit_room_on(&nodes, &room_id, names::USER_DISCONNECTED, &departed)
                .await;
            return Err(not_published());
        }

        Ok(Reply::Joined {
            room: room_id,
            peers: peers.iter().map(Peer::info).collect(),
        })
    }

    /// Tells this socket who is in a room: `user-connected`, then `media-state` if known, for
    /// each peer, oldest first.
    fn backfill(&self, room_id: &RoomId, peers: &[Peer]) {
        for peer in peers {
            let id = peer.member.id.as_str();
            self.emit_self(
                names::USER_CONNECTED,
                &ServerEvent::UserConnected {
                    id,
                    name: peer.member.name.as_str(),
                },
            );
            if let Some(media) = peer.media {
                self.emit_self(
                    names::MEDIA_STATE,
                    &ServerEvent::MediaState {
                        id,
                        room_id: room_id.as_str(),
                        mic: media.mic,
                        cam: media.cam,
                    },
                );
            }
        }
    }
}
