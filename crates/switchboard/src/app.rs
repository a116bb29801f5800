//! Builds the whole service from a [`Config`]: room store, socket.io layer, HTTP routes (the
//! demo page among them), CORS.
//!
//! [`build`] returns a plain axum `Router`, so tests and `main` serve exactly the same app.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::routing::{get, post};
use socketioxide::{ParserConfig, SocketIo};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::TokenVerifier;
use crate::cluster::{Cluster, ClusterAdapter, NodeIdentity};
use crate::config::Config;
use crate::drain::Drain;
use crate::http;
use crate::lifecycle::{Lifecycle, Phase};
use crate::redis::{InvalidRedisUrl, RedisBus};
use crate::rooms::{MemoryRoomStore, RoomStore, now_ms};
use crate::sessions::{SessionDirectory, Sessions};
use crate::signaling::{self, Limits, Signaling};

/// Bytes tungstenite allocates per WebSocket for reading, and reads per syscall at most
/// (engineioxide's default is 4 KiB). A frame larger than this still arrives whole: the buffer
/// grows to the frame's length, read in chunks of this size. Signaling frames are mostly
/// small (candidates ~200 B, descriptions a few KiB), and an idle socket pays for every byte.
const WS_READ_BUFFER: usize = 1024;

/// Most bytes of binary attachments one packet may carry. The protocol has none (a packet
/// with one is refused with `invalid-payload`), so this only has to let a small one through
/// to that refusal; more closes the connection instead of being buffered (socketioxide would
/// hold 10 MB in 10,000 attachments per packet by default).
const MAX_BINARY_BYTES: usize = 1024;

/// How long socketioxide waits for the attachments a binary packet announced. It checks this
/// when the next attachment arrives; a partial packet is also dropped with its connection by
/// any text packet (which cannot come in between), by `--handshake-timeout` before CONNECT,
/// and it holds at most one WebSocket message plus [`MAX_BINARY_BYTES`] meanwhile.
const PARTIAL_PACKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// State shared by the HTTP handlers.
pub struct AppState {
    pub signaling: Arc<Signaling>,
    pub started: Instant,
    pub node: NodeIdentity,
    /// Present in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    pub drain: Arc<Drain>,
    /// `--admin-token`; the admin endpoints exist only when it is set.
    pub admin_token: Option<String>,
    /// `--ice-servers` as compact JSON, checked at start-up; served to the demo page.
    pub ice_servers: String,
    /// `--turn-secret`: TURN credentials minted per `/ice-servers` request.
    pub turn: Option<crate::turn::TurnCredentials>,
    /// `--metrics-token`: `/metrics` and `/cluster` need it when set.
    pub metrics_token: Option<String>,
    /// `--cors-origins` when it restricts origins (see `http::gate`); `None`: any origin.
    pub allowed_origins: Option<Vec<String>>,
}

/// Why the configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid CORS origin {0:?}: an origin looks like https://app.example.com")]
    CorsOrigin(String),
    #[error(transparent)]
    RedisUrl(#[from] InvalidRedisUrl),
    #[error("--jwt-public-key {0}")]
    JwtKey(String),
    #[error("cannot start the cluster adapter: {0}")]
    Adapter(String),
}

/// The service, and the socket.io handle `main` closes on shutdown.
pub struct App {
    pub router: Router,
    pub state: Arc<AppState>,
    sockets: Sockets,
}

/// The socket.io server, whose type depends on the adapter.
enum Sockets {
    Single(SocketIo),
    Cluster(SocketIo<ClusterAdapter>),
}

impl App {
    /// Drains the node (see `drain`) once the drain has begun, then closes it. Returns when
    /// the node may exit: within `--drain-wait` + `--drain-spread` of the start.
    pub async fn drain(&self) {
        let state = &self.state;
        state.drain.begun().await;
        if let Some(cluster) = &state.cluster {
            cluster.cordon(&state.signaling).await;
        }
        let deadline = state.drain.run(&state.signaling).await;
        self.close(deadline).await;
    }

