//! A connection ends when its token does.
//!
//! A JWT is checked once, at the handshake; without this, a socket would outlive its token for
//! as long as its connection lasts. A socket whose token carried `exp` is disconnected with a
//! socket.io disconnect packet at `exp` plus `--jwt-leeway`, counted as `token-expired`; its
//! rooms hear it leave. A client that wants to stay connects again with a fresh token (the
//! stock client does not reconnect by itself after a server disconnect: the app does, e.g. on
//! the `disconnect` event with reason `io server disconnect`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;

use crate::metrics::{self, CutReason};

/// Disconnects the socket `sid` at `exp` (seconds since the Unix epoch) plus `leeway`
/// seconds, if it is still connected then. The task holds the server handle, not the socket,
/// so a socket that leaves earlier is freed at once.
pub fn watch<A: Adapter>(io: SocketIo<A>, sid: Sid, exp: u64, leeway: u64) {
    let deadline = UNIX_EPOCH + Duration::from_secs(exp.saturating_add(leeway));
    let wait = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let Some(socket) = io.get_socket(sid) else {
            return;
        };
        metrics::connection_cut(CutReason::TokenExpired);
        tracing::info!(socket = %sid, reason = CutReason::TokenExpired.name(), "disconnecting: token expired");
        if let Err(e) = socket.disconnect() {
            tracing::debug!(socket = %sid, error = %e, "disconnect failed");
        }
    });
}
