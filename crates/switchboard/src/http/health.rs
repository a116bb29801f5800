//! `GET /health`: is this process alive and serving? Always 200 while it is.
//!
//! Load balancers and people both read it, so the body is small and self-explanatory.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub node: String,
    pub version: &'static str,
    pub uptime_secs: u64,
    pub sockets: usize,
}

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node: state.signaling.node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        sockets: state.signaling.connected_sockets(),
    })
}
