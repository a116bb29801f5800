//! Prometheus metrics: every metric switchboard exports, and the cheap handles that record them.
//!
//! `GET /metrics` (see `http/metrics.rs`) serves these in the Prometheus text format;
//! `docs/metrics.md` says what each means and what to alert on.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `switchboard_connected_sockets` | gauge | `transport`: `polling`, `websocket` |
//! | `switchboard_connections_total` | counter | |
//! | `switchboard_disconnects_total` | counter | `reason`: see [`DisconnectCause`] |
//! | `switchboard_rooms` | gauge | |
//! | `switchboard_room_members` | gauge | |
//! | `switchboard_joins_total` | counter | |
//! | `switchboard_leaves_total` | counter | `cause`: `leave-room`, `disconnect` |
//! | `switchboard_relayed_messages_total` | counter | `event`: see [`Relayed`] |
//! | `switchboard_relay_latency_seconds` | histogram | `event`: see [`Relayed`] |
//! | `switchboard_refused_events_total` | counter | `code`: every protocol error code |
//! | `switchboard_connections_cut_total` | counter | `reason`: see [`CutReason`] |
//! | `switchboard_handshakes_refused_total` | counter | `reason`: see [`HandshakeRefusal`] |
//! | `switchboard_draining` | gauge | |
//! | `switchboard_redis_up` | gauge (cluster mode only) | |
//! | `switchboard_redis_errors_total` | counter | `kind`: `connection`, `command` |
//! | `switchboard_bus_messages_lost_total` | counter (cluster mode only) | |
//! | `switchboard_bus_publishes_skipped_total` | counter (cluster mode only) | |
//! | `switchboard_bus_publishes_failed_total` | counter (cluster mode only) | |
//! | `switchboard_cluster_messages_published_total` | counter (cluster mode only) | |
//! | `switchboard_cluster_messages_received_total` | counter (cluster mode only) | |
//! | `switchboard_cluster_messages_misrouted_total` | counter (cluster mode only) | |
//! | `switchboard_relay_routes_total` | counter | `route`: see [`Route`] |
//! | `switchboard_ghosts_reaped_total` | counter | |
//! | `switchboard_sessions_resumed_total` | counter | |
//! | `switchboard_sessions_parked_total` | counter | |
//! | `switchboard_sessions_ended_total` | counter | `reason`: `expired`, `overflow` |
//! | `switchboard_build_info` | gauge, always 1 | `version`, `node` |
//! | `switchboard_start_time_seconds` | gauge | |
//!
//! Why it is built this way:
//!
//! - **Nothing per relay but two relaxed atomic adds and two clock reads.** Every label value
//!   comes from a fixed set (event names, error codes, causes), so each labelled series is
//!   registered once, here, and the hot path indexes an array of handles: no key hashing,
//!   string formatting, lock or allocation per event. The clock is `quanta`'s (the TSC,
//!   ~11 ns a read here against ~28 ns for `std::time::Instant`). Measured on the 2-core dev
//!   machine: ~55 ns per relay, ~110 ns when both cores relay into the same series at once;
//!   a relay costs a few microseconds.
//! - **The relay latency histogram is our own.** The exporter's histograms keep every sample
//!   until the next scrape (24 bytes each, a fresh block every 64 samples), so an unscraped
//!   node under load would grow without bound and allocate on the relay path. [`Latency`]
//!   counts into fixed buckets instead, and is appended to the exporter's output as text,
//!   with the relay counter, which is its count.
//! - **Gauges of state are read at scrape time** (sockets by transport, rooms, members, the
//!   Redis link, the bus counters): the truth is in socketioxide, the room store and the bus,
//!   and copying it on every change would cost the hot path for a value read every 15 s.
//! - **One recorder per process**, built on first use and installed as the global `metrics`
//!   recorder when no other is, so `metrics::counter!` anywhere in the process lands here.
//!   switchboard's own handles are registered on it directly, so they work even when
//!   installation fails (another recorder came first) and when tests build several apps in
//!   one process (their counters then add up; scrape-time gauges show the app scraped).