    /// Ends every remaining session (peers hear the departures), waits until `deadline` at
    /// most for that, closes the connections (clients reconnect, to another node behind a
    /// balancer), then leaves the cluster.
    ///
    /// Sessions are ended first because socketioxide 0.18's `close` does not run disconnect
    /// handlers, so departures would go unannounced until a survivor reaped this node.
    async fn close(&self, deadline: tokio::time::Instant) {
        let signaling = &self.state.signaling;
        signaling.lifecycle.advance(Phase::Closing);
        while signaling.connected_sockets() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // What was queued for long-polling clients before their sessions ended goes out with
        // their next poll; resumable sessions keep everything after that.
        let flush = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(flush.min(crate::connections::FLUSH_BEFORE_CUT)).await;
        match &self.sockets {
            Sockets::Single(io) => io.close().await,
            Sockets::Cluster(io) => io.close().await,
        }
        if let Some(cluster) = &self.state.cluster {
            cluster.leave().await;
        }
    }
}

/// Builds the app: single-process without `--redis-url`, a cluster node with it. Never waits
/// for Redis (see `redis::link`).
pub async fn build(config: &Config) -> Result<App, BuildError> {
    let node = NodeIdentity {
        id: config.node_id.clone().unwrap_or_else(random_node_id),
        url: config.advertise_url(),
        region: config.region.clone(),
        started_at_ms: now_ms(),
    };
    let limits = Limits {
        max_payload: config.max_payload as usize,
        room_capacity: config.room_capacity(),
        rate: (config.rate_limit > 0).then_some((config.rate_limit, config.rate_burst)),
        max_rooms_per_socket: config.max_rooms_per_socket as usize,
        max_refusals: config.max_refusals,
        max_connections_per_address: config.max_connections_per_address as usize,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let verifier = match (&config.jwt_secret, &config.jwt_public_key) {
        (Some(secret), _) => Some(TokenVerifier::new(secret)),
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .map_err(|e| BuildError::JwtKey(format!("{}: {e}", path.display())))?;
            let verifier = TokenVerifier::from_public_key_pem(&pem)
                .map_err(|e| BuildError::JwtKey(format!("{}: {e}", path.display())))?;
            Some(verifier)
        }
        (None, None) => None,
    }
    .map(|verifier| verifier.with_leeway(config.jwt_leeway));
    let sockets = SocketIo::builder()
        .ping_interval(config.ping_interval())
        .ping_timeout(config.ping_timeout())
        .max_payload(config.max_polling_body())
        .max_buffer_size(config.max_buffered_packets as usize)
        .ws_read_buffer_size(WS_READ_BUFFER)
        // A WebSocket message is read whole before socket.io sees it: bound it like a
        // polling body, so nothing larger is ever buffered (the library allows 64 MiB).
        .ws_max_message_size(config.max_polling_body() as usize)
        .ws_max_frame_size(config.max_polling_body() as usize)
        .connect_timeout(config.handshake_timeout())
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(1)
                .max_incoming_binary_buf_size(MAX_BINARY_BYTES)
                .packet_completion_timeout(PARTIAL_PACKET_TIMEOUT),
        );
    let grace = config.resume_grace();
    let lifecycle = Lifecycle::default();
    let signaling_with = |store: Arc<dyn RoomStore>,
                          bus: Option<RedisBus>,
                          directory: Option<Arc<dyn SessionDirectory>>| {
        let sessions = Sessions::new(grace, directory);
        Arc::new(Signaling::new(
            store,
            bus,
            sessions,
            node.id.clone(),
            limits,
            verifier,
            lifecycle.clone(),
        ))
    };

    let (state, router, sockets) = match &config.redis_url {
        None => {
            let signaling = signaling_with(Arc::new(MemoryRoomStore::new()), None, None);
            let (layer, io) = sockets.build_layer();
            io.ns("/", signaling::connect_handler(signaling.clone()));
            let state = AppState::new(config, signaling, node, None);
            (
                state.clone(),
                routes(state).layer(layer),
                Sockets::Single(io),
            )
        }
        Some(url) => {
            let cluster = Arc::new(Cluster::open(url, node.clone(), config.node_ttl()).await?);
            let signaling = signaling_with(
                cluster.store.clone(),
                Some(cluster.bus.clone()),
                Some(cluster.sessions.clone()),
            );
            let (layer, io) = sockets
                .with_adapter::<ClusterAdapter>(cluster.adapter())
                .build_layer();
            io.ns("/", signaling::connect_handler(signaling.clone()))
                .await
                .map_err(|e| BuildError::Adapter(e.to_string()))?;
            cluster.clone().run(io.clone(), signaling.clone());
            let state = AppState::new(config, signaling, node, Some(cluster));
            (
                state.clone(),
                routes(state).layer(layer),
                Sockets::Cluster(io),
            )
        }
    };
    let router = router
        .layer(cors(config)?)
        .layer(axum::middleware::map_request(detach_head))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::admission,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::gate,
        ));
    Ok(App {
        router,
        state,
        sockets,
    })
}

