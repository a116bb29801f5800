//! Talking to Redis: what room state, sessions and the cluster share.
//!
//! - [`link`]: the two Redis connections and their failure rules (reconnect forever, fail
//!   fast).
//! - [`bus`]: pub/sub over the link: socketioxide-redis's driver for the rare broadcasts to
//!   every node, and node mail to one node.
//! - [`mail`]: node mail's messages and channels, one per node.
//!
//! It knows nothing of rooms, sessions or sockets beyond the messages it carries, so every
//! cluster-mode part (`rooms::RedisRoomStore`, `sessions::RedisSessionDirectory`, `cluster`,
//! the socket handlers) uses it and none of them is used by it.

pub mod bus;
pub mod link;
pub mod mail;

pub use bus::{RedisBus, STREAM_BUFFER};
pub use link::{COMMAND_TIMEOUT, InvalidRedisUrl, RedisLink};
pub use mail::{Mail, RosterChange, mail_channel};
