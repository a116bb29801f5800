//! Builds the whole service from a [`Config`]: room store, socket.io layer, HTTP routes, CORS.
//!
//! [`build`] returns a plain axum `Router`, so tests and `main` serve exactly the same app.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::HeaderValue;
use axum::routing::get;
use socketioxide::SocketIo;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::http;
use crate::rooms::{MemoryRoomStore, RoomStore};
use crate::signaling::{self, Limits, Signaling};

/// State shared by the HTTP handlers.
pub struct AppState {
    pub signaling: Arc<Signaling>,
    pub started: Instant,
}

/// Why the configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid CORS origin {0:?}: an origin looks like https://app.example.com")]
    CorsOrigin(String),
}

/// The service and the socket.io handle (kept by `main` for shutdown).
pub struct App {
    pub router: Router,
    pub io: SocketIo,
    pub state: Arc<AppState>,
}

pub fn build(config: &Config) -> Result<App, BuildError> {
    let node_id = config.node_id.clone().unwrap_or_else(random_node_id);
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let limits = Limits {
        max_payload: config.max_payload as usize,
        room_capacity: config.room_capacity(),
        rate: (config.rate_limit > 0).then_some((config.rate_limit, config.rate_burst)),
    };
    let verifier = config.jwt_secret.as_deref().map(TokenVerifier::new);
    let signaling = Arc::new(Signaling::new(store, node_id, limits, verifier));

    let (layer, io) = SocketIo::builder()
        .ping_interval(config.ping_interval())
        .ping_timeout(config.ping_timeout())
        .max_payload(config.max_polling_body())
        .max_buffer_size(config.max_buffered_packets as usize)
        .build_layer();
    signaling::attach(&io, signaling.clone());

    let state = Arc::new(AppState {
        signaling,
        started: Instant::now(),
    });
    let router = Router::new()
        .route("/health", get(http::health))
        .with_state(state.clone())
        .layer(layer)
        .layer(cors(config)?);
    Ok(App { router, io, state })
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
