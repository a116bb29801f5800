//! `GET /metrics`: every metric of this node in the Prometheus text format.
//!
//! The counters live in [`crate::metrics`]; this handler only reads the state that is
//! cheaper to look at once per scrape than to track on every change (sockets by transport,
//! rooms, members, the Redis link and the bus) and renders. Open like `/health` unless
//! `--metrics-token` is set: it says how busy the node is, never who is connected.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::metrics::{self, RedisScrape, Scrape};

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token
        && !super::admin::bearer_matches(&headers, token)
    {
        return super::admin::unauthorized("metrics");
    }
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
            published: cluster.bus.published(),
            received: cluster.bus.received(),
            misrouted: cluster.bus.misrouted(),
        }),
    };
    ([(CONTENT_TYPE, TEXT_FORMAT)], metrics::render(&scrape)).into_response()
}
