//! Hand-written Engine.IO v4 / socket.io v5 frames (over a plain WebSocket, or raw HTTP
//! long-polling) against a real `switchboard` process.
//!
//! The official clients never send a malformed packet; these tests do, and check each answer
//! against `docs/protocol.md`. A readable but refused event gets an `error` event, changes
//! nothing, keeps the connection open and never reaches another socket; an unreadable packet
//! closes that one connection. Every odd frame is sent by a socket that shares a room with a
//! bystander. After a refusal the sender proves its connection still serves (a `join-room`
//! with ack, then a `media-state`), and the bystander's *next* frame must be that
//! `media-state`: the server handles a socket's events in order, so anything the odd frame had
//! caused would have reached the bystander first. No fixed sleeps are needed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_testkit::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::{self, Message};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// Longest wait for any single frame.
const WAIT: Duration = Duration::from_secs(5);
/// The room the sender and the bystander share.
const ROOM: &str = "odd";

/// One socket.io packet (or transport event) as the raw client saw it.
#[derive(Debug)]
enum Frame {
    /// `42[name, args...]`, with the frame's text after `42`.
    Event {
        name: String,
        args: Vec<Value>,
        raw: String,
    },
    /// `43<id>[args...]`
    Ack { id: u64, args: Vec<Value> },
    /// Any other frame, verbatim (for example `1`, the Engine.IO close packet).
    Other(String),
    /// The connection ended: close frame, error or end of stream.
    Closed(String),
}

/// `42[name, payload]`, or `42<id>[name, payload]` with an ack id.
fn event(ack: Option<u64>, name: &str, payload: &Value) -> String {
    let id = ack.map(|id| id.to_string()).unwrap_or_default();
    format!("42{id}{}", json!([name, payload]))
}

/// A socket.io client on the default namespace, speaking raw frames over one WebSocket.
/// Engine.IO pings are answered in the background; dropping it closes the connection.
struct Raw {
    out: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Frame>,
    /// The socket id from the `40{"sid":...}` connect packet.
    sid: String,
    next_ack: u64,
}