use std::fmt::Write;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use quanta::Instant;
use switchboard_protocol::ErrorCode;

use crate::lifecycle::Phase;
use switchboard_protocol::inbound::names;

/// The process's recorder. Built lazily so that linking the library costs nothing.
static RECORDER: LazyLock<PrometheusRecorder> =
    LazyLock::new(|| PrometheusBuilder::new().build_recorder());

/// Pre-registered handles of every hot-path metric.
static HANDLES: LazyLock<Handles> = LazyLock::new(|| {
    if metrics::set_global_recorder(&*RECORDER).is_err() {
        tracing::warn!(
            "another metrics recorder is installed; switchboard's own metrics are still served \
             at /metrics, other metrics recorded in this process are not"
        );
    }
    metrics::with_local_recorder(&*RECORDER, Handles::register)
});

/// Client events that switchboard relays to other sockets, the label set of the relay metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// `#rtcio:message`: an SDP description, an ICE candidate or another envelope.
    Message,
    /// `media-state`: a member's mic/cam state, to the rest of the room.
    MediaState,
    /// `stopScreenShare`, to the rest of the room.
    StopScreenShare,
}

impl Relayed {
    pub const ALL: [Relayed; 3] = [
        Relayed::Message,
        Relayed::MediaState,
        Relayed::StopScreenShare,
    ];

    /// The client event's name, which is the `event` label.
    pub fn name(self) -> &'static str {
        match self {
            Relayed::Message => names::MESSAGE,
            Relayed::MediaState => names::MEDIA_STATE,
            Relayed::StopScreenShare => names::STOP_SCREEN_SHARE,
        }
    }
}

/// Where a relay went, the `route` label of `switchboard_relay_routes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To a socket or session on the sender's node.
    Local,
    /// To another node.
    Remote,
}

impl Route {
    pub const ALL: [Route; 2] = [Route::Local, Route::Remote];

    pub fn name(self) -> &'static str {
        match self {
            Route::Local => "local",
            Route::Remote => "remote",
        }
    }
}

/// Why a socket left a room, the `cause` label of `switchboard_leaves_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveCause {
    /// The client sent `leave-room`.
    LeaveRoom,
    /// The socket's connection ended (or the node shut its session down) while in the room.
    Disconnect,
}

impl LeaveCause {
    pub const ALL: [LeaveCause; 2] = [LeaveCause::LeaveRoom, LeaveCause::Disconnect];

    pub fn name(self) -> &'static str {
        match self {
            LeaveCause::LeaveRoom => "leave-room",
            LeaveCause::Disconnect => "disconnect",
        }
    }
}

/// Why a connection ended, the `reason` label of `switchboard_disconnects_total` and the
/// `reason` field of the `disconnected` log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectCause {
    /// The client closed the transport cleanly (tab closed, `socket.disconnect()` over polling).
    ClientClosed,
    /// The client sent a socket.io disconnect packet (`socket.disconnect()`).
    ClientLeft,
    /// The connection broke: network change, proxy timeout, killed process.
    TransportError,
    /// The client stopped answering pings within `--ping-timeout`.
    HeartbeatTimeout,
    /// The client broke the protocol (unparsable packet, overlapping polling requests).
    ProtocolError,
    /// The server disconnected the socket: a draining node cut its connection to move it
    /// to another node (any transport close during the move phase counts here).
    ServerDisconnect,
    /// The node is shutting down.
    Shutdown,
}

impl DisconnectCause {
    pub const ALL: [DisconnectCause; 7] = [
        DisconnectCause::ClientClosed,
        DisconnectCause::ClientLeft,
        DisconnectCause::TransportError,
        DisconnectCause::HeartbeatTimeout,
        DisconnectCause::ProtocolError,
        DisconnectCause::ServerDisconnect,
        DisconnectCause::Shutdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DisconnectCause::ClientClosed => "client-closed",
            DisconnectCause::ClientLeft => "client-left",
            DisconnectCause::TransportError => "transport-error",
            DisconnectCause::HeartbeatTimeout => "heartbeat-timeout",
            DisconnectCause::ProtocolError => "protocol-error",
            DisconnectCause::ServerDisconnect => "server-disconnect",
            DisconnectCause::Shutdown => "shutdown",
        }
    }
}

