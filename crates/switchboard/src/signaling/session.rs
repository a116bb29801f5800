//! One connected socket's signaling state and its ordered event loop.
//!
//! A [`Session`] is the only place that changes what a socket has joined, and it handles one
//! event at a time, so the rooms it remembers never race with its own events. Each client
//! event ends in exactly one answer: an ack (when the client asked for one) for an accepted
//! event, or an `error` event plus a refusal ack for a refused one. This module is the edge
//! where internal failures become protocol error codes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quanta::Instant;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use switchboard_protocol::outbound::names;
use switchboard_protocol::{
    Ack, ClientEvent, ErrorCode, ErrorEvent, PeerInfo, ProtocolError, RoomId, ServerEvent,
};
use tokio::sync::mpsc;

use super::inbox::Inbound;
use super::relay::answerable_now;
use super::remote_relays::RemoteRelays;
use super::{Signaling, broadcast};
use crate::auth::Grant;
use crate::lifecycle::Phase;
use crate::metrics::{self, DisconnectCause, Relayed};
use crate::rooms::StoreError;

/// What an accepted event answers in its ack.
pub(super) enum Reply {
    /// `join-room`: the room and who was already in it.
    Joined { room: RoomId, peers: Vec<PeerInfo> },
    /// Every other event: `{ ok: true }`.
    Done,
}

pub(super) struct Session<A: Adapter> {
    pub(super) socket: SocketRef<A>,
    pub(super) io: SocketIo<A>,
    /// The peer id, used in every payload this socket causes: the socket id, or for a
    /// resumable session the id it started with (see `sessions`).
    pub(super) id: String,
    /// Whether the client opted in to resumable sessions.
    pub(super) resumable: bool,
    pub(super) signaling: Arc<Signaling>,
    pub(super) grant: Grant,
    /// Rooms this socket has joined, in a stable order for departure announcements.
    pub(super) rooms: BTreeSet<RoomId>,
    /// Relays waiting on a Redis lookup, beside this loop; started by the first one.
    remote_relays: Option<RemoteRelays<A>>,
}

impl<A: Adapter> Session<A> {
    pub(super) fn new(
        socket: SocketRef<A>,
        io: SocketIo<A>,
        signaling: Arc<Signaling>,
        grant: Grant,
    ) -> Self {
        Self {
            id: socket.id.to_string(),
            resumable: false,
            socket,
            io,
            signaling,
            grant,
            rooms: BTreeSet::new(),
            remote_relays: None,
        }
    }

    /// Handles the socket's events in order until its connection ends or the node shuts down.
    /// A client that opted in (`resume`) first gets its session, new or resumed.
    ///
    /// Every step that awaits more than the queue is boxed: a task holds the state of its
    /// largest await point for its whole life, and most sockets spend theirs idle, waiting
    /// for their next event. Boxed, an idle session holds only this loop's state, and the
    /// larger state of a join or a relay exists only while one runs.
    pub(super) async fn run(
        mut self,
        mut queue: mpsc::Receiver<Inbound<A>>,
        resume: Option<String>,
    ) {
        if let Some(resume) = resume {
            Box::pin(self.start(&resume)).await;
        }
        let lifecycle = self.signaling.lifecycle.clone();
        loop {
            let inbound = tokio::select! {
                inbound = queue.recv() => inbound,
                _ = lifecycle.reached(Phase::Closing) => None,
            };
            let Some(inbound) = inbound else {
                self.remote_relays = None;
                Box::pin(self.disconnect(DisconnectCause::Shutdown)).await;
                if lifecycle.phase() == Phase::Closing {
                    // The node ended this session; socketioxide runs no disconnect handler
                    // when it then closes the connection, so this is the connection's goodbye.
                    metrics::disconnected(DisconnectCause::Shutdown);
                    tracing::info!(socket = %self.id, reason = DisconnectCause::Shutdown.name(), "disconnected");
                }
                break;
            };
            match inbound {
                Inbound::Event { received, ack } => {
                    let text = received.packet.as_str().map(|t| t.as_str());
                    Box::pin(self.handle(text.unwrap_or_default(), received.at, ack)).await;
                }
                Inbound::Disconnect(cause, announced) => {
                    self.remote_relays = None;
                    Box::pin(self.disconnect(cause)).await;
                    let _ = announced.send(());
                    break;
                }
            }
        }
        self.signaling.sockets.fetch_sub(1, Ordering::Relaxed);
    }