impl Raw {
    /// Opens `ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket`, reads the open
    /// packet, sends `40` and reads `40{"sid":...}`. Events may be sent at once.
    async fn connect(node: &Node) -> Raw {
        let url = format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            node.port()
        );
        let (mut ws, _) = timeout(WAIT, connect_async(url))
            .await
            .expect("WebSocket connect timed out")
            .expect("WebSocket connect");
        sid_in(&handshake_text(&mut ws).await, "0");
        ws.send(Message::text("40")).await.expect("send 40");
        let sid = sid_in(&handshake_text(&mut ws).await, "40");

        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        // Weak, so that dropping the `Raw` ends the writer and closes the connection.
        let pong = out.downgrade();
        tokio::spawn(async move {
            let reason = loop {
                let frame = match stream.next().await {
                    Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                        if let Some(pong) = pong.upgrade() {
                            let _ = pong.send(Message::text("3"));
                        }
                        continue;
                    }
                    Some(Ok(Message::Text(text))) => parse(text.as_str()),
                    Some(Ok(Message::Close(frame))) => break format!("close frame {frame:?}"),
                    Some(Ok(other)) => Frame::Other(format!("{other:?}")),
                    Some(Err(e)) => break format!("error: {e}"),
                    None => break "end of stream".to_owned(),
                };
                if tx.send(frame).is_err() {
                    return;
                }
            };
            let _ = tx.send(Frame::Closed(reason));
        });
        Raw {
            out,
            rx,
            sid,
            next_ack: 1,
        }
    }

    fn send(&self, text: impl Into<String>) {
        self.send_message(Message::text(text.into()));
    }

    fn send_message(&self, message: Message) {
        self.out.send(message).expect("writer task is gone");
    }

    /// The next frame; panics after [`WAIT`].
    async fn next(&mut self) -> Frame {
        timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("socket {}: no frame within {WAIT:?}", self.sid))
            .unwrap_or(Frame::Closed("reader task ended".into()))
    }

    /// The next frame, which must be the event `name` with exactly one argument; returns it.
    async fn expect_event(&mut self, name: &str) -> Value {
        match self.next().await {
            Frame::Event {
                name: got,
                mut args,
                ..
            } if got == name => {
                assert_eq!(args.len(), 1, "`{name}` must carry exactly one argument");
                args.remove(0)
            }
            other => panic!(
                "socket {}: expected event `{name}`, got {other:?}",
                self.sid
            ),
        }
    }

    /// Sends `42<id>[name, payload]` and returns the frames that came before its ack, and the
    /// ack's single argument.
    async fn call(&mut self, name: &str, payload: Value) -> (Vec<Frame>, Value) {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(event(Some(id), name, &payload));
        self.ack(id).await
    }

    /// Waits for the ack `43<id>[...]`, collecting the frames that come first.
    async fn ack(&mut self, id: u64) -> (Vec<Frame>, Value) {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Frame::Ack { id: got, mut args } if got == id => {
                    assert_eq!(args.len(), 1, "an ack carries exactly one argument");
                    return (before, args.remove(0));
                }
                Frame::Closed(reason) => panic!(
                    "socket {}: connection closed ({reason}) while waiting for ack {id}; \
                     frames before: {before:?}",
                    self.sid
                ),
                frame => before.push(frame),
            }
        }
    }

    /// `join-room` with an ack, which must accept it; returns the frames before the ack and
    /// the ack.
    async fn join(&mut self, room: &str, name: &str) -> (Vec<Frame>, Value) {
        let (before, ack) = self
            .call("join-room", json!({"roomId": room, "name": name}))
            .await;
        assert_eq!(ack["ok"], true, "join-room {room} refused: {ack}");
        assert_eq!(
            ack["self"],
            self.sid.as_str(),
            "ack `self` is the socket id"
        );
        (before, ack)
    }

    /// Proves the connection still serves: joining a fresh room is acked with no peers, and
    /// nothing stray arrives first.
    async fn assert_serves(&mut self, room: &str) {
        let (before, ack) = self.join(room, "still-here").await;
        assert!(before.is_empty(), "stray frames before the ack: {before:?}");
        assert_eq!(ack["roomId"], room);
        assert_eq!(ack["peers"], json!([]));
    }

    /// Reads frames until the connection ends; it must have sent only the close packet `1`.
    async fn expect_closed(&mut self, context: &str) {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Frame::Closed(_) => break,
                other => seen.push(other),
            }
        }
        assert!(
            matches!(seen.as_slice(), [Frame::Other(close)] if close == "1"),
            "{context}: expected only the close packet `1` before the close, got {seen:?}"
        );
    }

    /// The next two frames introduce the newcomer `id`: `user-connected`, then init-offer.
    async fn expect_introduction(&mut self, id: &str) {
        let joined = self.expect_event("user-connected").await;
        assert_eq!(joined["id"], id);
        let offer = self.expect_event("#rtcio:init-offer").await;
        assert_eq!(offer, json!({"source": id}));
    }

    /// The next two frames announce that the socket `id` left: `#rtcio:peer-left` then
    /// `user-disconnected`.
    async fn expect_departure(&mut self, id: &str, context: &str) {
        let left = self.expect_event("#rtcio:peer-left").await;
        assert_eq!(left, json!({"id": id}), "{context}");
        let gone = self.expect_event("user-disconnected").await;
        assert_eq!(gone, json!({"id": id}), "{context}");
    }
}

/// A text frame during the handshake; Engine.IO pings are answered on the way.
async fn handshake_text<S>(ws: &mut S) -> String
where
    S: StreamExt<Item = Result<Message, tungstenite::Error>> + SinkExt<Message> + Unpin,
{
    loop {
        match timeout(WAIT, ws.next())
            .await
            .expect("handshake: no frame within 5 s")
        {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                let _ = ws.send(Message::text("3")).await;
            }
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            other => panic!("handshake: expected a text frame, got {other:?}"),
        }
    }
}

