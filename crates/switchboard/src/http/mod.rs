//! Plain HTTP endpoints beside socket.io. Handlers are plain async functions that take the
//! shared state explicitly.

mod health;

pub use health::health;
