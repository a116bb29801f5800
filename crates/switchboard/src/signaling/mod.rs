//! The socket.io handlers: one client event in, validated, applied to room state, relayed.
//!
//! One relay, in a straight line:
//!
//! ```text
//!  socket.io packet ──► Inbox::call (sync, in arrival order: size, rate, queue)
//!                          │ bounded per-socket queue
//!                          ▼
//!                      Session::run (one task per socket, one event at a time)
//!                          │ ClientEvent::decode (switchboard-protocol)
//!                          ▼
//!        join.rs | leave.rs | media.rs | screen_share.rs | relay.rs | disconnect.rs
//!                          │ RoomStore (membership, roommate check, media state)
//!                          ▼
//!                      emit to a socket-id room or a call room (socketioxide adapter)
//! ```
//!
//! Why a queue and a task per socket: socketioxide runs every async handler in its own
//! spawned task, so two events from one client could overtake each other as soon as a handler
//! awaits (a store write, a publish). The rtc.io client drops an ICE candidate that arrives
//! before its offer, so order is part of the contract. [`Inbox`] is a hand-written
//! `MessageHandler` that socketioxide calls synchronously in arrival order; it only admits the
//! event into the socket's queue, and [`Session`] handles the queue in order.

mod broadcast;
mod deliver;
mod disconnect;
mod expiry;
mod inbox;
mod join;
mod leave;
mod media;
mod refusals;
mod relay;
mod remote_relays;
mod resume;
mod screen_share;
mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ConnectInfo;

use crate::connections::Peer;
use serde::Deserialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketIo, TransportType};
use tokio::sync::mpsc;

use crate::auth::{Grant, TokenVerifier, Unauthorized};
use crate::lifecycle::Lifecycle;
use crate::metrics::{self, DisconnectCause};
use crate::redis::RedisBus;
use crate::rooms::RoomStore;
use crate::sessions::Sessions;
use crate::sources::Sources;

pub use deliver::to_session;
pub use disconnect::{announce_departure, announce_session_end};
use inbox::{Inbound, Inbox};
pub use media::announce_media;
pub use resume::SESSION_EVENT;
use session::Session;
pub use session::call_room;

/// Everything the handlers share, built once at start-up.
pub struct Signaling {
    pub store: Arc<dyn RoomStore>,
    /// The cluster's bus, in cluster mode: relays to other nodes go out on it as node mail.
    pub bus: Option<RedisBus>,
    /// Resumable sessions this node holds (see `sessions`).
    pub sessions: Sessions,
    /// Stored with each member so a survivor can clean up after this node in a cluster.
    pub node_id: String,
    pub limits: Limits,
    /// Present when `--jwt-secret` is set.
    pub verifier: Option<TokenVerifier>,
    /// Sockets per source address.
    pub sources: Arc<Sources>,
    /// Connected sockets on this node, for `/health`.
    sockets: AtomicUsize,
    /// Counts this node's sockets by their transport now (after any upgrade), for
    /// `/metrics`. socketioxide only hands its server handle to handlers, so it is taken at
    /// the first connection; until then there are no sockets to count.
    census: OnceLock<Box<dyn Fn() -> Transports + Send + Sync>>,
    /// The node's phase: every session ends (or parks) once it reaches closing.
    pub lifecycle: Lifecycle,
}

/// Sockets by transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transports {
    pub polling: usize,
    pub websocket: usize,
}

/// The transport's name in logs, the same word as the `transport` label of
/// `switchboard_connected_sockets`.
fn transport_name(transport: TransportType) -> &'static str {
    match transport {
        TransportType::Polling => "polling",
        TransportType::Websocket => "websocket",
    }
}

/// Per-socket limits from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest event, in bytes of its JSON text.
    pub max_payload: usize,
    /// Most members per room, or no limit.
    pub room_capacity: Option<usize>,
    /// Sustained events per second per socket, and the burst size; `None`: unlimited.
    pub rate: Option<(u32, u32)>,
    /// Most rooms one socket may be in at once.
    pub max_rooms_per_socket: usize,
    /// Refusals a socket may cause in a burst before it is disconnected; 0: no limit.
    pub max_refusals: u32,
    /// Most sockets per source address (0: no limit), and whose `X-Forwarded-For` to believe.
    pub max_connections_per_address: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Signaling {
    pub fn new(
        store: Arc<dyn RoomStore>,
        bus: Option<RedisBus>,
        sessions: Sessions,
        node_id: String,
        limits: Limits,
        verifier: Option<TokenVerifier>,
        lifecycle: Lifecycle,
    ) -> Self {
        metrics::init();
        let sources = Arc::new(Sources::new(
            limits.trusted_proxies.clone(),
            limits.max_connections_per_address,
        ));
        Self {
            store,
            bus,
            sessions,
            node_id,
            limits,
            verifier,
            sources,
            sockets: AtomicUsize::new(0),
            census: OnceLock::new(),
            lifecycle,
        }
    }

    /// This node's sockets by current transport.
    pub fn transports(&self) -> Transports {
        self.census.get().map(|count| count()).unwrap_or_default()
    }

    /// Sockets connected to this node right now.
    pub fn connected_sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }
}

