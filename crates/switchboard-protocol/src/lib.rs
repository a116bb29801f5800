//! The rtc.io signaling protocol as switchboard speaks it: what clients may send, what the
//! server sends back, and the rules a payload must pass before it may touch room state.
//!
//! This crate does no I/O on purpose. The server decodes a socket.io event into a
//! [`ClientEvent`] here, and everything that can be said about a payload without knowing who
//! else is connected (shape, types, lengths, characters) is decided here, once, with a stable
//! [`ErrorCode`]. Questions that need state (is the sender in that room? is it full?) belong
//! to the server.
//!
//! - [`inbound`]: client → server events and their validation.
//! - [`outbound`]: server → client payloads, acks and the `error` event.
//! - [`error`]: the error codes clients can rely on.
//! - [`ids`]: validated room ids and display names.

pub mod error;
pub mod ids;
pub mod inbound;
pub mod outbound;

pub use error::{ErrorCode, ProtocolError};
pub use ids::{MemberName, RoomId};
pub use inbound::{ClientEvent, Envelope, JoinRoom, LeaveRoom, MediaUpdate, ScreenShareStop};
pub use outbound::{Ack, ErrorEvent, MediaState, PeerInfo, ServerEvent};
