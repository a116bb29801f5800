//! `POST /admin/drain`: start draining this node, as SIGTERM would, from a deploy script or an
//! operator's terminal. Guarded by `--admin-token` (Bearer); without a token the admin
//! endpoints do not exist (404), so an unconfigured node cannot be drained by anyone who
//! reaches its port.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::lifecycle::Phase;

#[derive(Debug, Serialize)]
pub struct DrainStarted {
    /// False when the node was draining already.
    pub started: bool,
    pub phase: Phase,
    pub sockets: usize,
}

pub async fn drain(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.admin_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| same_secret(token, expected)) {
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
        return (
            StatusCode::UNAUTHORIZED,
            challenge,
            "missing or wrong admin token\n",
        )
            .into_response();
    }
    let started = state.drain.begin();
    if started {
        tracing::info!("drain requested over HTTP");
    }
    let body = DrainStarted {
        started,
        phase: state.drain.phase(),
        sockets: state.signaling.connected_sockets(),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Whether `headers` carry `Authorization: Bearer <expected>`.
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| same_secret(token, expected))
}

/// 401 with a Bearer challenge.
pub(crate) fn unauthorized(what: &str) -> Response {
    let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
    let body = format!("missing or wrong {what} token\n");
    (StatusCode::UNAUTHORIZED, challenge, body).into_response()
}

/// Compares in time that depends neither on where the strings differ nor on whether their
/// lengths do: both are hashed to 32 bytes first, and the digests compared in constant time.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn compares_secrets() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3creT"));
        assert!(!same_secret("s3cret", "s3cret!"));
        assert!(!same_secret("", "x"));
    }
}
