//! Plain HTTP endpoints beside socket.io. Handlers are plain async functions that take the
//! shared state explicitly. `demo` serves the demo video room at `/`.

mod cluster;
pub mod demo;
mod health;

pub use cluster::cluster;
pub use health::health;
