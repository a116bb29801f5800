//! `#rtcio:message`: forward one signaling envelope (SDP, ICE candidate, ...) to one peer.
//!
//! switchboard is stricter than the Node server here: `source` is the sender's real socket
//! id, whatever the client wrote, and the envelope is delivered only if sender and target
//! share a room. `data` is forwarded as the exact JSON text the sender wrote.
//!
//! In a cluster, a target on this node is reached without Redis (no publish, no round trip);
//! only a target on another node costs a lookup and a publish. A resumable target is
//! reached through its session (`deliver`), which keeps the envelope while it is away.

use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{Envelope, ErrorCode, ProtocolError, ServerEvent};

use super::deliver::to_session;
use super::session::{Reply, Session};
use crate::rooms::{Located, Location};

impl<A: Adapter> Session<A> {
    pub(super) async fn relay(&mut self, envelope: Envelope) -> Result<Reply, ProtocolError> {
        let Envelope { target, data } = envelope;
        let Some(Located {
            location,
            resumable,
        }) = self.locate_roommate(&target).await?
        else {
            return Err(ProtocolError::new(
                ErrorCode::NotInRoom,
                format!("no room in common with \"{target}\"; nothing was delivered"),
            ));
        };
        let payload = ServerEvent::Message {
            source: &self.id,
            target: &target,
            data: &data,
        };
        if resumable {
            let payload = serde_json::to_string(&payload).unwrap_or_default();
            let hint = match location {
                Location::ThisNode => None,
                Location::OtherNode(node) => Some(node),
            };
            to_session(&self.signaling, &target, names::MESSAGE, payload, hint).await?;
            return Ok(Reply::Done);
        }
        let to = self.socket.within(target.clone());
        let to = match location {
            Location::ThisNode => to.local(),
            Location::OtherNode(_) => to,
        };
        let sent = to.emit(names::MESSAGE, &payload).await;
        if let Err(e) = sent {
            tracing::warn!(socket = %self.id, %target, error = %e, "relay failed");
        }
        Ok(Reply::Done)
    }

    /// Where `target` is, if it shares a room with this socket.
    async fn locate_roommate(&self, target: &str) -> Result<Option<Located>, ProtocolError> {
        for room in &self.rooms {
            if let Some(location) = self.signaling.store.locate(room, target).await? {
                return Ok(Some(location));
            }
        }
        Ok(None)
    }
}