impl DisconnectCause {
    /// The cause of a disconnect socketioxide reports for `reason`, while the node is in
    /// `phase`: transport closes while the node moves or closes its sockets are its own doing.
    pub fn of(reason: socketioxide::socket::DisconnectReason, phase: Phase) -> Self {
        use socketioxide::socket::DisconnectReason as R;
        if phase >= Phase::Moving && matches!(reason, R::TransportClose | R::TransportError) {
            return DisconnectCause::ServerDisconnect;
        }
        match reason {
            R::TransportClose => DisconnectCause::ClientClosed,
            R::ClientNSDisconnect => DisconnectCause::ClientLeft,
            R::TransportError => DisconnectCause::TransportError,
            R::HeartbeatTimeout => DisconnectCause::HeartbeatTimeout,
            R::MultipleHttpPollingError | R::PacketParsingError => DisconnectCause::ProtocolError,
            R::ServerNSDisconnect => DisconnectCause::ServerDisconnect,
            R::ClosingServer => DisconnectCause::Shutdown,
        }
    }
}

/// Why the server cut a connection or ended a socket because of a limit, the `reason` label
/// of `switchboard_connections_cut_total` (see docs/security.md). The socket's disconnect is
/// also counted in `switchboard_disconnects_total` under the reason the transport reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// More than `--max-outgoing-bytes` waited for the client to read them.
    OutgoingBudget,
    /// Bytes waited and the client read none of them for a minute.
    Stalled,
    /// No complete HTTP request within `--handshake-timeout` of connecting.
    HandshakeTimeout,
    /// Nothing received for `--idle-timeout`.
    IdleTimeout,
    /// The socket's JWT expired.
    TokenExpired,
    /// The socket kept sending refused events (see `--max-refusals`).
    RepeatOffender,
}

impl CutReason {
    pub const ALL: [CutReason; 6] = [
        CutReason::OutgoingBudget,
        CutReason::Stalled,
        CutReason::HandshakeTimeout,
        CutReason::IdleTimeout,
        CutReason::TokenExpired,
        CutReason::RepeatOffender,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CutReason::OutgoingBudget => "outgoing-budget",
            CutReason::Stalled => "stalled",
            CutReason::HandshakeTimeout => "handshake-timeout",
            CutReason::IdleTimeout => "idle-timeout",
            CutReason::TokenExpired => "token-expired",
            CutReason::RepeatOffender => "repeat-offender",
        }
    }
}

/// Why an HTTP request to socket.io was refused before any session existed, the `reason`
/// label of `switchboard_handshakes_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The `Origin` header is not in `--cors-origins` (403).
    Origin,
    /// The source address has `--max-connections-per-address` sockets already (429).
    TooManyConnections,
}

impl HandshakeRefusal {
    pub const ALL: [HandshakeRefusal; 2] = [
        HandshakeRefusal::Origin,
        HandshakeRefusal::TooManyConnections,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HandshakeRefusal::Origin => "origin",
            HandshakeRefusal::TooManyConnections => "too-many-connections",
        }
    }
}

/// What failed when talking to Redis, the `kind` label of `switchboard_redis_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisError {
    /// A connection attempt failed or an established connection broke.
    Connection,
    /// A command or publish failed or timed out.
    Command,
}

impl RedisError {
    pub const ALL: [RedisError; 2] = [RedisError::Connection, RedisError::Command];

    pub fn name(self) -> &'static str {
        match self {
            RedisError::Connection => "connection",
            RedisError::Command => "command",
        }
    }
}

/// Upper bounds of the relay latency buckets, in nanoseconds (10 µs to 1 s), and the same
/// bounds as the `le` label values, in seconds.
const LATENCY_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];
const LATENCY_BOUNDS_LABELS: [&str; 16] = [
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
];

