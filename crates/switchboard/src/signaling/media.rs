//! `media-state`: remember a member's mic/cam state (late joiners get it as backfill) and tell
//! the rest of the room.

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{MediaState, MediaUpdate, ProtocolError, ServerEvent};

use super::session::{Reply, Session};

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
