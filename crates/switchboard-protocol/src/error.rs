//! Error codes: the stable strings a client can branch on.
//!
//! Codes are part of the public contract (documented in `docs/protocol.md`); messages are for
//! humans and may change. A refused event always produces both an `error` event and, when the
//! client asked for one, a `{ ok: false, code, message }` ack.

use std::fmt;

use serde::Serialize;

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The payload has the wrong shape, a wrong type, a missing field or a value out of range.
    InvalidPayload,
    /// The event is larger than the configured maximum payload.
    PayloadTooLarge,
    /// The sender is not in the room the event names, or shares no room with a relay target.
    NotInRoom,
    /// The room already holds the configured maximum number of members.
    RoomFull,
    /// The sender sends events faster than its per-socket budget allows.
    RateLimited,
    /// The sender's token does not allow this (for example joining a room it was not issued for).
    Unauthorized,
    /// The server does not know this event name.
    UnknownEvent,
    /// The server could not reach its room state; the event changed nothing and may be retried.
    Unavailable,
    /// The socket is in as many rooms as one socket may be (`--max-rooms-per-socket`).
    TooManyRooms,
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid-payload",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownEvent => "unknown-event",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyRooms => "too-many-rooms",
        }
    }

    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidPayload,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotInRoom,
        ErrorCode::RoomFull,
        ErrorCode::RateLimited,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownEvent,
        ErrorCode::Unavailable,
        ErrorCode::TooManyRooms,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: a code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPayload, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde spelling and `as_str` never drift apart.
    #[test]
    fn wire_spelling_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
