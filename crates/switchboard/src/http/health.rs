//! `GET /health`: is this process alive and serving? Always 200 while it is.
//!
//! Load balancers and people both read it, so the body is small and self-explanatory.
//!
//! A node whose Redis is down is `degraded`, not dead: it still relays between its own
//! sockets, and Redis going down hits every node at once, so a 503 here would make a load
//! balancer take the whole cluster out of service for a problem that restarting nodes cannot
//! fix. The status code stays 200; the body says what is wrong.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, or `degraded` while the Redis link is down.
    pub status: &'static str,
    pub node: String,
    pub version: &'static str,
    pub uptime_secs: u64,
    pub sockets: usize,
    /// `disabled` (single process), `up`, `down`, or `syncing` (connected, but the room
    /// roster is being rebuilt after Redis lost its data: joins answer `unavailable`).
    pub redis: &'static str,
}

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let redis = match &state.cluster {
        None => "disabled",
        Some(cluster) if !cluster.link.is_up() => "down",
        Some(cluster) if !cluster.store.roster_complete() => "syncing",
        Some(_) => "up",
    };
    Json(Health {
        status: if matches!(redis, "down" | "syncing") {
            "degraded"
        } else {
            "ok"
        },
        node: state.signaling.node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        sockets: state.signaling.connected_sockets(),
        redis,
    })
}
