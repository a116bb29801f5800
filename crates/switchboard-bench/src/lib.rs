//! `switchboard-bench`: a load generator for socket.io signaling servers that speak the rtc.io
//! protocol (switchboard, and the Node reference in `bench/node-reference`).
//!
//! It holds its own lean socket.io v5 / Engine.IO v4 client over WebSocket, so one process can
//! hold tens of thousands of connections on two cores and still cost far less CPU than the
//! server it measures. Every scenario is bounded in count and in time, and reports exact counts
//! of what was lost, so a run that drops anything exits non-zero.
//!
//! - [`wire`]: Engine.IO / socket.io text frames: encoding events, reading what arrives (no I/O).
//! - [`target`]: the node URLs under test and the loopback source addresses to connect from.
//! - [`client`]: one WebSocket connection: handshake, sid, pings, send and receive.
//! - [`procstat`]: RSS and CPU-seconds of the server processes, from `/proc`.
//! - [`report`]: the figures of a run, as a human table and a JSON file.
//! - [`scrape`]: cluster counters of switchboard nodes, from their `/metrics`.
//! - [`scenario`]: `idle`, `relay`, `storm` and `churn`.
//! - [`summary`]: Markdown tables (medians, spreads, ratios) from the JSON reports of a run.
//! - [`plot`]: SVG charts (latency CDFs, memory per socket) from the JSON reports of a run.
//! - [`clock`]: one monotonic clock shared by every task, so timestamps in payloads compare.

pub mod client;
pub mod clock;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod scrape;
pub mod summary;
pub mod target;
pub mod wire;

/// Everything that can stop a bench connection or a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad node URL {0:?}: expected http://127.x.y.z:PORT or ws://127.x.y.z:PORT")]
    Url(String),
    #[error("node URL {0} is not a loopback address; the bench only targets this machine")]
    NotLoopback(String),
    #[error("tcp: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("connection refused by the server: {0}")]
    ConnectRefused(String),
    #[error("timed out while {0}")]
    Timeout(&'static str),
    #[error("connection closed by the server")]
    Closed,
    #[error("/proc/{pid}: {reason}")]
    Proc { pid: u32, reason: String },
}
