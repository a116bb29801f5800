//! The end of a connection: tell every room, then forget the socket's room state.
//!
//! `#rtcio:peer-left` lets peers tear the call down at once instead of waiting ~30 s for ICE
//! consent freshness to fail; `user-disconnected` is the presence update. Both go out before
//! socketioxide flushes the socket's rooms (it waits for this to finish), like socket.io's
//! `disconnecting` event.

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use switchboard_protocol::outbound::names;
use switchboard_protocol::{RoomId, ServerEvent};

use super::session::{Session, call_room};
use crate::metrics::{self, DisconnectCause, LeaveCause};
use crate::rooms::RoomStore;
use crate::sessions::Roster;

impl<A: Adapter> Session<A> {
    /// The connection ended. A resumable session whose transport was lost is parked
    /// instead (see `resume`); a goodbye from the client is announced at once, as for
    /// everyone.
    pub(super) async fn disconnect(&mut self, cause: DisconnectCause) {
        if self.resumable {
            let sessions = &self.signaling.sessions;
            if cause != DisconnectCause::ClientLeft {
                self.park().await;
                return;
            }
            if !sessions.carries(&self.id, self.socket.id.as_str()) {
                // Another connection continues this session: nothing ends.
                self.rooms.clear();
                return;
            }
            sessions.end(&self.id).await;
        }
        let departed = ServerEvent::Departed { id: &self.id };
        for room in &self.rooms {
            self.emit_room(room, names::PEER_LEFT, &departed).await;
        }
        for room in &self.rooms {
            let nodes = match self.signaling.store.leave(room, &self.id).await {
                Ok(left) => left.nodes,
                Err(e) => {
                    tracing::warn!(socket = %self.id, %room, error = %e, "could not forget member");
                    self.signaling.store.room_nodes(room)
                }
            };
            self.emit_room_on(&nodes, room, names::USER_DISCONNECTED, &departed)
                .await;
            metrics::left(LeaveCause::Disconnect);
        }
        self.rooms.clear();
    }
}

/// Announces the end of a parked session that was not resumed in time: it leaves every
/// room it was in, and each hears the same two events as for a disconnect.
pub async fn announce_session_end<A: Adapter>(
    io: &SocketIo<A>,
    store: &dyn RoomStore,
    peer: &str,
    roster: &Roster,
) {
    for room in roster.keys() {
        match store.leave(room, peer).await {
            Ok(_) => metrics::left(LeaveCause::Disconnect),
            Err(e) => tracing::warn!(peer, %room, error = %e, "could not forget member"),
        }
        announce_departure(io, room, peer, Vec::new()).await;
    }
}

/// Tells a room, except the sockets in `except`, that a member is gone when its own socket
/// could not: its node crashed, or Redis was down when it left. The same two events, in the
/// same order, as a disconnect.
pub async fn announce_departure<A: Adapter>(
    io: &SocketIo<A>,
    room: &RoomId,
    member_id: &str,
    except: Vec<String>,
) {
    let departed = ServerEvent::Departed { id: member_id };
    for event in [names::PEER_LEFT, names::USER_DISCONNECTED] {
        let to = io.to(call_room(room)).except(except.clone());
        if let Err(e) = to.emit(event, &departed).await {
            tracing::warn!(%room, member = member_id, event, error = %e, "departure not announced");
        }
    }
}
