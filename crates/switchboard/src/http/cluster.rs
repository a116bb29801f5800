//! `GET /cluster`: the nodes of this cluster that are alive, as the registry knows them.
//!
//! A single-process node lists itself. A cluster node reads the registry from Redis, so it
//! answers 503 while Redis is unreachable rather than guess. With `--metrics-token` set it
//! needs that token, as `/metrics` does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::cluster::NodeInfo;

#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// The id of the node that answered.
    pub node: String,
    /// Live nodes, sorted by id.
    pub nodes: Vec<NodeInfo>,
}

pub async fn cluster(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token
        && !super::admin::bearer_matches(&headers, token)
    {
        return super::admin::unauthorized("metrics");
    }
    let node = state.node.id.clone();
    let nodes = match &state.cluster {
        None => vec![
            state
                .node
                .describe(&state.signaling, state.drain.is_draining()),
        ],
        Some(cluster) => match cluster.registry.live().await {
            Ok(nodes) => nodes,
            Err(e) => {
                let body = serde_json::json!({ "error": "unavailable", "message": e.to_string() });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        },
    };
    Json(ClusterView { node, nodes }).into_response()
}
