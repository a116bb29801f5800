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

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{ErrorCode, JoinRoom, ProtocolError, ServerEvent};

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
            // rtc.io clients re-send join-room freely: answer, but tell nobody again.
            let peers = self.signaling.store.peers(&room_id).await?;
            let peers = peers
                .iter()
                .filter(|p| p.member.id != self.id)
                .map(Peer::info)
                .collect();
            return Ok(Reply::Joined {
                room: room_id,
                peers,
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

        for peer in &peers {
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

        if !peers.is_empty() {
            let earlier: Vec<String> = peers.iter().map(|p| p.member.id.clone()).collect();
            let name = member.name.as_str();
            let introduction = ServerEvent::UserConnected { id: &self.id, name };
            self.emit_to(&earlier, names::USER_CONNECTED, &introduction)
                .await;
            let offer = ServerEvent::InitOffer { source: &self.id };
            self.emit_to(&earlier, names::INIT_OFFER, &offer).await;
        }

        Ok(Reply::Joined {
            room: room_id,
            peers: peers.iter().map(Peer::info).collect(),
        })
    }
}
