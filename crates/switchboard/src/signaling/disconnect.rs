//! The end of a connection: tell every room, then forget the socket's room state.
//!
//! `#rtcio:peer-left` lets peers tear the call down at once instead of waiting ~30 s for ICE
//! consent freshness to fail; `user-disconnected` is the presence update. Both go out before
//! socketioxide flushes the socket's rooms (it waits for this to finish), like socket.io's
//! `disconnecting` event.

use socketioxide::adapter::Adapter;
use switchboard_protocol::ServerEvent;
use switchboard_protocol::outbound::names;

use super::session::Session;

impl<A: Adapter> Session<A> {
    pub(super) async fn disconnect(&mut self) {
        let departed = ServerEvent::Departed { id: &self.id };
        for room in &self.rooms {
            self.emit_room(room, names::PEER_LEFT, &departed).await;
        }
        for room in &self.rooms {
            if let Err(e) = self.signaling.store.leave(room, &self.id).await {
                tracing::warn!(socket = %self.id, %room, error = %e, "could not forget member");
            }
            self.emit_room(room, names::USER_DISCONNECTED, &departed)
                .await;
        }
        self.rooms.clear();
    }
}
