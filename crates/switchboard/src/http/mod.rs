//! Plain HTTP endpoints beside socket.io, and the gate in front of it. Handlers are plain
//! async functions that take the shared state explicitly. `demo` serves the demo video room
//! at `/`.

mod admin;
mod admission;
mod cluster;
pub mod demo;
mod gate;
mod health;
mod metrics;
mod ready;

pub use admin::drain;
pub use admission::admission;
pub use cluster::cluster;
pub use gate::gate;
pub use health::health;
pub use metrics::metrics;
pub use ready::ready;
