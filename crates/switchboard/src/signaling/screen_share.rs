//! `stopScreenShare`: tell the rest of the room that the sender stopped sharing its screen.
//!
//! The sender's payload goes out with `id` set to the sender's socket id, as the rtc.io
//! contract says (apps put their own fields in it, such as `streamId`). The fields that name
//! a peer, `source` and `target`, are removed: receivers trust them as the server's word, and
//! a client could otherwise name another peer as the one who stopped sharing.

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
        payload.remove("source");
        payload.remove("target");
        payload.insert("id".into(), Value::String(self.id.clone()));
        self.emit_room(&room_id, names::STOP_SCREEN_SHARE, &payload)
            .await;
        Ok(Reply::Done)
    }
}