/// A fixed-bucket latency histogram: two relaxed atomic adds per observation (its bucket and
/// the sum), which also count the relays (`_count` is the sum of the buckets).
///
/// The sum comes first and the struct is cache-line aligned, so the sum and the buckets up
/// to 250 µs, where a healthy node's relays land, share one cache line: when both cores
/// relay at once, one line moves between them per relay, not three.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Latency {
    /// Sum of every observation, in nanoseconds (overflows after ~580 years of latency).
    sum_ns: AtomicU64,
    /// Non-cumulative counts; the last slot holds what exceeded every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
}

impl Latency {
    pub fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes this histogram's series (`_bucket`, `_sum`, `_count`) with the given labels.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (slot, le) in LATENCY_BOUNDS_LABELS.iter().enumerate() {
            cumulative += self.buckets[slot].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BOUNDS_NS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

const RELAY_LATENCY: &str = "switchboard_relay_latency_seconds";
const RELAYED: &str = "switchboard_relayed_messages_total";

/// The handles the request path records into, one per series.
struct Handles {
    connections: Counter,
    disconnects: [Counter; DisconnectCause::ALL.len()],
    joins: Counter,
    leaves: [Counter; LeaveCause::ALL.len()],
    /// Also the relay counters: every relay is observed exactly once.
    latency: [Latency; Relayed::ALL.len()],
    /// Indexed by `ErrorCode as usize` (declaration order, which is also `ErrorCode::ALL`'s).
    refused: [Counter; ErrorCode::ALL.len()],
    redis_errors: [Counter; RedisError::ALL.len()],
    ghosts_reaped: Counter,
    routes: [Counter; Route::ALL.len()],
    sessions_resumed: Counter,
    sessions_parked: Counter,
    sessions_ended: [Counter; 2],
    draining: Gauge,
    cuts: [Counter; CutReason::ALL.len()],
    handshakes_refused: [Counter; HandshakeRefusal::ALL.len()],
}

impl Handles {
    /// Registers (and describes) every series on the current recorder.
    fn register() -> Self {
        describe();
        Self {
            connections: metrics::counter!("switchboard_connections_total"),
            disconnects: DisconnectCause::ALL
                .map(|c| metrics::counter!("switchboard_disconnects_total", "reason" => c.name())),
            joins: metrics::counter!("switchboard_joins_total"),
            leaves: LeaveCause::ALL
                .map(|c| metrics::counter!("switchboard_leaves_total", "cause" => c.name())),
            latency: Default::default(),
            refused: ErrorCode::ALL.map(|code| {
                metrics::counter!("switchboard_refused_events_total", "code" => code.as_str())
            }),
            redis_errors: RedisError::ALL
                .map(|k| metrics::counter!("switchboard_redis_errors_total", "kind" => k.name())),
            ghosts_reaped: metrics::counter!("switchboard_ghosts_reaped_total"),
            routes: Route::ALL
                .map(|r| metrics::counter!("switchboard_relay_routes_total", "route" => r.name())),
            sessions_resumed: metrics::counter!("switchboard_sessions_resumed_total"),
            sessions_parked: metrics::counter!("switchboard_sessions_parked_total"),
            sessions_ended: ["expired", "overflow"]
                .map(|r| metrics::counter!("switchboard_sessions_ended_total", "reason" => r)),
            draining: metrics::gauge!("switchboard_draining"),
            cuts: CutReason::ALL.map(|r| {
                metrics::counter!("switchboard_connections_cut_total", "reason" => r.name())
            }),
            handshakes_refused: HandshakeRefusal::ALL.map(|r| {
                metrics::counter!("switchboard_handshakes_refused_total", "reason" => r.name())
            }),
        }
    }
}

/// The HELP lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "switchboard_connected_sockets",
        "Sockets connected to this node, by current transport"
    );
    describe_counter!(
        "switchboard_connections_total",
        "Sockets that connected to this node"
    );
    describe_counter!(
        "switchboard_disconnects_total",
        "Connections of this node that ended, by reason"
    );
    describe_gauge!(
        "switchboard_rooms",
        "Rooms with at least one member on this node"
    );
    describe_gauge!(
        "switchboard_room_members",
        "Room memberships of this node's sockets"
    );
    describe_counter!(
        "switchboard_joins_total",
        "Sockets of this node admitted to a room"
    );
    describe_counter!(
        "switchboard_leaves_total",
        "Sockets of this node that left a room, by cause"
    );
    describe_counter!(
        "switchboard_refused_events_total",
        "Client events refused with an error event, by error code"
    );
    describe_counter!(
        "switchboard_connections_cut_total",
        "Connections or sockets this node ended because of a limit, by reason"
    );
    describe_counter!(
        "switchboard_handshakes_refused_total",
        "socket.io requests refused before a session existed, by reason"
    );
    describe_counter!(
        "switchboard_redis_errors_total",
        "Failed Redis connections and commands"
    );
    describe_counter!(
        "switchboard_ghosts_reaped_total",
        "Members of dead nodes this node removed from their rooms"
    );
    describe_counter!(
        "switchboard_sessions_resumed_total",
        "Resumable sessions continued by a new connection on this node"
    );
    describe_counter!(
        "switchboard_sessions_parked_total",
        "Resumable sessions whose connection was lost, kept for --resume-grace"
    );
    describe_counter!(
        "switchboard_sessions_ended_total",
        "Parked sessions whose departure this node announced: grace expired, or too much kept"
    );
    describe_gauge!(
        "switchboard_draining",
        "1 while this node drains (takes no new sockets), else 0"
    );
    describe_gauge!(
        "switchboard_redis_up",
        "1 while both Redis connections are up, else 0 (cluster mode)"
    );
    describe_counter!(
        "switchboard_bus_messages_lost_total",
        "Cluster messages received but dropped (a bug if non-zero)"
    );
    describe_counter!(
        "switchboard_bus_publishes_skipped_total",
        "Cluster publishes skipped because Redis was unreachable"
    );
    describe_counter!(
        "switchboard_bus_publishes_failed_total",
        "Relays to another node whose publish Redis did not accept; the sender got unavailable"
    );
    describe_counter!(
        "switchboard_cluster_messages_published_total",
        "Messages this node published to the cluster (node mail and broadcasts)"
    );
    describe_counter!(
        "switchboard_cluster_messages_received_total",
        "Cluster messages this node received, on any channel"
    );
    describe_counter!(
        "switchboard_cluster_messages_misrouted_total",
        "Node mail this node received for a member it does not hold (should stay near 0)"
    );
    describe_counter!(
        "switchboard_relay_routes_total",
        "Relays to a socket on this node (local) or sent to another node (remote)"
    );
    describe_gauge!(
        "switchboard_build_info",
        "Always 1; the labels say which version runs as which node"
    );
    describe_gauge!(
        "switchboard_start_time_seconds",
        "When this node started, in seconds since the Unix epoch"
    );
}

