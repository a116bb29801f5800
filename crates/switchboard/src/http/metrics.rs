//! `GET /metrics`: every metric of this node in the Prometheus text format.
//!
//! The counters live in [`crate::metrics`]; this handler only reads the state that is
//! cheaper to look at once per scrape than to track on every change (sockets by transport,
//! rooms, members, the Redis link and the bus) and renders. Unauthenticated, like `/health`:
//! it says how busy the node is, never who is connected.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::app::AppState;
use crate::metrics::{self, RedisScrape, Scrape};

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let signaling = &state.signaling;
    let transports = signaling.transports();
    let scrape = Scrape {
        node: &state.node.id,
        started_at_ms: state.node.started_at_ms,
        polling_sockets: transports.polling,
        websocket_sockets: transports.websocket,
        rooms: signaling.store.local_rooms(),
        room_members: signaling.store.local_memberships(),
        redis: state.cluster.as_ref().map(|cluster| RedisScrape {
            up: cluster.link.is_up(),
            bus_lost: cluster.bus.lost(),
            bus_skipped: cluster.bus.skipped(),
            bus_failed: cluster.bus.failed(),
        }),
    };
    ([(CONTENT_TYPE, TEXT_FORMAT)], metrics::render(&scrape))
}
