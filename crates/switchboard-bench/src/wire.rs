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

/// The bench's relay probe: the `data` of every envelope the `relay` and `churn` scenarios
/// send, `{"seq":N,"t":T,"pad":"…"}` (sequence number and send time in microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Probe {
    pub seq: u64,
    pub t: u64,
}

/// Pre-built `#rtcio:message` frames from one peer to another carrying a [`Probe`]: all but the
/// two numbers is built once, so an envelope costs one allocation and two integer formats.
/// The bytes are exactly those of [`relay`] with the probe as data; `pad` is written as is, so
/// it must need no JSON escapes (the bench pads with `x`).
#[derive(Debug, Clone)]
pub struct ProbeFrames {
    /// `42["#rtcio:message",{"source":…,"target":…,"data":{"seq":`
    head: String,
    /// `,"pad":"…"}}]`
    tail: String,
}

impl ProbeFrames {
    pub fn new(source: &str, target: &str, pad: &str) -> ProbeFrames {
        let mut head = String::with_capacity(source.len() + target.len() + 64);
        head.push_str("42[\"");
        head.push_str(RELAY_EVENT);
        head.push_str("\",{\"source\":");
        head.push_str(&json_string(source));
        head.push_str(",\"target\":");
        head.push_str(&json_string(target));
        head.push_str(",\"data\":{\"seq\":");
        let tail = format!(",\"pad\":\"{pad}\"}}}}]");
        ProbeFrames { head, tail }
    }

    /// The frame carrying `probe`.
    pub fn frame(&self, probe: Probe) -> String {
        let mut frame = String::with_capacity(self.head.len() + self.tail.len() + 48);
        frame.push_str(&self.head);
        push_u64(&mut frame, probe.seq);
        frame.push_str(",\"t\":");
        push_u64(&mut frame, probe.t);
        frame.push_str(&self.tail);
        frame
    }
}

/// Appends `n` in decimal, without going through `core::fmt`.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Reads a relayed probe frame without building any JSON value: `Some((source, probe))` only
/// when `text` is exactly a `#rtcio:message` event whose payload object holds `source`, an
/// optional `target` (plain strings: no escapes), and `data` exactly as [`ProbeFrames`] writes
/// it with this `pad`, each once, in any order, without whitespace. Anything else gives `None`
/// and the caller reads the frame with [`parse`], [`envelope`] and serde, so the answer never
/// differs from theirs; this only makes the common case cheap.
pub fn scan_probe<'a>(text: &'a str, pad: &str) -> Option<(&'a str, Probe)> {
    let rest = text
        .strip_prefix("42[\"")?
        .strip_prefix(RELAY_EVENT)?
        .strip_prefix("\",{")?;
    let mut fields = rest.strip_suffix("}]")?;
    let (mut source, mut target, mut probe) = (None, None, None);
    loop {
        let (key, after) = plain_string(fields)?;
        let after = after.strip_prefix(':')?;
        fields = match key {
            "source" if source.is_none() => {
                let (value, after) = plain_string(after)?;
                source = Some(value);
                after
            }
            "target" if target.is_none() => {
                let (value, after) = plain_string(after)?;
                target = Some(value);
                after
            }
            "data" if probe.is_none() => {
                let after = after.strip_prefix("{\"seq\":")?;
                let (seq, after) = json_u64(after)?;
                let after = after.strip_prefix(",\"t\":")?;
                let (t, after) = json_u64(after)?;
                let after = after
                    .strip_prefix(",\"pad\":\"")?
                    .strip_prefix(pad)?
                    .strip_prefix("\"}")?;
                probe = Some(Probe { seq, t });
                after
            }
            _ => return None,
        };
        if fields.is_empty() {
            break;
        }
        fields = fields.strip_prefix(',')?;
    }
    Some((source?, probe?))
}

/// A JSON string at the start of `text` that holds no escapes, and what follows it.
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let end = body.find(['"', '\\'])?;
    if body.as_bytes()[end] != b'"' || body[..end].bytes().any(|b| b < 0x20) {
        return None;
    }
    Some((&body[..end], &body[end + 1..]))
}

/// A JSON unsigned integer at the start of `text` (no leading zeros, fits in u64), and what
/// follows it.
fn json_u64(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && text.starts_with('0')) {
        return None;
    }
    let mut n: u64 = 0;
    for b in text[..digits].bytes() {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((n, &text[digits..]))
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

    /// Pre-built probe frames are byte for byte what `relay` builds, and the scanner reads
    /// them back; anything it is not sure of is left to the full parser.
    #[test]
    fn probe_frames() {
        let pad = "x".repeat(100);
        let frames = ProbeFrames::new("s\"1", "t", &pad);
        for (seq, t) in [(0, 0), (7, 1_234_567), (u64::MAX, u64::MAX)] {
            let frame = frames.frame(Probe { seq, t });
            let data = format!("{{\"seq\":{seq},\"t\":{t},\"pad\":\"{pad}\"}}");
            assert_eq!(frame, relay("s\"1", "t", &data));
        }
        let frames = ProbeFrames::new("a", "b", &pad);
        let frame = frames.frame(Probe { seq: 42, t: 99 });
        assert_eq!(
            scan_probe(&frame, &pad),
            Some(("a", Probe { seq: 42, t: 99 }))
        );
        // Fields in another order, or without target, are read too.
        let data = format!("{{\"seq\":3,\"t\":4,\"pad\":\"{pad}\"}}");
        let reordered = format!("42[\"{RELAY_EVENT}\",{{\"data\":{data},\"source\":\"a\"}}]");
        assert_eq!(
            scan_probe(&reordered, &pad),
            Some(("a", Probe { seq: 3, t: 4 }))
        );
        // Escapes (the sender's id was escaped), another pad, duplicates, extra fields,
        // whitespace, leading zeros, overflow and ack ids go to the full parser.
        let escaped = ProbeFrames::new("s\"1", "t", &pad).frame(Probe { seq: 1, t: 1 });
        let other_pad = ProbeFrames::new("a", "b", "y").frame(Probe { seq: 1, t: 1 });
        for text in [
            escaped.as_str(),
            other_pad.as_str(),
            &format!("42[\"{RELAY_EVENT}\",{{\"source\":\"a\",\"source\":\"b\",\"data\":{data}}}]"),
            &format!("42[\"{RELAY_EVENT}\",{{\"source\":\"a\",\"x\":1,\"data\":{data}}}]"),
            &format!("42[\"{RELAY_EVENT}\",{{\"source\": \"a\",\"data\":{data}}}]"),
            &format!("42[\"{RELAY_EVENT}\",{{\"source\":\"a\"}}]"),
            &format!(
                "42[\"{RELAY_EVENT}\",{{\"source\":\"a\",\"data\":{{\"seq\":03,\"t\":4,\"pad\":\"{pad}\"}}}}]"
            ),
            &format!(
                "42[\"{RELAY_EVENT}\",{{\"source\":\"a\",\"data\":{{\"seq\":99999999999999999999,\"t\":4,\"pad\":\"{pad}\"}}}}]"
            ),
            &format!("421[\"{RELAY_EVENT}\",{{\"source\":\"a\",\"data\":{data}}}]"),
            "42[\"user-connected\",{\"id\":\"a\"}]",
        ] {
            assert_eq!(scan_probe(text, &pad), None, "{text}");
        }
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