/// Registers every metric now, so a scrape lists them all (at zero) before any traffic, and
/// calibrates the clock (up to 200 ms, once per process) before the first event needs it.
pub fn init() {
    LazyLock::force(&HANDLES);
    Instant::now();
}

/// A socket connected.
pub fn connected() {
    HANDLES.connections.increment(1);
}

/// A socket's connection ended.
pub fn disconnected(cause: DisconnectCause) {
    HANDLES.disconnects[cause as usize].increment(1);
}

/// A socket was admitted to a room (not counted again for a repeated `join-room`).
pub fn joined() {
    HANDLES.joins.increment(1);
}

/// A socket left one room.
pub fn left(cause: LeaveCause) {
    HANDLES.leaves[cause as usize].increment(1);
}

/// A client event was relayed (emitted locally or published to the cluster) after arriving
/// at `received`.
pub fn relayed(event: Relayed, received: Instant) {
    HANDLES.latency[event as usize].record(received.elapsed());
}

/// A client event was refused with `code`.
pub fn refused(code: ErrorCode) {
    HANDLES.refused[code as usize].increment(1);
}

/// The server ended a connection or socket because of a limit.
pub fn connection_cut(reason: CutReason) {
    HANDLES.cuts[reason as usize].increment(1);
}

/// A socket.io request was refused before any session existed.
pub fn handshake_refused(reason: HandshakeRefusal) {
    HANDLES.handshakes_refused[reason as usize].increment(1);
}