impl AppState {
    fn new(
        config: &Config,
        signaling: Arc<Signaling>,
        node: NodeIdentity,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        let drain = Drain::new(
            signaling.lifecycle.clone(),
            config.drain_wait(),
            config.drain_spread(),
        );
        Arc::new(Self {
            drain: Arc::new(drain),
            signaling,
            started: Instant::now(),
            node,
            cluster,

            admin_token: config.admin_token.clone().filter(|t| !t.is_empty()),
            ice_servers: config.ice_servers.clone(),
            allowed_origins: (!config.cors_allows_any()).then(|| config.cors_origins.clone()),
            metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            turn: config.turn(),
        })
    }
}

/// The plain HTTP endpoints, and the demo page with its assets (`http::demo`).
fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/cluster", get(http::cluster))
        .route("/admin/drain", post(http::drain))
        .route("/", get(http::demo::index))
        .route("/assets/demo.css", get(http::demo::stylesheet))
        .route("/assets/demo.js", get(http::demo::script))
        .route(
            "/assets/socket.io.esm.min.js",
            get(http::demo::socket_io_client),
        )
        .route("/ice-servers", get(http::demo::ice_servers))
        .route("/metrics", get(http::metrics))
        .with_state(state)
}

/// Gives the request its own copies of the URI and header values.
///
/// hyper parses a request head in place: the URI and every header value are slices of the
/// connection's read buffer (16 KiB), and any one of them keeps the whole buffer alive.
/// engineioxide keeps the upgrade request's parts (URI, headers, extensions, including axum's
/// `OriginalUri`) for the socket's whole life, so without these copies every WebSocket pins
/// that buffer long after the upgrade: 16 KiB of a ~36 KiB idle socket.
async fn detach_head(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    let uri = detach_uri(&parts.uri);
    if let Some(original) = parts.extensions.get_mut::<OriginalUri>() {
        original.0 = detach_uri(&original.0);
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // Cannot fail: the bytes come from a valid value.
        let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) else {
            continue;
        };
        copy.set_sensitive(value.is_sensitive());
        // Standard names are static; other names were already copied out by hyper.
        headers.append(HeaderName::clone(name), copy);
    }
    parts.uri = uri;
    parts.headers = headers;
    Request::from_parts(parts, body)
}

fn detach_uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn cors(config: &Config) -> Result<CorsLayer, BuildError> {
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if config.cors_allows_any() {
        return Ok(layer.allow_origin(Any));
    }
    let origins = config
        .cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o.trim()).map_err(|_| BuildError::CorsOrigin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(layer.allow_origin(AllowOrigin::list(origins)))
}

fn random_node_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(std::process::id());
    format!("node-{:08x}", bits as u32)
}
