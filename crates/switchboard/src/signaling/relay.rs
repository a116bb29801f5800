//! `#rtcio:message`: forward one signaling envelope (SDP, ICE candidate, ...) to one peer.
//!
//! switchboard is stricter than the Node server here: `source` is the sender's real socket
//! id, whatever the client wrote, and the envelope is delivered only if sender and target
//! share a room. `data` is forwarded as the exact JSON text the sender wrote.

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{Envelope, ErrorCode, ProtocolError, ServerEvent};

use super::session::{Reply, Session};

impl<A: Adapter> Session<A> {
    pub(super) async fn relay(&mut self, envelope: Envelope) -> Result<Reply, ProtocolError> {
        let Envelope { target, data } = envelope;
        if !self.shares_room_with(&target).await? {
            return Err(ProtocolError::new(
                ErrorCode::NotInRoom,
                format!("no room in common with \"{target}\"; nothing was delivered"),
            ));
        }
        let payload = ServerEvent::Message {
            source: &self.id,
            target: &target,
            data: &data,
        };
        let sent = self
            .socket
            .within(target.clone())
            .emit(names::MESSAGE, &payload)
            .await;
        if let Err(e) = sent {
            tracing::warn!(socket = %self.id, %target, error = %e, "relay failed");
        }
        Ok(Reply::Done)
    }

    async fn shares_room_with(&self, target: &str) -> Result<bool, ProtocolError> {
        for room in &self.rooms {
            if self.signaling.store.is_member(room, target).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
