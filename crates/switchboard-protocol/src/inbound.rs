//! Client → server events.
//!
//! A socket.io EVENT packet carries a JSON array: the event name, then its arguments
//! (`["join-room", {"roomId": "a", "name": "bob"}]`). [`ClientEvent::decode`] turns that text
//! into a typed event or a [`ProtocolError`] saying precisely what is wrong. Extra arguments
//! after the payload are ignored, as socket.io servers do.
//!
//! The relay envelope keeps `data` as raw JSON text ([`RawValue`]): switchboard never needs to
//! look inside an SDP or ICE candidate, and forwarding the exact text guarantees that nothing
//! (`\r\n`, field order, unknown fields) is altered on the way.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, ProtocolError};
use crate::ids::{MemberName, RoomId};

/// Event names clients send.
pub mod names {
    pub const JOIN_ROOM: &str = "join-room";
    pub const LEAVE_ROOM: &str = "leave-room";
    pub const MEDIA_STATE: &str = "media-state";
    pub const STOP_SCREEN_SHARE: &str = "stopScreenShare";
    pub const MESSAGE: &str = "#rtcio:message";
}

/// Longest relay `target`, in bytes. Socket ids are 20 characters; this leaves room for other
/// id schemes without letting a client send a megabyte of target.
pub const TARGET_MAX_BYTES: usize = 128;

/// `join-room { roomId, name }`. A missing `name` is taken as empty, as the Node server would.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRoom {
    pub room_id: RoomId,
    #[serde(default)]
    pub name: MemberName,
}

/// `leave-room { roomId }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveRoom {
    pub room_id: RoomId,
}

/// `media-state { roomId, mic, cam }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaUpdate {
    pub room_id: RoomId,
    pub mic: bool,
    pub cam: bool,
}

/// `stopScreenShare { roomId, ... }`: every other field is forwarded untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenShareStop {
    pub room_id: RoomId,
    /// The whole payload as sent, `roomId` included.
    pub payload: Map<String, Value>,
}

/// `#rtcio:message { source, target, data }`. The client's `source` is not kept: the server
/// stamps the sender's real id.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub target: String,
    pub data: Box<RawValue>,
}

/// A decoded and validated client event.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    JoinRoom(JoinRoom),
    LeaveRoom(LeaveRoom),
    MediaState(MediaUpdate),
    StopScreenShare(ScreenShareStop),
    Message(Envelope),
}

/// The result of reading an EVENT packet: the event's name (needed for the `error` event even
/// when the payload is bad) and either the event or why it was refused.
#[derive(Debug)]
pub struct Decoded {
    pub name: String,
    pub event: Result<ClientEvent, ProtocolError>,
}

impl ClientEvent {
    /// Reads the JSON array of a socket.io EVENT packet.
    pub fn decode(packet: &str) -> Decoded {
        let args: Vec<&RawValue> = match serde_json::from_str(packet) {
            Ok(args) => args,
            Err(e) => {
                return Decoded {
                    name: String::new(),
                    event: Err(ProtocolError::invalid(format!("malformed JSON: {e}"))),
                };
            }
        };
        let Some((name, rest)) = args.split_first() else {
            return Decoded {
                name: String::new(),
                event: Err(ProtocolError::invalid("event packet has no event name")),
            };
        };
        let name: String = match serde_json::from_str(name.get()) {
            Ok(name) => name,
            Err(_) => {
                return Decoded {
                    name: String::new(),
                    event: Err(ProtocolError::invalid("event name must be a string")),
                };
            }
        };
        let event = Self::parse(&name, rest.first().copied());
        Decoded { name, event }
    }

    /// Validates the payload of the event called `name`.
    pub fn parse(name: &str, payload: Option<&RawValue>) -> Result<ClientEvent, ProtocolError> {
        let Some(payload) = payload else {
            return match name {
                names::JOIN_ROOM
                | names::LEAVE_ROOM
                | names::MEDIA_STATE
                | names::STOP_SCREEN_SHARE
                | names::MESSAGE => Err(ProtocolError::invalid(format!(
                    "{name} needs a payload object"
                ))),
                _ => Err(unknown(name)),
            };
        };
        match name {
            names::JOIN_ROOM => payload_of(name, payload).map(ClientEvent::JoinRoom),
            names::LEAVE_ROOM => payload_of(name, payload).map(ClientEvent::LeaveRoom),
            names::MEDIA_STATE => payload_of(name, payload).map(ClientEvent::MediaState),
            names::STOP_SCREEN_SHARE => {
                let payload: Map<String, Value> = payload_of(name, payload)?;
                let room_id = match payload.get("roomId") {
                    Some(Value::String(id)) => RoomId::try_from(id.clone())
                        .map_err(|e| ProtocolError::invalid(format!("{name}: {e}")))?,
                    Some(_) => {
                        return Err(ProtocolError::invalid(format!(
                            "{name}: roomId must be a string"
                        )));
                    }
                    None => {
                        return Err(ProtocolError::invalid(format!(
                            "{name}: missing field `roomId`"
                        )));
                    }
                };
                Ok(ClientEvent::StopScreenShare(ScreenShareStop {
                    room_id,
                    payload,
                }))
            }
            names::MESSAGE => {
                let envelope: Envelope = payload_of(name, payload)?;
                if envelope.target.is_empty() || envelope.target.len() > TARGET_MAX_BYTES {
                    return Err(ProtocolError::invalid(format!(
                        "{name}: target must be a socket id of 1 to {TARGET_MAX_BYTES} bytes"
                    )));
                }
                Ok(ClientEvent::Message(envelope))
            }
            _ => Err(unknown(name)),
        }
    }
}

