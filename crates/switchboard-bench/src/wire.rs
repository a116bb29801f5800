//! Engine.IO v4 / socket.io v5 text frames, as far as the bench client needs them.
//!
//! Over WebSocket every Engine.IO packet is one text frame: a one-digit packet type followed by
//! its data. Socket.io packets ride in Engine.IO `4` (message) packets, with their own type
//! digit: `40` connect, `42` event, `43` ack, `44` connect error. The default namespace `/`
//! is implied, so no namespace prefix appears. This module only reads and writes strings, so
//! its rules are unit-tested without a server.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Name of the relayed signaling event.
pub const RELAY_EVENT: &str = "#rtcio:message";

/// What one text frame from the server is.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// Engine.IO open packet (`0{...}`), the first frame of a WebSocket session.
    Open,
    /// Engine.IO close (`1`).
    Close,
    /// Engine.IO ping (`2`); the client must answer with a pong (`3`).
    Ping,
    /// Socket.io CONNECT to `/` with the socket id the server gave this client.
    Connect { sid: &'a str },
    /// Socket.io CONNECT_ERROR with the server's JSON payload.
    ConnectError(&'a str),
    /// Socket.io EVENT: name and first argument (raw JSON).
    Event { name: &'a str, payload: &'a str },
    /// Socket.io ACK: id and the JSON array of arguments.
    Ack { id: u64, args: &'a str },
    /// Anything else: a disconnect, a binary event, a frame this client cannot read.
    Other(&'a str),
}

#[derive(Deserialize)]
struct Sid<'a> {
    #[serde(borrow)]
    sid: &'a str,
}

/// An event array: `["name", payload]` (server events carry exactly one argument).
#[derive(Deserialize)]
struct EventArray<'a>(#[serde(borrow)] &'a str, #[serde(borrow)] &'a RawValue);

/// Reads one text frame. Never fails: what it cannot read is [`Frame::Other`].
pub fn parse(text: &str) -> Frame<'_> {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b'0') => return Frame::Open,
        Some(b'1') => return Frame::Close,
        Some(b'2') if text.len() == 1 => return Frame::Ping,
        Some(b'4') => {}
        _ => return Frame::Other(text),
    }
    let body = &text[1..];
    match body.as_bytes().first() {
        Some(b'0') => match serde_json::from_str::<Sid<'_>>(&body[1..]) {
            Ok(Sid { sid }) => Frame::Connect { sid },
            Err(_) => Frame::Other(text),
        },
        Some(b'4') => Frame::ConnectError(&body[1..]),
        Some(b'2') => {
            let array = body[1..].trim_start_matches(|c: char| c.is_ascii_digit());
            match serde_json::from_str::<EventArray<'_>>(array) {
                Ok(EventArray(name, payload)) => Frame::Event {
                    name,
                    payload: payload.get(),
                },
                Err(_) => Frame::Other(text),
            }
        }
        Some(b'3') => {
            let rest = &body[1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            match rest[..digits].parse() {
                Ok(id) => Frame::Ack {
                    id,
                    args: &rest[digits..],
                },
                Err(_) => Frame::Other(text),
            }
        }
        _ => Frame::Other(text),
    }
}

/// The frame that emits `name` with one JSON `payload`, asking for an ack when `ack` is set.
pub fn event(name: &str, payload: &str, ack: Option<u64>) -> String {
    let mut frame = String::with_capacity(name.len() + payload.len() + 16);
    frame.push_str("42");
    if let Some(id) = ack {
        frame.push_str(&id.to_string());
    }
    frame.push_str("[\"");
    frame.push_str(name);
    frame.push_str("\",");
    frame.push_str(payload);
    frame.push(']');
    frame
}

/// A JSON string literal for `text` (quotes and escapes included).
pub fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The `#rtcio:message` frame from `source` to `target` carrying `data` (raw JSON).
pub fn relay(source: &str, target: &str, data: &str) -> String {
    let payload = format!(
        "{{\"source\":{},\"target\":{},\"data\":{data}}}",
        json_string(source),
        json_string(target)
    );
    event(RELAY_EVENT, &payload, None)
}

/// A received `#rtcio:message` envelope; `data` stays raw for the scenario to read.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// Borrowed unless the id holds JSON escapes.
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow, default)]
    pub target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// Reads a `#rtcio:message` payload.