/// A Redis connection or command failed.
pub fn redis_error(kind: RedisError) {
    HANDLES.redis_errors[kind as usize].increment(1);
}

/// Members of a dead node were removed from their rooms.
/// A relay was delivered on this node or sent to another.
pub fn relay_routed(route: Route) {
    HANDLES.routes[route as usize].increment(1);
}

pub fn ghosts_reaped(count: usize) {
    HANDLES.ghosts_reaped.increment(count as u64);
}

/// A resumable session was continued by a new connection.
pub fn session_resumed() {
    HANDLES.sessions_resumed.increment(1);
}

/// A resumable session lost its connection and waits to be resumed.
pub fn session_parked() {
    HANDLES.sessions_parked.increment(1);
}

/// A parked session ended: not resumed in time (`overflow`: false), or too much was kept
/// for it (`overflow`: true).
pub fn session_ended(overflow: bool) {
    HANDLES.sessions_ended[usize::from(overflow)].increment(1);
}

/// Whether this node is draining: called by the drain when it begins (and ends, if ever).
pub fn set_draining(draining: bool) {
    HANDLES.draining.set(if draining { 1.0 } else { 0.0 });
}

/// The state a scrape reads, gathered by the `/metrics` handler from the app it serves.
#[derive(Debug, Clone, Default)]
pub struct Scrape<'a> {
    pub node: &'a str,
    pub started_at_ms: u64,
    pub polling_sockets: usize,
    pub websocket_sockets: usize,
    pub rooms: usize,
    pub room_members: usize,
    /// Present in cluster mode.
    pub redis: Option<RedisScrape>,
}

/// The Redis link and the event bus, in cluster mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisScrape {
    pub up: bool,
    pub bus_lost: u64,
    pub bus_skipped: u64,
    pub bus_failed: u64,
    pub published: u64,
    pub received: u64,
    pub misrouted: u64,
}

