//! The checks in front of socket.io that need the HTTP request: where it comes from.
//!
//! - **Origin.** With `--cors-origins` set (and not `*`), a socket.io request (polling or
//!   WebSocket upgrade, handshake or not) whose `Origin` header names another origin gets
//!   403. CORS alone is no access control: browsers do not apply it to WebSocket upgrades,
//!   and a polling request is processed whether or not the browser lets the page read the
//!   answer. A request without `Origin` passes (browsers always send it on the requests that
//!   matter; other clients can write any header anyway), and so does the server's own origin
//!   (the demo page at `/`).
//! - **Sockets per source address.** A new Engine.IO session (no `sid`) from a source that
//!   has `--max-connections-per-address` sockets already gets 429 (see `crate::sources`).
//!
//! It also notes that the connection carried a complete request, which ends its
//! `--handshake-timeout` (see `crate::connections`).

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::connections::Peer;
use crate::metrics::{self, HandshakeRefusal};

/// Where socketioxide serves Engine.IO.
const ENGINE_IO_PATH: &str = "/socket.io/";

pub async fn gate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(peer)| peer.clone());
    if let Some(peer) = &peer {
        peer.cut.request_seen();
    }
    if !req.uri().path().starts_with(ENGINE_IO_PATH) {
        return next.run(req).await;
    }
    if let Some(allowed) = &state.allowed_origins
        && !origin_allowed(allowed, req.headers())
    {
        metrics::handshake_refused(HandshakeRefusal::Origin);
        tracing::info!(
            origin = ?req.headers().get(header::ORIGIN),
            "socket.io request refused: origin not allowed"
        );
        let body = r#"{"code":403,"message":"origin not allowed"}"#;
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    let new_session = !req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.starts_with("sid="));
    if new_session && let Some(peer) = &peer {
        let sources = &state.signaling.sources;
        let source = sources.source(peer.addr.ip(), req.headers());
        if !sources.has_room(source) {
            metrics::handshake_refused(HandshakeRefusal::TooManyConnections);
            tracing::info!(%source, "socket.io handshake refused: too many connections from this address");
            let headers = [(header::RETRY_AFTER, "10")];
            let body = r#"{"code":429,"message":"too many connections from this address"}"#;
            return (StatusCode::TOO_MANY_REQUESTS, headers, body).into_response();
        }
    }
    next.run(req).await
}

/// Whether the request's `Origin` is absent, in `allowed`, or the server's own (same scheme
/// and `Host`).
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/') == origin)
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (host, origin_host) {
        (Some(host), Some(origin_host)) if origin_host == host => true,
        // A proxy that passes `Host` without the port (nginx's `$host`): the names must match.
        (Some(host), Some(origin_host)) if !host.contains(':') && !host.starts_with('[') => {
            origin_host
                .rsplit_once(':')
                .map_or(origin_host, |(name, _)| name)
                == host
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let ok = |h: &[(&'static str, &str)]| origin_allowed(&allowed, &headers(h));
        assert!(ok(&[]));
        assert!(ok(&[("origin", "https://app.example.com")]));
        assert!(!ok(&[("origin", "https://evil.example")]));
        assert!(!ok(&[("origin", "null")]));
        assert!(ok(&[
            ("origin", "http://127.0.0.1:3001"),
            ("host", "127.0.0.1:3001")
        ]));
        assert!(!ok(&[
            ("origin", "http://127.0.0.1:3002"),
            ("host", "127.0.0.1:3001")
        ]));
        assert!(ok(&[
            ("origin", "http://localhost:8080"),
            ("host", "localhost")
        ]));
        assert!(!ok(&[
            ("origin", "http://evil.example:8080"),
            ("host", "localhost")
        ]));
    }
}