    async fn handle(&mut self, packet: &str, received: Instant, ack: AckSender<A>) {
        let decoded = ClientEvent::decode(packet);
        let event = match decoded.event {
            Ok(ClientEvent::Message(envelope)) if self.waits_on_lookup(&envelope.target) => {
                let relays = self.remote_relays.get_or_insert_with(|| {
                    RemoteRelays::start(
                        self.socket.clone(),
                        self.id.clone(),
                        self.signaling.clone(),
                    )
                });
                relays
                    .push(envelope, self.rooms.clone(), received, ack)
                    .await;
                return;
            }
            other => other,
        };
        let outcome = match event {
            Ok(event) => {
                let kind = relay_kind(&event);
                let outcome = self.dispatch(event).await;
                // Dispatch returns once the event is emitted here or published to the
                // cluster: the relay latency ends now, before the sender's ack.
                if let (Some(kind), Ok(_)) = (kind, &outcome) {
                    metrics::relayed(kind, received);
                }
                outcome
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(Reply::Joined { room, peers }) => {
                let _ = ack.send(&Ack::joined(room.as_str(), &self.id, &peers));
            }
            Ok(Reply::Done) => {
                let _ = ack.send(&Ack::done());
            }
            Err(error) => refuse(&self.socket, &decoded.name, &error, ack),
        }
    }

    async fn dispatch(&mut self, event: ClientEvent) -> Result<Reply, ProtocolError> {
        match event {
            ClientEvent::JoinRoom(join) => self.join(join).await,
            ClientEvent::LeaveRoom(leave) => self.leave(leave).await,
            ClientEvent::MediaState(update) => self.media_state(update).await,
            ClientEvent::StopScreenShare(stop) => self.stop_screen_share(stop).await,
            ClientEvent::Message(envelope) => self.relay(envelope).await,
        }
    }

    /// Whether a relay to `target` must wait for a Redis lookup (or behind relays to it that
    /// do), and so goes to [`RemoteRelays`] instead of holding up this loop.
    fn waits_on_lookup(&self, target: &str) -> bool {
        !answerable_now(self.signaling.store.as_ref(), &self.rooms, target)
            || self
                .remote_relays
                .as_ref()
                .is_some_and(|r| r.waiting_for(target))
    }

    /// Refuses events about rooms this socket has not joined.
    pub(super) fn ensure_member(&self, room: &RoomId) -> Result<(), ProtocolError> {
        if self.rooms.contains(room) {
            Ok(())
        } else {
            Err(ProtocolError::new(
                ErrorCode::NotInRoom,
                format!("not in room \"{room}\"; send join-room first"),
            ))
        }
    }

    /// Sends an event to this socket only.
    pub(super) fn emit_self(&self, event: &str, payload: &ServerEvent<'_>) {
        if let Err(e) = self.socket.emit(event, payload) {
            tracing::debug!(socket = %self.id, event, error = %e, "emit to self failed");
        }
    }

    /// Sends an event to everyone in `room` but this socket, on every node that has members
    /// there (see `broadcast`).
    pub(super) async fn emit_room<T: Serialize + ?Sized>(
        &self,
        room: &RoomId,
        event: &str,
        payload: &T,
    ) {
        let nodes = self.signaling.store.room_nodes(room);
        self.emit_room_on(&nodes, room, event, payload).await;
    }

    /// [`Session::emit_room`] to the nodes that had members in `room` before this socket left
    /// it (after leaving, this node may no longer keep track of them).
    pub(super) async fn emit_room_on<T: Serialize + ?Sized>(
        &self,
        nodes: &[String],
        room: &RoomId,
        event: &str,
        payload: &T,
    ) {
        let sent = self
            .socket
            .to(call_room(room))
            .local()
            .emit(event, payload)
            .await;
        // socketioxide reports a broadcast as failed when any one recipient's connection
        // has just closed (a peer leaving at the same moment); the others got it.
        if let Err(e) = sent {
            tracing::debug!(socket = %self.id, %room, event, error = %e, "broadcast not delivered to every member");
        }
        // A node Redis could not reach now hears of departures and media changes again
        // after the outage (`cluster::upkeep`).
        broadcast::to_nodes(&self.signaling, nodes, room, Vec::new(), event, payload).await;
    }
}

/// The socket.io room that carries broadcasts for a call room.
///
/// Every socket is also in a room named after its own id (relays are addressed there), and a
/// socket id is a valid `roomId`. Without the prefix, joining a room named after someone's id
/// would receive the relays meant for them. Socket ids never contain `:`, so no call room can
/// collide with an id room.
pub fn call_room(room: &RoomId) -> String {
    format!("call:{room}")
}

/// Which relay metric an event counts toward, if it is relayed to other sockets.
fn relay_kind(event: &ClientEvent) -> Option<Relayed> {
    match event {
        ClientEvent::Message(_) => Some(Relayed::Message),
        ClientEvent::MediaState(_) => Some(Relayed::MediaState),
        ClientEvent::StopScreenShare(_) => Some(Relayed::StopScreenShare),
        ClientEvent::JoinRoom(_) | ClientEvent::LeaveRoom(_) => None,
    }
}

/// Answers a refused event: an `error` event, and a refusal ack when the client asked.
///
/// Every refusal is counted (`switchboard_refused_events_total`) and logged once. The log
/// line is `info`, except for `rate-limited`, which is `debug`: a flooding client earns one
/// refusal per excess event, and its log lines would be the flood. Other refusals are bounded
/// by the rate limit, or (`payload-too-large`) by the bandwidth at `--max-payload` bytes each.
/// The message never contains an envelope's `data` (it is never parsed). The event name is
/// cut to 64 characters, and a socket past its allowance of refusals is disconnected instead
/// of answered (see `refusals`).
pub(super) fn refuse<A: Adapter>(
    socket: &SocketRef<A>,
    event: &str,
    error: &ProtocolError,
    ack: AckSender<A>,
) {
    let event = switchboard_protocol::inbound::shown_event_name(event);
    if !super::refusals::allow(socket) {
        return;
    }
    metrics::refused(error.code);
    if error.code == ErrorCode::RateLimited {
        tracing::debug!(socket = %socket.id, event, code = %error.code, detail = %error.message, "event refused");
    } else {
        tracing::info!(socket = %socket.id, event, code = %error.code, detail = %error.message, "event refused");
    }
    let sent = socket
        .emit(names::ERROR, &ErrorEvent::new(error, event))
        .and_then(|()| ack.send(&Ack::refused(error)));
    if let Err(e) = sent {
        tracing::debug!(socket = %socket.id, event, error = %e, "refusal not delivered");
    }
}

impl From<StoreError> for ProtocolError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(%error, "room store failed");
        ProtocolError::new(
            ErrorCode::Unavailable,
            "room state is unavailable right now; nothing changed, try again",
        )
    }
}
