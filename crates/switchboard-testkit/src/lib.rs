//! Test support: real processes on free loopback ports, killed when dropped.
//!
//! Every integration test (Rust or JavaScript) gets its servers from here, so there is one
//! place that knows how to start them, wait until they serve and clean them up, even when the
//! test fails: each handle kills its process (by the PID it spawned) on drop.

mod js;
mod node;
mod port;

pub use js::{js_dir, run_node_test};
pub use node::Node;
pub use port::free_port;