/// Sets the scrape-time gauges from `scrape` and renders every metric in the Prometheus text
/// format.
pub fn render(scrape: &Scrape<'_>) -> String {
    let handles = &*HANDLES;
    metrics::with_local_recorder(&*RECORDER, || {
        use metrics::{counter, gauge};
        let sockets = "switchboard_connected_sockets";
        gauge!(sockets, "transport" => "polling").set(scrape.polling_sockets as f64);
        gauge!(sockets, "transport" => "websocket").set(scrape.websocket_sockets as f64);
        gauge!("switchboard_rooms").set(scrape.rooms as f64);
        gauge!("switchboard_room_members").set(scrape.room_members as f64);
        gauge!("switchboard_build_info",
            "version" => env!("CARGO_PKG_VERSION"), "node" => scrape.node.to_owned())
        .set(1.0);
        gauge!("switchboard_start_time_seconds").set(scrape.started_at_ms as f64 / 1000.0);
        if let Some(redis) = scrape.redis {
            gauge!("switchboard_redis_up").set(if redis.up { 1.0 } else { 0.0 });
            counter!("switchboard_bus_messages_lost_total").absolute(redis.bus_lost);
            counter!("switchboard_bus_publishes_skipped_total").absolute(redis.bus_skipped);
            counter!("switchboard_bus_publishes_failed_total").absolute(redis.bus_failed);
            counter!("switchboard_cluster_messages_published_total").absolute(redis.published);
            counter!("switchboard_cluster_messages_received_total").absolute(redis.received);
            counter!("switchboard_cluster_messages_misrouted_total").absolute(redis.misrouted);
        }
    });
    let mut out = RECORDER.handle().render();
    let _ = writeln!(
        out,
        "# HELP {RELAYED} Client events relayed to other sockets, by event"
    );
    let _ = writeln!(out, "# TYPE {RELAYED} counter");
    for (event, latency) in Relayed::ALL.iter().zip(&handles.latency) {
        let _ = writeln!(
            out,
            "{RELAYED}{{event=\"{}\"}} {}",
            event.name(),
            latency.count()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# HELP {RELAY_LATENCY} Time from receiving a client event to emitting it locally or \
         publishing it to the cluster, by event"
    );
    let _ = writeln!(out, "# TYPE {RELAY_LATENCY} histogram");
    for (event, latency) in Relayed::ALL.iter().zip(&handles.latency) {
        latency.render(
            &mut out,
            RELAY_LATENCY,
            &format!("event=\"{}\"", event.name()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles are indexed by `as usize`: the `ALL` arrays must list variants in declaration
    /// order.
    #[test]
    fn label_sets_are_in_declaration_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code}");
        }
        for (i, event) in Relayed::ALL.iter().enumerate() {
            assert_eq!(*event as usize, i);
        }
        for (i, cause) in LeaveCause::ALL.iter().enumerate() {
            assert_eq!(*cause as usize, i);
        }
        for (i, cause) in DisconnectCause::ALL.iter().enumerate() {
            assert_eq!(*cause as usize, i);
        }
        for (i, kind) in RedisError::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        for (i, reason) in CutReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        for (i, reason) in HandshakeRefusal::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
    }

    /// The `le` labels say the same bounds as the nanosecond table.
    #[test]
    fn bucket_labels_match_bounds() {
        for (ns, label) in LATENCY_BOUNDS_NS.iter().zip(LATENCY_BOUNDS_LABELS) {
            let seconds: f64 = label.parse().unwrap();
            assert!(
                (seconds * 1e9 - *ns as f64).abs() < 1e-3,
                "{label} vs {ns} ns"
            );
        }
    }

    /// An observation lands in the first bucket whose bound it does not exceed, buckets are
    /// cumulative, and the sum is in seconds.
    #[test]
    fn latency_buckets_are_cumulative_and_inclusive() {
        let latency = Latency::default();
        latency.record(Duration::from_micros(3));
        latency.record(Duration::from_micros(10));
        latency.record(Duration::from_micros(11));
        latency.record(Duration::from_secs(2));
        let mut out = String::new();
        latency.render(&mut out, "x", "event=\"e\"");
        let value = |series: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{out}"))
        };
        assert_eq!(value("x_bucket{event=\"e\",le=\"0.00001\"}"), 2.0);
        assert_eq!(value("x_bucket{event=\"e\",le=\"0.000025\"}"), 3.0);
        assert_eq!(value("x_bucket{event=\"e\",le=\"1\"}"), 3.0);
        assert_eq!(value("x_bucket{event=\"e\",le=\"+Inf\"}"), 4.0);
        assert_eq!(value("x_count{event=\"e\"}"), 4.0);
        assert!((value("x_sum{event=\"e\"}") - 2.000024).abs() < 1e-9);
    }

    /// Every hot-path series is listed after `init`, and recording shows up in the next render.
    /// The relay counter is the latency histogram's count.
    #[test]
    fn render_lists_recorded_series() {
        init();
        refused(ErrorCode::RoomFull);
        relayed(Relayed::StopScreenShare, Instant::now());
        let text = render(&Scrape {
            node: "unit",
            polling_sockets: 2,
            ..Scrape::default()
        });
        assert!(text.contains("switchboard_refused_events_total{code=\"room-full\"}"));
        assert!(text.contains("switchboard_connected_sockets{transport=\"polling\"} 2"));
        assert!(text.contains("switchboard_build_info{version=\""));
        let count = "switchboard_relay_latency_seconds_count{event=\"stopScreenShare\"} 1";
        assert!(text.contains(count), "{text}");
        let relayed = "switchboard_relayed_messages_total{event=\"stopScreenShare\"} 1";
        assert!(text.contains(relayed), "{text}");
        assert!(text.contains("switchboard_draining 0"));
        // Single-process scrapes have no Redis series.
        assert!(!text.contains("switchboard_redis_up"));
    }
}
