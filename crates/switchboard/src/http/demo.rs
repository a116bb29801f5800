//! The demo video room at `GET /` and the ICE servers it uses (`GET /ice-servers`).
//!
//! Why it is built in: anyone who runs `switchboard` can open two tabs and see a real call go
//! through it, with no web server or build step of their own, and the end-to-end browser test
//! exercises the very bytes the binary serves. The page (one HTML file, one stylesheet, one
//! script module) and the stock socket.io-client 4 browser bundle are compiled into the binary
//! with `include_str!` from `crates/switchboard/assets/`, so the binary stays a single file.
//!
//! The bundle is `dist/socket.io.esm.min.js` of the `socket.io-client` version locked in
//! `tests/js/package-lock.json`, copied unchanged (`npm run vendor-demo` in `tests/js`); the
//! browser test checks that both are still the same bytes.
//!
//! Responses carry a strict Content-Security-Policy (same-origin scripts, styles and
//! connections only) and `Referrer-Policy: no-referrer`, because the room id in the page's
//! URL is what lets people into a call.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("../../assets/index.html");
/// Its stylesheet.
pub const DEMO_CSS: &str = include_str!("../../assets/demo.css");
/// Its script: joining, media, perfect negotiation, tiles.
pub const DEMO_JS: &str = include_str!("../../assets/demo.js");
/// socket.io-client's ES module browser bundle, unchanged from the npm package.
pub const SOCKET_IO_JS: &str = include_str!("../../assets/socket.io.esm.min.js");

/// What the page may load and connect to: itself only (the socket.io connection included).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Headers every demo response carries. `no-cache` makes browsers revalidate, so a new
/// binary's page is never mixed with an old cached script.
fn headers(content_type: &'static str) -> [(HeaderName, &'static str); 5] {
    [
        (CONTENT_TYPE, content_type),
        (CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("content-security-policy"),
            CONTENT_SECURITY_POLICY,
        ),
        (HeaderName::from_static("referrer-policy"), "no-referrer"),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
    ]
}

/// `GET /`
pub async fn index() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), INDEX_HTML)
}

/// `GET /assets/demo.css`
pub async fn stylesheet() -> impl IntoResponse {
    (headers("text/css; charset=utf-8"), DEMO_CSS)
}

/// `GET /assets/demo.js`
pub async fn script() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), DEMO_JS)
}

/// `GET /assets/socket.io.esm.min.js`
pub async fn socket_io_client() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), SOCKET_IO_JS)
}

/// `GET /ice-servers`: the `--ice-servers` list (checked at start-up), compacted, and with
/// `--turn-secret` a TURN entry with a credential minted for this request (`crate::turn`).
/// With `--jwt-secret`, the TURN entry needs a valid client token (`Authorization: Bearer`);
/// without one the answer is 401. Not cached: the credentials are short-lived.
pub async fn ice_servers(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut body = state.ice_servers.clone();
    if let Some(turn) = &state.turn {
        if let Some(verifier) = &state.signaling.verifier {
            let token = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if token.is_none_or(|t| verifier.verify(t).is_err()) {
                return super::admin::unauthorized("client");
            }
        }
        let mut list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        list.push(serde_json::json!(turn.mint()));
        body = serde_json::Value::Array(list).to_string();
    }
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads its script and stylesheet from the paths `routes()` serves them at, and
    /// the script imports the bundle from where it is served.
    #[test]
    fn page_refers_to_served_paths() {
        assert!(INDEX_HTML.contains(r#"src="assets/demo.js""#));
        assert!(INDEX_HTML.contains(r#"href="assets/demo.css""#));
        assert!(DEMO_JS.contains("from './socket.io.esm.min.js'"));
    }
}