/// The event name of a packet, read without parsing the payload, for error reports about
/// packets that are refused before decoding (too large, rate-limited). Names with JSON
/// escapes are not unescaped; an unreadable name is empty.
pub fn peek_event_name(packet: &str) -> &str {
    packet
        .strip_prefix("[\"")
        .and_then(|rest| rest.find('"').map(|end| &rest[..end]))
        .filter(|name| !name.contains('\\'))
        .unwrap_or("")
}

/// Most characters of a client's event name that the server repeats (in `error.event`, error
/// messages and logs). Names are the client's text, unbounded but for --max-payload: a 5 MB
/// name must not become a 5 MB log line or error event.
pub const SHOWN_EVENT_NAME_CHARS: usize = 64;

/// `name` cut to [`SHOWN_EVENT_NAME_CHARS`] characters, at a character boundary.
pub fn shown_event_name(name: &str) -> &str {
    match name.char_indices().nth(SHOWN_EVENT_NAME_CHARS) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

fn unknown(name: &str) -> ProtocolError {
    let name = shown_event_name(name);
    ProtocolError::new(ErrorCode::UnknownEvent, format!("unknown event {name:?}"))
}

/// Reads an event's payload, which must be a JSON object (serde would otherwise also accept an
/// array of the fields in order).
fn payload_of<T: DeserializeOwned>(name: &str, payload: &RawValue) -> Result<T, ProtocolError> {
    if !payload.get().starts_with('{') {
        return Err(ProtocolError::invalid(format!(
            "{name}: the payload must be a JSON object"
        )));
    }
    serde_json::from_str(payload.get()).map_err(|e| ProtocolError::invalid(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(packet: &str) -> ErrorCode {
        ClientEvent::decode(packet).event.unwrap_err().code
    }

    /// A well-formed join decodes, and a missing name becomes empty.
    #[test]
    fn join_room_decodes() {
        let d = ClientEvent::decode(r#"["join-room",{"roomId":"r1","name":"bob"}]"#);
        assert_eq!(d.name, "join-room");
        match d.event.unwrap() {
            ClientEvent::JoinRoom(j) => {
                assert_eq!(j.room_id.as_str(), "r1");
                assert_eq!(j.name.as_str(), "bob");
            }
            other => panic!("unexpected {other:?}"),
        }
        match ClientEvent::decode(r#"["join-room",{"roomId":"r1"}]"#)
            .event
            .unwrap()
        {
            ClientEvent::JoinRoom(j) => assert_eq!(j.name.as_str(), ""),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Every class of bad input maps to a documented code.
    #[test]
    fn bad_input_is_refused_with_codes() {
        assert_eq!(
            code(r#"["join-room",{"roomId":"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(code(r#"[5,{}]"#), ErrorCode::InvalidPayload);
        assert_eq!(code(r#"[]"#), ErrorCode::InvalidPayload);
        assert_eq!(code(r#"["join-room"]"#), ErrorCode::InvalidPayload);
        assert_eq!(code(r#"["join-room","r1"]"#), ErrorCode::InvalidPayload);
        assert_eq!(
            code(r#"["join-room",["r1","eve"]]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["media-state",["r1",true,false]]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["join-room",{"name":"x"}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["join-room",{"roomId":7}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["join-room",{"roomId":"a b"}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["media-state",{"roomId":"r","mic":"yes","cam":true}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r#"["media-state",{"roomId":"r","mic":true}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(code(r#"["stopScreenShare",{}]"#), ErrorCode::InvalidPayload);
        assert_eq!(
            code(r#"["stopScreenShare",{"roomId":1}]"#),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r##"["#rtcio:message",{"target":"","data":{}}]"##),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(r##"["#rtcio:message",{"target":"x"}]"##),
            ErrorCode::InvalidPayload
        );
        assert_eq!(code(r#"["no-such-event",{}]"#), ErrorCode::UnknownEvent);
        assert_eq!(code(r#"["no-such-event"]"#), ErrorCode::UnknownEvent);
    }

    /// The envelope's data survives byte for byte, SDP line endings and unknown fields included.
    #[test]
    fn envelope_data_is_kept_verbatim() {
        let data = r#"{"description":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},"x-extra":[1, 2.50,  {"k":null}]}"#;
        let packet =
            format!(r##"["#rtcio:message",{{"source":"spoof","target":"abc","data":{data}}}]"##);
        match ClientEvent::decode(&packet).event.unwrap() {
            ClientEvent::Message(env) => {
                assert_eq!(env.target, "abc");
                assert_eq!(env.data.get(), data);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The name of a refused packet is found without reading its payload.
    #[test]
    fn peeks_event_names() {
        assert_eq!(
            peek_event_name(r#"["join-room",{"roomId":"x"}]"#),
            "join-room"
        );
        assert_eq!(peek_event_name(r#"["a\"b",1]"#), "");
        assert_eq!(peek_event_name("garbage"), "");
    }

    /// Event names are shown cut to 64 characters, never split inside a character.
    #[test]
    fn shown_event_names_are_bounded() {
        assert_eq!(shown_event_name("join-room"), "join-room");
        let long = "é".repeat(100);
        assert_eq!(shown_event_name(&long).chars().count(), 64);
        let d = ClientEvent::decode(&format!(r#"["{}",{{}}]"#, "n".repeat(5000)));
        let error = d.event.unwrap_err();
        assert!(error.message.len() < 100, "{}", error.message);
    }

    /// stopScreenShare keeps every field the sender put in.
    #[test]
    fn screen_share_keeps_payload() {
        let d = ClientEvent::decode(r#"["stopScreenShare",{"roomId":"r","streamId":"s1"}]"#);
        match d.event.unwrap() {
            ClientEvent::StopScreenShare(s) => {
                assert_eq!(s.room_id.as_str(), "r");
                assert_eq!(s.payload["streamId"], "s1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
