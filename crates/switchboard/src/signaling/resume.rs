//! The start and the end of a resumable session's connection (see `crate::sessions`).
//!
//! ```text
//!  connect {auth: {resume: token}}  ─►  token current?  ─ yes ─►  same peer id, rooms, name, media
//!                                             │                   kept events replayed, in order
//!                                             no                  who left meanwhile: told to it only
//!                                             ▼
//!                                       a new session (its socket id becomes its peer id)
//!  S ─ switchboard:session {id, resume, resumed, graceMs} ─► client, before any other event
//! ```
//!
//! Partners hear nothing of a resume: the session never left its rooms. When the
//! connection is lost instead of closed by the client, the session is parked for
//! `--resume-grace`, and only then is its departure announced.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use switchboard_protocol::ServerEvent;
use switchboard_protocol::outbound::names;
use tokio::sync::Notify;

use super::Signaling;
use super::disconnect::announce_session_end;
use super::session::{Session, call_room};
use crate::metrics;
use crate::sessions::{Connection, Roster, Token};

/// The event that tells an opted-in client its session.
pub const SESSION_EVENT: &str = "switchboard:session";

/// `switchboard:session`'s payload.
#[derive(Serialize)]
struct SessionInfo<'a> {
    id: &'a str,
    resume: &'a str,
    resumed: bool,
    #[serde(rename = "graceMs")]
    grace_ms: u64,
}

/// A socket as the connection of a session.
struct SocketConnection<A: Adapter> {
    socket: SocketRef<A>,
    id: String,
}

impl<A: Adapter> Connection for SocketConnection<A> {
    fn emit(&self, event: &str, payload: &str) -> bool {
        if !self.socket.connected() {
            return false;
        }
        match RawValue::from_string(payload.to_owned()) {
            Ok(raw) => match self.socket.emit(event, &raw) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(socket = %self.id, event, error = %e, "emit to session failed");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(event, error = %e, "kept event is not JSON; dropped");
                true
            }
        }
    }

    fn close(&self) {
        let _ = self.socket.clone().disconnect();
    }

    fn socket(&self) -> &str {
        &self.id
    }
}

impl<A: Adapter> Session<A> {
    /// Starts the session of a client that opted in: resumes the one its token names, or
    /// starts a new one. Runs before the first client event is handled.
    pub(super) async fn start(&mut self, presented: &str) {
        self.resumable = true;
        let sessions = &self.signaling.sessions;
        let connection: Arc<dyn Connection> = Arc::new(SocketConnection {
            socket: self.socket.clone(),
            id: self.socket.id.to_string(),
        });
        let subject = self.grant.sub.clone();
        let resumed = match Token::parse(presented) {
            Some(token) => {
                sessions
                    .resume(&token, connection.clone(), subject.clone())
                    .await
            }
            None => None,
        };
        let grace_ms = sessions.grace().as_millis() as u64;
        let Some((token, resumed)) = resumed else {
            let token = sessions.open(connection, subject).await;
            self.announce_session(&token, false, grace_ms);
            tracing::info!(socket = %self.id, "session started");
            sessions.ready(&self.id);
            return;
        };
        self.id = token.peer.clone();
        self.announce_session(&token, true, grace_ms);
        for kept in &resumed.kept {
            connection.emit(&kept.event, &kept.payload);
        }
        for room in resumed.roster.keys() {
            self.socket.join(call_room(room));
            self.rooms.insert(room.clone());
        }
        self.catch_up(&resumed.roster).await;
        sessions.ready(&self.id);
        metrics::session_resumed();
        tracing::info!(
            peer = %self.id,
            socket = %self.socket.id,
            rooms = resumed.roster.len(),
            replayed = resumed.kept.len(),
            from = resumed.from.as_deref().unwrap_or("this node"),
            "session resumed"
        );
    }

    fn announce_session(&self, token: &Token, resumed: bool, grace_ms: u64) {
        let info = SessionInfo {
            id: &token.peer,
            resume: &token.reveal(),
            resumed,
            grace_ms,
        };
        if let Err(e) = self.socket.emit(SESSION_EVENT, &info) {
            tracing::debug!(socket = %self.socket.id, error = %e, "session event not sent");
        }
    }

    /// Tells a resumed session what it could not hear while away: who left its rooms, and
    /// everyone's media state now. Those who joined meanwhile introduced themselves through
    /// the session, so their introductions were among the kept events.
    async fn catch_up(&self, roster: &Roster) {
        for (room, before) in roster {
            let Ok(now) = self.signaling.store.peers(room).await else {
                continue;
            };
            for gone in before
                .iter()
                .filter(|id| **id != self.id && !now.iter().any(|p| &p.member.id == *id))
            {
                let departed = ServerEvent::Departed { id: gone };
                self.emit_self(names::PEER_LEFT, &departed);
                self.emit_self(names::USER_DISCONNECTED, &departed);
            }
            for peer in now.iter().filter(|p| p.member.id != self.id) {
                if let Some(media) = peer.media {
                    let state = ServerEvent::MediaState {
                        id: &peer.member.id,
                        room_id: room.as_str(),
                        mic: media.mic,
                        cam: media.cam,
                    };
                    self.emit_self(names::MEDIA_STATE, &state);
                }
            }
        }
    }

    /// Parks this session instead of announcing a departure: returns false when the
    /// session is not this connection's to park (another connection took it over), in which
    /// case nothing is to be announced either.
    pub(super) async fn park(&mut self) -> bool {
        let mut roster = Roster::new();
        for room in &self.rooms {
            let peers = match self.signaling.store.peers(room).await {
                Ok(peers) => peers.into_iter().map(|p| p.member.id).collect(),
                Err(_) => Vec::new(),
            };
            roster.insert(room.clone(), peers);
        }
        let socket = self.socket.id.to_string();
        let parked = self
            .signaling
            .sessions
            .park(&self.id, &socket, roster)
            .await;
        self.rooms.clear();
        let Some(wake) = parked else {
            tracing::info!(peer = %self.id, socket, "connection replaced by a resumed one");
            return false;
        };
        metrics::session_parked();
        tracing::info!(peer = %self.id, socket, grace_ms = self.signaling.sessions.grace().as_millis() as u64, "session parked");
        tokio::spawn(expire(
            self.io.clone(),
            self.signaling.clone(),
            self.id.clone(),
            wake,
        ));
        true
    }
}

/// Ends a parked session once its grace is over (or too much was kept for it), unless it
/// was resumed meanwhile, and announces its departure.
async fn expire<A: Adapter>(
    io: SocketIo<A>,
    signaling: Arc<Signaling>,
    peer: String,
    wake: Arc<Notify>,
) {
    let overflow = tokio::select! {
        _ = tokio::time::sleep(signaling.sessions.grace()) => false,
        _ = wake.notified() => true,
    };
    match signaling.sessions.end_parked(&peer, &wake).await {
        Some(roster) => {
            announce_session_end(&io, signaling.store.as_ref(), &peer, &roster).await;
            metrics::session_ended(overflow);
            let reason = if overflow { "overflow" } else { "expired" };
            tracing::info!(peer, reason, "session ended");
        }
        None => {
            // Resumed here (nothing to do) or elsewhere (its rooms are the other node's).
            if !signaling.sessions.holds(&peer) {
                signaling.store.release(&peer).await;
            }
        }
    }
}
