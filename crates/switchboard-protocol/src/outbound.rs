//! Server → client payloads.
//!
//! Every server event carries exactly one plain JSON object and never asks for an ack: the
//! rtc.io client reads a second argument of `#rtcio:init-offer` as options, so the shape is
//! part of the contract. The structs here borrow what they can, because most of them are
//! built once and serialized once on the way out.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ErrorCode, ProtocolError};

/// Event names the server sends.
pub mod names {
    pub const USER_CONNECTED: &str = "user-connected";
    pub const USER_DISCONNECTED: &str = "user-disconnected";
    pub const MEDIA_STATE: &str = "media-state";
    pub const STOP_SCREEN_SHARE: &str = "stopScreenShare";
    pub const INIT_OFFER: &str = "#rtcio:init-offer";
    pub const MESSAGE: &str = "#rtcio:message";
    pub const PEER_LEFT: &str = "#rtcio:peer-left";
    pub const ERROR: &str = "error";
}

/// A member's microphone and camera state in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MediaState {
    pub mic: bool,
    pub cam: bool,
}

/// Payloads of server events, one variant per event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ServerEvent<'a> {
    /// `user-connected { id, name }`
    UserConnected { id: &'a str, name: &'a str },
    /// `user-disconnected { id }`, and `#rtcio:peer-left { id }`
    Departed { id: &'a str },
    /// `media-state { id, roomId, mic, cam }`
    MediaState {
        id: &'a str,
        #[serde(rename = "roomId")]
        room_id: &'a str,
        mic: bool,
        cam: bool,
    },
    /// `#rtcio:init-offer { source }`
    InitOffer { source: &'a str },
    /// `#rtcio:message { source, target, data }` with `source` stamped by the server.
    Message {
        source: &'a str,
        target: &'a str,
        data: &'a RawValue,
    },
}

/// One existing member, as listed in the `join-room` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mic: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cam: Option<bool>,
}

/// Acknowledgement bodies.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Ack<'a> {
    /// `{ ok: true, roomId, self, peers }`, the answer to `join-room`.
    Joined {
        ok: bool,
        #[serde(rename = "roomId")]
        room_id: &'a str,
        #[serde(rename = "self")]
        self_id: &'a str,
        peers: &'a [PeerInfo],
    },
    /// `{ ok: true }`, the answer to every other accepted event.
    Done { ok: bool },
    /// `{ ok: false, code, message }`
    Refused {
        ok: bool,
        code: ErrorCode,
        message: &'a str,
    },
}

impl<'a> Ack<'a> {
    pub fn joined(room_id: &'a str, self_id: &'a str, peers: &'a [PeerInfo]) -> Self {
        Ack::Joined {
            ok: true,
            room_id,
            self_id,
            peers,
        }
    }

    pub fn done() -> Self {
        Ack::Done { ok: true }
    }

    pub fn refused(error: &'a ProtocolError) -> Self {
        Ack::Refused {
            ok: false,
            code: error.code,
            message: &error.message,
        }
    }
}

/// The `error` event: `{ code, message, event }`.
#[derive(Debug, Serialize)]
pub struct ErrorEvent<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    pub event: &'a str,
}

impl<'a> ErrorEvent<'a> {
    pub fn new(error: &'a ProtocolError, event: &'a str) -> Self {
        Self {
            code: error.code,
            message: &error.message,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Payload shapes are exactly the documented ones.
    #[test]
    fn shapes() {
        let raw = RawValue::from_string(r#"{"candidate":{}}"#.into()).unwrap();
        let cases = [
            (
                serde_json::to_value(ServerEvent::UserConnected { id: "a", name: "n" }).unwrap(),
                json!({"id":"a","name":"n"}),
            ),
            (
                serde_json::to_value(ServerEvent::Departed { id: "a" }).unwrap(),
                json!({"id":"a"}),
            ),
            (
                serde_json::to_value(ServerEvent::MediaState {
                    id: "a",
                    room_id: "r",
                    mic: true,
                    cam: false,
                })
                .unwrap(),
                json!({"id":"a","roomId":"r","mic":true,"cam":false}),
            ),
            (
                serde_json::to_value(ServerEvent::InitOffer { source: "b" }).unwrap(),
                json!({"source":"b"}),
            ),
            (
                serde_json::to_value(ServerEvent::Message {
                    source: "a",
                    target: "b",
                    data: &raw,
                })
                .unwrap(),
                json!({"source":"a","target":"b","data":{"candidate":{}}}),
            ),
            (
                serde_json::to_value(Ack::done()).unwrap(),
                json!({"ok":true}),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let err = ProtocolError::new(ErrorCode::RoomFull, "full");
        assert_eq!(
            serde_json::to_value(Ack::refused(&err)).unwrap(),
            json!({"ok":false,"code":"room-full","message":"full"})
        );
        assert_eq!(
            serde_json::to_value(ErrorEvent::new(&err, "join-room")).unwrap(),
            json!({"code":"room-full","message":"full","event":"join-room"})
        );
        let peers = [PeerInfo {
            id: "a".into(),
            name: "alice".into(),
            mic: Some(true),
            cam: None,
        }];
        assert_eq!(
            serde_json::to_value(Ack::joined("r", "b", &peers)).unwrap(),
            json!({"ok":true,"roomId":"r","self":"b","peers":[{"id":"a","name":"alice","mic":true}]})
        );
    }
}