/// The `sid` in `packet`, which must be `prefix` and a JSON object: an open packet
/// (`0{"sid":...}`) or a connect packet (`40{"sid":...}`).
fn sid_in(packet: &str, prefix: &str) -> String {
    let sid = packet.strip_prefix(prefix).and_then(|body| {
        let body: Value = serde_json::from_str(body).ok()?;
        Some(body["sid"].as_str()?.to_owned())
    });
    sid.unwrap_or_else(|| panic!("expected {prefix}{{\"sid\":...}}, got {packet:?}"))
}

fn parse(text: &str) -> Frame {
    if let Some(body) = text.strip_prefix("42") {
        if let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(body)
            && let Some(Value::String(name)) = args.first().cloned()
        {
            args.remove(0);
            return Frame::Event {
                name,
                args,
                raw: body.to_owned(),
            };
        }
    } else if let Some(body) = text.strip_prefix("43") {
        let digits = body.chars().take_while(char::is_ascii_digit).count();
        if let (Ok(id), Ok(Value::Array(args))) = (
            body[..digits].parse(),
            serde_json::from_str::<Value>(&body[digits..]),
        ) {
            return Frame::Ack { id, args };
        }
    }
    Frame::Other(text.to_owned())
}

/// A bystander in [`ROOM`], then a sender that joins it too. Both have drained the
/// introductions, so their next frames are whatever the test causes.
async fn sender_and_bystander(node: &Node) -> (Raw, Raw) {
    let mut bystander = Raw::connect(node).await;
    let (before, _) = bystander.join(ROOM, "bystander").await;
    assert!(before.is_empty(), "first member got {before:?}");
    let mut sender = Raw::connect(node).await;
    let (before, ack) = sender.join(ROOM, "sender").await;
    assert_eq!(before.len(), 1, "sender's backfill: {before:?}");
    assert_eq!(ack["peers"][0]["id"], bystander.sid.as_str());
    bystander.expect_introduction(&sender.sid).await;
    (sender, bystander)
}

/// After an odd frame (and its answer, already read): the sender's connection still serves,
/// and the bystander's next frame is the sender's following `media-state`, so the odd frame
/// reached the bystander not at all.
async fn assert_unharmed(sender: &mut Raw, bystander: &mut Raw) {
    sender.assert_serves("after-odd-frame").await;
    let state = json!({"roomId": ROOM, "mic": true, "cam": false});
    let (before, ack) = sender.call("media-state", state).await;
    assert!(before.is_empty(), "stray frames before the ack: {before:?}");
    assert_eq!(ack, json!({"ok": true}));
    let media = bystander.expect_event("media-state").await;
    assert_eq!(
        media,
        json!({"id": sender.sid, "roomId": ROOM, "mic": true, "cam": false})
    );
}

