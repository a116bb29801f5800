//! Plain HTTP endpoints beside socket.io. Handlers are plain async functions that take the
//! shared state explicitly.

mod cluster;
mod health;

pub use cluster::cluster;
pub use health::health;
