//! `stopScreenShare`: pass the sender's payload to the rest of the room, with `id` set to the
//! sender (whatever the client put there).

use serde_json::Value;
use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{ProtocolError, ScreenShareStop};

use super::session::{Reply, Session};

impl<A: Adapter> Session<A> {
    pub(super) async fn stop_screen_share(
        &mut self,
        stop: ScreenShareStop,
    ) -> Result<Reply, ProtocolError> {
        let ScreenShareStop {
            room_id,
            mut payload,
        } = stop;
        self.ensure_member(&room_id)?;
        payload.insert("id".into(), Value::String(self.id.clone()));
        self.emit_room(&room_id, names::STOP_SCREEN_SHARE, &payload)
            .await;
        Ok(Reply::Done)
    }
}
