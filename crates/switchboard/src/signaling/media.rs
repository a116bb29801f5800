//! `media-state`: remember a member's mic/cam state (late joiners get it as backfill) and tell
//! the rest of the room.

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{MediaState, MediaUpdate, ProtocolError, RoomId, ServerEvent};

use super::session::{Reply, Session, call_room};

impl<A: Adapter> Session<A> {
    pub(super) async fn media_state(
        &mut self,
        update: MediaUpdate,
    ) -> Result<Reply, ProtocolError> {
        let MediaUpdate { room_id, mic, cam } = update;
        self.ensure_member(&room_id)?;
        self.signaling
            .store
            .set_media(&room_id, &self.id, MediaState { mic, cam })
            .await?;
        self.emit_room(
            &room_id,
            names::MEDIA_STATE,
            &ServerEvent::MediaState {
                id: &self.id,
                room_id: room_id.as_str(),
                mic,
                cam,
            },
        )
        .await;
        Ok(Reply::Done)
    }
}

/// Tells a room, except the sockets in `except`, a member's media state when its own socket
/// could not reach them (Redis was down when it changed).
pub async fn announce_media<A: Adapter>(
    io: &SocketIo<A>,
    room: &RoomId,
    member_id: &str,
    media: MediaState,
    except: Vec<String>,
) {
    let event = ServerEvent::MediaState {
        id: member_id,
        room_id: room.as_str(),
        mic: media.mic,
        cam: media.cam,
    };
    let to = io.to(call_room(room)).except(except);
    if let Err(e) = to.emit(names::MEDIA_STATE, &event).await {
        tracing::warn!(%room, member = member_id, error = %e, "media state not announced");
    }
}