pub fn envelope(payload: &str) -> Option<Envelope<'_>> {
    serde_json::from_str(payload).ok()
}

/// The payload of events that name one socket: `user-connected`, `user-disconnected`,
/// `#rtcio:peer-left` (`id`) and `#rtcio:init-offer` (`source`).
#[derive(Debug, Deserialize)]
pub struct Someone {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

impl Someone {
    pub fn read(payload: &str) -> Option<String> {
        let someone: Someone = serde_json::from_str(payload).ok()?;
        someone.id.or(someone.source)
    }
}

/// `{"roomId": ..., "name": ...}` for `join-room`.
pub fn join_payload(room: &str, name: &str) -> String {
    format!(
        "{{\"roomId\":{},\"name\":{}}}",
        json_string(room),
        json_string(name)
    )
}

/// `{"roomId": ...}` for `leave-room`.
pub fn leave_payload(room: &str) -> String {
    format!("{{\"roomId\":{}}}", json_string(room))
}

/// The peers listed in a `join-room` ack (`[{ok, roomId, self, peers: [{id, ...}]}]`), or
/// `None` when the ack refused the join or cannot be read.
pub fn join_ack_peers(args: &str) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Peer {
        id: String,
    }
    #[derive(Deserialize)]
    struct JoinAck {
        ok: bool,
        #[serde(default)]
        peers: Vec<Peer>,
    }
    let ack = serde_json::from_str::<Vec<JoinAck>>(args)
        .ok()?
        .into_iter()
        .next()?;
    ack.ok
        .then(|| ack.peers.into_iter().map(|p| p.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine.IO control frames are told apart by their first digit.
    #[test]
    fn engine_io_frames() {
        assert_eq!(parse("0{\"sid\":\"x\"}"), Frame::Open);
        assert_eq!(parse("2"), Frame::Ping);
        assert_eq!(parse("1"), Frame::Close);
        assert_eq!(parse("6"), Frame::Other("6"));
    }

    /// CONNECT carries the socket id; CONNECT_ERROR its payload.
    #[test]
    fn socket_io_connect() {
        assert_eq!(parse("40{\"sid\":\"abc\"}"), Frame::Connect { sid: "abc" });
        assert_eq!(
            parse("44{\"message\":\"unauthorized\"}"),
            Frame::ConnectError("{\"message\":\"unauthorized\"}")
        );
    }

    /// Events yield their name and first argument, with or without an ack id.
    #[test]
    fn events_and_acks() {
        assert_eq!(
            parse("42[\"user-connected\",{\"id\":\"a\",\"name\":\"n\"}]"),
            Frame::Event {
                name: "user-connected",
                payload: "{\"id\":\"a\",\"name\":\"n\"}"
            }
        );
        assert_eq!(
            parse("4212[\"x\",{}]"),
            Frame::Event {
                name: "x",
                payload: "{}"
            }
        );
        assert_eq!(
            parse("437[{\"ok\":true}]"),
            Frame::Ack {
                id: 7,
                args: "[{\"ok\":true}]"
            }
        );
        assert!(matches!(parse("42not json"), Frame::Other(_)));
    }

    /// A relay frame the bench writes is one the bench reads back, data untouched.
    #[test]
    fn relay_round_trip() {
        let frame = relay("s\"1", "t", "{\"seq\":3,\"pad\":\"a\\r\\nb\"}");
        let Frame::Event { name, payload } = parse(&frame) else {
            panic!("not an event: {frame}");
        };
        assert_eq!(name, RELAY_EVENT);
        let envelope = envelope(payload).unwrap();
        assert_eq!(envelope.source, "s\"1");
        assert_eq!(envelope.target.as_deref(), Some("t"));
        assert_eq!(envelope.data.get(), "{\"seq\":3,\"pad\":\"a\\r\\nb\"}");
    }

    /// Join acks list the peers' ids; refusals give none.
    #[test]
    fn join_acks() {
        let ok = "[{\"ok\":true,\"roomId\":\"r\",\"self\":\"me\",\"peers\":[{\"id\":\"a\",\"name\":\"x\"}]}]";
        assert_eq!(join_ack_peers(ok), Some(vec!["a".to_string()]));
        let refused = "[{\"ok\":false,\"code\":\"room-full\",\"message\":\"m\"}]";
        assert_eq!(join_ack_peers(refused), None);
    }
}