/// The connect handler of the default namespace, for any adapter: `app` registers it with
/// `io.ns("/", …)` on the in-memory adapter or the Redis one.
pub fn connect_handler<A: Adapter>(
    signaling: Arc<Signaling>,
) -> impl ConnectHandler<A, (SocketRef<A>, SocketIo<A>)> {
    let for_admit = signaling.clone();
    let connect = move |socket: SocketRef<A>, io: SocketIo<A>| async move {
        let expires = socket
            .extensions
            .get::<Arc<Pending<A>>>()
            .and_then(|pending| pending.grant.exp);
        if let (Some(exp), Some(verifier)) = (expires, &signaling.verifier) {
            expiry::watch(io.clone(), socket.id, exp, verifier.leeway());
        }
        let for_census = io.clone();
        signaling
            .census
            .get_or_init(|| Box::new(move || census(&for_census)));
        on_connect(socket, io, signaling)
    };
    let admit = move |socket: SocketRef<A>, TryData(auth): TryData<AuthPayload>| {
        let signaling = for_admit.clone();
        async move { admit(&socket, &signaling, auth.ok()) }
    };
    connect.with(admit)
}

/// The socket.io handshake `auth` object.
#[derive(Debug, Deserialize)]
struct AuthPayload {
    token: Option<String>,
    /// Present (even empty) when the client opts in to resumable sessions: the token of the
    /// session to continue. Anything but a string counts as empty.
    #[serde(default, deserialize_with = "resume_token")]
    resume: Option<String>,
}

fn resume_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(Some(match value {
        serde_json::Value::String(token) => token,
        _ => String::new(),
    }))
}

/// A socket admitted by [`admit`] whose session has not started yet.
struct Pending<A: Adapter> {
    grant: Grant,
    /// `auth.resume`, for a client that opted in to resumable sessions.
    resume: Option<String>,
    queue: Mutex<Option<mpsc::Receiver<Inbound<A>>>>,
}

/// Connect middleware, run before the client is told it is connected.
///
/// Everything a client event needs is installed here, not in the connect handler:
/// socketioxide sends the CONNECT packet before it spawns the connect handler, and the client
/// sends its queued events the moment it sees that packet; an event that found no handler
/// would be dropped without a trace.
fn admit<A: Adapter>(
    socket: &SocketRef<A>,
    signaling: &Signaling,
    auth: Option<AuthPayload>,
) -> Result<(), Unauthorized> {
    let (token, resume) = auth.map_or((None, None), |a| (a.token, a.resume));
    let grant = match &signaling.verifier {
        None => Grant::anyone(),
        Some(verifier) => {
            let token = token.ok_or(Unauthorized)?;
            verifier.verify(&token).inspect_err(|_| {
                tracing::info!(socket = %socket.id, "handshake refused: invalid token");
            })?
        }
    };
    // socketioxide does not put a socket in a room named after its id; relays and join
    // introductions address sockets through that room, on this node or any other. A
    // resumable session is addressed through its session instead (`deliver`).
    if resume.is_none() {
        socket.join(socket.id.to_string());
    }
    if let Some(refusals) = refusals::Refusals::new(signaling.limits.max_refusals) {
        socket.extensions.insert(refusals);
    }
    let (inbox, queue) = Inbox::new(&signaling.limits);
    let disconnects = inbox.sender();
    socket.on_fallback(inbox);
    let lifecycle = signaling.lifecycle.clone();
    socket.on_disconnect(
        async move |socket: SocketRef<A>, reason: DisconnectReason| {
            let cause = DisconnectCause::of(reason, lifecycle.phase());
            inbox::disconnect(&disconnects, &socket, cause).await;
        },
    );
    // Events wait in the queue until `on_connect` starts the session. If the handshake fails
    // after this point, the socket is dropped with its extensions and nothing is left behind.
    socket.extensions.insert(Arc::new(Pending {
        grant,
        resume,
        queue: Mutex::new(Some(queue)),
    }));
    Ok(())
}

/// Counts the server's local sockets by transport. (`sockets()` would panic without a `/`
/// namespace; this runs only once a socket connected to it, and it is never removed.)
fn census<A: Adapter>(io: &SocketIo<A>) -> Transports {
    let mut count = Transports::default();
    for socket in io.sockets() {
        match socket.transport_type() {
            TransportType::Polling => count.polling += 1,
            TransportType::Websocket => count.websocket += 1,
        }
    }
    count
}

/// Connect handler: starts the socket's session on the queue [`admit`] installed.
fn on_connect<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, signaling: Arc<Signaling>) {
    let Some(pending) = socket.extensions.remove::<Arc<Pending<A>>>() else {
        tracing::error!(socket = %socket.id, "connected without admission; closing");
        let _ = socket.disconnect();
        return;
    };
    let queue = pending
        .queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Some(queue) = queue else { return };
    signaling.sockets.fetch_add(1, Ordering::Relaxed);
    metrics::connected();
    let request = socket.req_parts();
    let peer = request.extensions.get::<ConnectInfo<Peer>>();
    // A socket that opened over WebSocket owns its connection (an upgrade is named by
    // `http::admission` instead).
    if let Some(ConnectInfo(peer)) = peer
        && socket.transport_type() == TransportType::Websocket
    {
        peer.cut.carries(socket.id.as_str());
    }
    let remote = peer.map(|ConnectInfo(peer)| peer.addr);
    // Behind a proxy the peer is the proxy; its header says who the client was (as the
    // client's side of the proxy claims it: informational, not authenticated).
    let forwarded_for = request
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    if let Some(remote) = remote {
        let source = signaling.sources.source(remote.ip(), &request.headers);
        if let Some(counted) = signaling.sources.enter(source) {
            socket.extensions.insert(Arc::new(counted));
        }
    }
    tracing::info!(
        socket = %socket.id,
        transport = transport_name(socket.transport_type()),
        remote = remote.map(tracing::field::display),
        forwarded_for,
        "connected"
    );
    let session = Session::new(socket, io, signaling, pending.grant.clone());
    tokio::spawn(session.run(queue, pending.resume.clone()));
}