/// A readable but refused event gets one `error` naming it and harms neither sender nor roommate.
#[tokio::test]
async fn refused_events_get_an_error_event_and_do_no_harm() {
    let over_max_payload = format!(
        r##"42["#rtcio:message",{{"target":"nobody","data":"{}"}}]"##,
        "y".repeat(100 * 1024)
    );
    // Over --max-payload but within a WebSocket message (16 × --max-payload by default).
    let most_of_a_megabyte = format!(
        r#"42["join-room",{{"roomId":"big","name":"{}"}}]"#,
        "x".repeat(900 * 1024)
    );
    let cases = [
        (r#"42["join-room","room1"]"#, "invalid-payload", "join-room"),
        (r#"42["join-room"]"#, "invalid-payload", "join-room"),
        (
            r#"42["no-such-event",{}]"#,
            "unknown-event",
            "no-such-event",
        ),
        // A binary attachment: sent with the binary frame it announces.
        (
            r#"451-["join-room",{"_placeholder":true,"num":0}]"#,
            "invalid-payload",
            "join-room",
        ),
        (&over_max_payload, "payload-too-large", "#rtcio:message"),
        (&most_of_a_megabyte, "payload-too-large", "join-room"),
    ];
    for (frame, code, event) in cases {
        let what = &frame[..frame.len().min(60)];
        let node = Node::spawn(BIN, &[]);
        let (mut sender, mut bystander) = sender_and_bystander(&node).await;
        sender.send(frame);
        if frame.starts_with("451-") {
            sender.send_message(Message::binary(vec![0u8, 1, 2, 255]));
        }
        let error = sender.expect_event("error").await;
        assert_eq!(error["code"], code, "{what}: {error}");
        assert_eq!(error["event"], event, "{what}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: error event without a message: {error}"
        );
        assert_unharmed(&mut sender, &mut bystander).await;
    }
}

/// Arguments after the payload are ignored (no error is defined): the event is applied and acked.
#[tokio::test]
async fn extra_arguments_are_ignored() {
    let node = Node::spawn(BIN, &[]);
    let (mut sender, mut bystander) = sender_and_bystander(&node).await;
    sender.send(r#"429["join-room",{"roomId":"extra-args","name":"x"},"extra",1,{"a":[]}]"#);
    let (before, ack) = sender.ack(9).await;
    assert!(before.is_empty(), "stray frames before the ack: {before:?}");
    assert_eq!(
        ack,
        json!({"ok": true, "roomId": "extra-args", "self": sender.sid, "peers": []})
    );
    assert_unharmed(&mut sender, &mut bystander).await;
}

/// A packet without a readable event name closes that connection only; the room sees it leave.
#[tokio::test]
async fn unreadable_packets_close_only_that_connection() {
    for frame in [
        r#"42["join-room",{"roomId":"#,   // malformed JSON
        r#"42{"roomId":"odd"}"#,          // not an array
        r#"42"join-room""#,               // a bare string
        "42[]",                           // no event name
        r#"42[1,{"roomId":"odd"}]"#,      // a numeric name
        r#"42["a\"b",{"roomId":"odd"}]"#, // a name with a JSON escape
    ] {
        let node = Node::spawn(BIN, &[]);
        let (mut sender, mut bystander) = sender_and_bystander(&node).await;
        sender.send(frame);
        sender.expect_closed(frame).await;
        bystander.expect_departure(&sender.sid, frame).await;
        bystander.assert_serves("after-close").await;
    }
}

/// A WebSocket message over --max-polling-body (16 × --max-payload) closes that connection
/// before it is buffered whole, as an oversized polling body does; the room sees it leave.
#[tokio::test]
async fn oversized_websocket_message_closes_only_that_connection() {
    let node = Node::spawn(BIN, &[]);
    let (mut sender, mut bystander) = sender_and_bystander(&node).await;
    let two_megabytes = format!(
        r#"42["join-room",{{"roomId":"big","name":"{}"}}]"#,
        "x".repeat(2 * 1024 * 1024)
    );
    sender.send(two_megabytes);
    loop {
        match sender.next().await {
            Frame::Closed(_) => break,
            Frame::Other(close) if close == "1" => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
    bystander
        .expect_departure(&sender.sid, "oversized message")
        .await;
    bystander.assert_serves("after-close").await;
}

/// One HTTP/1.0 request to `/socket.io/?EIO=4&transport=polling{query}` (a POST when `body`
/// is given); returns the status and the response body.
async fn polling_request(node: &Node, query: &str, body: Option<&str>) -> (u16, String) {
    let path = format!("/socket.io/?EIO=4&transport=polling{query}");
    let request = match body {
        None => format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
        Some(body) => format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    };
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", node.port())).await?;
        // One write: the server has the whole body before an early 413, so no reset loses it.
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{path}: no response within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let response = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (status.expect("HTTP status"), body.to_owned())
}

/// Long-polls the session `&sid=...` until a packet starting with `prefix` arrives, answering
/// pings and skipping anything else; returns that packet.
async fn poll_until(node: &Node, session: &str, prefix: &str) -> String {
    loop {
        let (status, body) = polling_request(node, session, None).await;
        assert_eq!(status, 200, "poll: {body}");
        for packet in body.split('\x1e') {
            if packet == "2" {
                assert_eq!(polling_request(node, session, Some("3")).await.0, 200);
            } else if packet.starts_with(prefix) {
                return packet.to_owned();
            }
        }
    }
}

/// A polling body over `--max-polling-body` gets 413 and ends that session only; others go on.
#[tokio::test]
async fn oversized_polling_body_closes_only_that_session() {
    let limits = ["--max-payload", "1024", "--max-polling-body", "4096"];
    let node = Node::spawn(BIN, &limits);
    let mut bystander = Raw::connect(&node).await;
    bystander.join(ROOM, "bystander").await;

    let post = async |session: &str, body: &str| polling_request(&node, session, Some(body)).await;
    let ok = (200, "ok".to_owned());
    let session = format!("&sid={}", sid_in(&poll_until(&node, "", "0").await, "0"));
    assert_eq!(post(&session, "40").await, ok);
    let sid = sid_in(&poll_until(&node, &session, "40").await, "40");
    let join = json!({"roomId": ROOM, "name": "poller"});
    assert_eq!(
        post(&session, &event(Some(1), "join-room", &join)).await,
        ok
    );
    let ack = poll_until(&node, &session, "431").await;
    let ack: Value = serde_json::from_str(&ack[3..]).expect("ack is JSON");
    assert_eq!(ack[0]["ok"], true, "{ack}");
    assert_eq!(ack[0]["self"], sid.as_str(), "{ack}");
    bystander.expect_introduction(&sid).await;

    let name = "z".repeat(5000);
    let oversized = event(None, "join-room", &json!({"roomId": "big", "name": name}));
    let (status, _) = post(&session, &oversized).await;
    assert_eq!(status, 413, "a body over --max-polling-body");
    bystander.expect_departure(&sid, "oversized body").await;
    let (status, body) = polling_request(&node, &session, None).await;
    assert_eq!(status, 400, "the session is gone: {body}");
    assert!(body.contains("Session ID unknown"), "{body}");
    bystander.assert_serves("after-close").await;
}

/// An event sent right after the `40{sid}` connect packet is always handled, never dropped.
#[tokio::test]
async fn first_event_after_connect_is_never_lost() {
    let node = Node::spawn(BIN, &[]);
    for attempt in 0..100 {
        let mut socket = Raw::connect(&node).await;
        let room = format!("race-{attempt}");
        let join = json!({"roomId": room, "name": "x"});
        let (before, ack) = socket.call("join-room", join).await;
        assert!(before.is_empty(), "attempt {attempt}: {before:?}");
        assert_eq!(
            ack,
            json!({"ok": true, "roomId": room, "self": socket.sid, "peers": []}),
            "attempt {attempt}"
        );
    }
}

/// Sends `count` `#rtcio:message` envelopes `{seq}` from `a` to `b` back-to-back, then a
/// `media-state` marker with an ack (re-sent while `a` is over its rate). Returns the seqs `b`
/// received, in arrival order (each checked for the server-stamped source and an unchanged
/// envelope), and the `error` events the envelopes caused at `a`.
async fn burst(a: &mut Raw, b: &mut Raw, count: u64) -> (Vec<u64>, Vec<Value>) {
    for seq in 0..count {
        let envelope = json!({"source": "spoofed", "target": b.sid, "data": {"seq": seq}});
        a.send(event(None, "#rtcio:message", &envelope));
    }
    let deadline = Instant::now() + WAIT;
    let mut errors = Vec::new();
    loop {
        let marker = json!({"roomId": ROOM, "mic": false, "cam": false});
        let (before, ack) = a.call("media-state", marker).await;
        errors.extend(before.into_iter().map(|frame| match frame {
            Frame::Event { name, mut args, .. } if name == "error" => args.remove(0),
            other => panic!("A got {other:?}"),
        }));
        if ack == json!({"ok": true}) {
            break;
        }
        assert_eq!(ack["code"], "rate-limited", "marker refused: {ack}");
        // The refused marker's own `error` event came right before its ack.
        let own = errors.pop().expect("a refusal comes with an error event");
        assert_eq!(own["event"], "media-state", "{own}");
        assert!(Instant::now() < deadline, "A stayed rate-limited");
    }
    let mut seqs = Vec::new();
    loop {
        match b.next().await {
            Frame::Event { name, args, .. } if name == "#rtcio:message" => {
                let seq = args[0]["data"]["seq"].as_u64().expect("seq");
                assert_eq!(
                    args,
                    [json!({"source": a.sid, "target": b.sid, "data": {"seq": seq}})],
                    "envelope {seq}"
                );
                seqs.push(seq);
            }
            Frame::Event { name, .. } if name == "media-state" => break,
            other => panic!("B got {other:?}"),
        }
    }
    (seqs, errors)
}

/// Bursts within `--rate-burst` (all 400 by default, 500 of 1000) arrive whole, in order, stamped.
#[tokio::test]
async fn bursts_within_rate_burst_all_arrive_in_order() {
    // The sender's `join-room` spent one token of the default burst.
    for (args, count) in [(&[][..], 399), (&["--rate-burst", "1000"][..], 500)] {
        let node = Node::spawn(BIN, args);
        let (mut a, mut b) = sender_and_bystander(&node).await;
        let (seqs, errors) = burst(&mut a, &mut b, count).await;
        assert_eq!(errors, Vec::<Value>::new(), "{args:?}: envelopes refused");
        assert_eq!(seqs, (0..count).collect::<Vec<_>>(), "{args:?}");
    }
}

/// `count` envelopes at the default `--rate-burst` of 400: a full burst arrives first, all that
/// arrive keep their order, and every other envelope gets its `rate-limited` error event.
async fn assert_burst_beyond_rate_burst(count: u64) {
    // The default burst, less the token the sender's `join-room` spent.
    const ADMITTED: u64 = 400 - 1;
    let node = Node::spawn(BIN, &[]);
    let (mut a, mut b) = sender_and_bystander(&node).await;
    let (seqs, errors) = burst(&mut a, &mut b, count).await;
    let first: Vec<u64> = seqs.iter().copied().take(ADMITTED as usize).collect();
    assert_eq!(
        first,
        (0..ADMITTED).collect::<Vec<_>>(),
        "a full burst arrives"
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "envelopes were reordered: {seqs:?}"
    );
    assert!(!errors.is_empty(), "{count} envelopes in a burst of 400");
    for error in &errors {
        assert_eq!(error["code"], "rate-limited", "{error}");
        assert_eq!(error["event"], "#rtcio:message", "{error}");
    }
    assert_eq!(
        seqs.len() + errors.len(),
        count as usize,
        "every envelope is either delivered or refused with an error event"
    );
}

/// A burst beyond `--rate-burst` (500 at 400) is refused beyond the burst, never reordered.
#[tokio::test]
async fn burst_beyond_rate_burst_is_refused_never_reordered() {
    assert_burst_beyond_rate_burst(500).await;
}

/// A flood (1000 at a burst of 400) still gets one `rate-limited` error event per refusal.
#[tokio::test]
async fn flood_gets_an_error_event_per_refusal() {
    assert_burst_beyond_rate_burst(1000).await;
}

/// An envelope's `data` is relayed as the exact JSON text sent (spacing, escapes, `\r\n`).
#[tokio::test]
async fn envelope_data_is_forwarded_byte_for_byte() {
    let node = Node::spawn(BIN, &[]);
    let (a, mut b) = sender_and_bystander(&node).await;
    let data = concat!(
        r#"{ "description" : {"type":"offer","#,
        r#""sdp":"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\n"}"#,
        r#", "x-new":[1.50, 1e3, "\u00e9\/", {"k":null}] }"#
    );
    a.send(format!(
        r##"42["#rtcio:message",{{"source":"spoofed","target":"{}","data":{data}}}]"##,
        b.sid
    ));
    match b.next().await {
        Frame::Event { name, raw, .. } if name == "#rtcio:message" => {
            assert!(
                raw.contains(&format!(r#""data":{data}"#)),
                "data was altered; frame: {raw}"
            );
            let envelope: Value = serde_json::from_str(&raw).expect("JSON");
            assert_eq!(envelope[1]["source"], a.sid.as_str());
        }
        other => panic!("expected the relayed envelope, got {other:?}"),
    }
}
