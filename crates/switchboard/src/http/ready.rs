//! `GET /ready`: should a balancer send this node new clients? 503 once it drains.
//!
//! Readiness is not health: a draining node is healthy (its sockets still work, `/health`
//! stays 200) but must get no new ones. It does not depend on Redis either, for the reason
//! `/health` gives: Redis down hits every node at once, and taking them all out of service
//! would turn a degraded cluster into a dead one.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::app::AppState;
use crate::lifecycle::Phase;

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub phase: Phase,
}

pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Readiness>) {
    let phase = state.drain.phase();
    let ready = phase == Phase::Serving;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, phase }))
}
