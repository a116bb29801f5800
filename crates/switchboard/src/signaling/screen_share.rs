//! `stopScreenShare`: tell the rest of the room that the sender stopped sharing its screen.
//!
//! Only the documented fields go out, `{ roomId, id }`, with `id` the sender's socket id:
//! forwarding whatever the client wrote let it forge fields the receivers trust (a `source`
//! naming another peer, say) and broadcast up to --max-payload bytes to a whole room.

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
        let ScreenShareStop { room_id, .. } = stop;
        self.ensure_member(&room_id)?;
        let mut payload = serde_json::Map::new();
        payload.insert("roomId".into(), Value::String(room_id.to_string()));
        payload.insert("id".into(), Value::String(self.id.clone()));
        self.emit_room(&room_id, names::STOP_SCREEN_SHARE, &payload)
            .await;
        Ok(Reply::Done)
    }
}
