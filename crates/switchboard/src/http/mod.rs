//! Plain HTTP endpoints beside socket.io. Handlers are plain async functions that take the
//! shared state explicitly.

mod cluster;
mod health;
mod metrics;

pub use cluster::cluster;
pub use health::health;
pub use metrics::metrics;
