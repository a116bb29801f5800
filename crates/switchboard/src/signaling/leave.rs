//! `leave-room`: the socket leaves one room; the others hear `user-disconnected`.

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{LeaveRoom, ProtocolError, ServerEvent};

use super::session::{Reply, Session, call_room};
use crate::metrics::{self, LeaveCause};

impl<A: Adapter> Session<A> {
    pub(super) async fn leave(&mut self, leave: LeaveRoom) -> Result<Reply, ProtocolError> {
        let room = leave.room_id;
        self.ensure_member(&room)?;
        let left = self.signaling.store.leave(&room, &self.id).await?;
        self.rooms.remove(&room);
        self.emit_room_on(
            &left.nodes,
            &room,
            names::USER_DISCONNECTED,
            &ServerEvent::Departed { id: &self.id },
        )
        .await;
        self.socket.leave(call_room(&room));
        metrics::left(LeaveCause::LeaveRoom);
        tracing::info!(socket = %self.id, %room, "left room");
        Ok(Reply::Done)
    }
}
