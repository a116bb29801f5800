//! The gate in front of socket.io: refuses new sessions while the node drains, and notes
//! which connections carry a WebSocket so the drain can move them.
//!
//! While draining, these get `503 Service Unavailable` with `Retry-After: 1`, so nginx
//! (`proxy_next_upstream http_503`) passes them to the next node, and a client talking to
//! this node directly retries with its usual back-off:
//!
//! - a new session: an Engine.IO request without `sid`;
//! - a WebSocket upgrade. A moved client whose address still hashes here upgrades its new
//!   session (on another node) through this node first, and engineioxide would accept the
//!   upgrade (101) before checking the session and then drop it, leaving the client stuck on
//!   long-polling. A session of this node that has not upgraded yet stays on long-polling
//!   until the drain closes it;
//! - a long-poll of a session this node does not know (engineioxide's 400 "Session ID
//!   unknown"), for the same moved clients.
//!
//! Long-polls of this node's own sessions pass.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::connections::Peer;

/// Where socketioxide serves Engine.IO (its default, as socket.io's).
const ENGINE_IO_PATH: &str = "/socket.io/";

pub async fn admission(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(ENGINE_IO_PATH) {
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let websocket = param("transport") == Some("websocket");
    if state.drain.is_draining() && (param("sid").is_none() || websocket) {
        return draining();
    }
    if websocket && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<Peer>>() {
        // An upgrade names its socket (the Engine.IO sid is the socket id); a WebSocket that
        // opens a session learns it in the connect handler (`signaling`).
        if let Some(sid) = param("sid") {
            peer.cut.carries(sid);
        }
        state.drain.websockets.register(&peer.cut);
    }
    let response = next.run(req).await;
    if response.status() == StatusCode::BAD_REQUEST && state.drain.is_draining() {
        return draining();
    }
    response
}

fn draining() -> Response {
    let headers = [(header::RETRY_AFTER, "1")];
    let body = r#"{"code":503,"message":"this node is draining: connect to another one"}"#;
    (StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response()
}
