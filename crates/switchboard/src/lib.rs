//! switchboard: a socket.io-compatible WebRTC signaling relay for rtc.io apps.
//!
//! - [`config`]: every option (flag, environment variable, default).
//! - [`app`]: builds the service (socket.io layer + HTTP routes) from a config.
//! - [`signaling`]: the socket.io event handlers, one file per client event.
//! - [`rooms`]: room membership and media state behind the [`rooms::RoomStore`] trait.
//! - [`cluster`]: cluster mode over Redis (event bus, node registry, crash cleanup).
//! - [`auth`]: optional JWT authentication of handshakes.
//! - [`http`]: plain HTTP endpoints (`/health`, `/ready`, `/cluster`, `/metrics`,
//!   `/admin/drain`), the gate in front of socket.io, and the demo page (`/`, `/ice-servers`).
//! - [`outgoing`]: the bytes waiting for one client to read them, bounded.
//! - [`sources`]: where connections come from (`X-Forwarded-For` from trusted proxies), sockets
//!   per source address.
//! - [`turn`]: short-lived TURN credentials for `/ice-servers` (coturn's `use-auth-secret`).
//! - [`metrics`]: every Prometheus metric and the cheap handles that record them.
//!
//! The wire contract lives in the `switchboard-protocol` crate and `docs/protocol.md`.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod drain;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod outgoing;
pub mod redis;
pub mod rooms;
pub mod sessions;
pub mod signaling;
pub mod sources;
pub mod turn;
