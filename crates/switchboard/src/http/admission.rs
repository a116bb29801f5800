//! The gate in front of socket.io: refuses new sessions while the node drains, and notes
//! which connections carry a WebSocket so the drain can move them.
//!
//! A new session is an Engine.IO request without `sid`. While draining it gets
//! `503 Service Unavailable` with `Retry-After: 1`: nginx (`proxy_next_upstream http_503`)
//! sends it to another node, and a client talking to this node directly retries with its
//! usual back-off. Requests of existing sessions (polls, upgrades) pass.

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
    if state.drain.is_draining() && param("sid").is_none() {
        let headers = [(header::RETRY_AFTER, "1")];
        let body = r#"{"code":503,"message":"this node is draining: connect to another one"}"#;
        return (StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response();
    }
    if param("transport") == Some("websocket")
        && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<Peer>>()
    {
        state.drain.websockets.register(&peer.cut);
    }
    next.run(req).await
}
