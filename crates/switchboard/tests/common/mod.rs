//! A socket.io client for tests: `rust_socketio` 0.6 (async) against a real `switchboard`.
//!
//! Each client's callbacks push everything it receives (events, `error` events, acks) into
//! one channel in arrival order; tests read that channel with a timeout, so they never sleep
//! for a fixed time. The socket id comes from the `self` field of the `join-room` ack
//! (`rust_socketio` does not expose its sid).
//!
//! Shared by several test binaries, each of which uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use switchboard_testkit::Node;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest wait for anything a test expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// Something a client received, in arrival order.
#[derive(Debug)]
pub enum Got {
    /// The server's CONNECT packet.
    Connected,
    /// A server event other than `error`, with its arguments.
    Event(String, Vec<Value>),
    /// An `error` event (or a client-side error report) with its arguments.
    Error(Vec<Value>),
    /// The answer to the ack-requesting emit tagged `u64`.
    Ack(u64, Vec<Value>),
}

/// One connected client and what it has received.
pub struct Peer {
    pub client: Client,
    tx: mpsc::UnboundedSender<Got>,
    rx: mpsc::UnboundedReceiver<Got>,
    next_tag: u64,
    /// The socket id, known once the client has joined a room.
    pub id: String,
}

pub fn values(payload: Payload) -> Vec<Value> {
    match payload {
        Payload::Text(values) => values,
        Payload::Binary(bytes) => vec![json!({ "binary": bytes.len() })],
        #[allow(deprecated)]
        Payload::String(text) => vec![Value::String(text)],
    }
}

impl Peer {
    /// Connects over WebSocket and waits for the server's CONNECT packet; events may be
    /// emitted at once.
    pub async fn connect(node: &Node) -> Peer {
        Peer::connect_over(node, TransportType::Websocket).await
    }

    /// Connects over `transport` (WebSocket only, or long-polling only) and waits for the
    /// server's CONNECT packet.
    pub async fn connect_over(node: &Node, transport: TransportType) -> Peer {
        let (tx, rx) = mpsc::unbounded_channel();
        let on_connect = tx.clone();
        let on_error = tx.clone();
        let on_any = tx.clone();
        let client = ClientBuilder::new(node.url())
            .transport_type(transport)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                let _ = on_connect.send(Got::Connected);
                async {}.boxed()
            })
            .on(Event::Error, move |payload, _| {
                let _ = on_error.send(Got::Error(values(payload)));
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let _ = on_any.send(Got::Event(event.to_string(), values(payload)));
                async {}.boxed()
            })
            .connect()
            .await
            .expect("socket.io connect");
        let mut peer = Peer {
            client,
            tx,
            rx,
            next_tag: 1,
            id: String::new(),
        };
        match peer.next().await {
            Got::Connected => {}
            other => panic!("expected the CONNECT packet, got {other:?}"),
        }
        peer
    }

    /// The next thing received; panics after [`WAIT`].
    pub async fn next(&mut self) -> Got {
        timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("client {:?}: nothing within {WAIT:?}", self.id))
            .expect("the channel cannot close while the peer holds a sender")
    }

    /// The next thing received must be the event `name` with exactly one argument.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        match self.next().await {
            Got::Event(got, mut args) if got == name => {
                assert_eq!(args.len(), 1, "`{name}` must carry exactly one argument");
                args.remove(0)
            }
            other => panic!("client {:?}: expected `{name}`, got {other:?}", self.id),
        }
    }

    /// Emits `name` with an ack request and returns what came before the ack, and the ack's
    /// single argument.
    pub async fn call(&mut self, name: &str, payload: Value) -> (Vec<Got>, Value) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let tx = self.tx.clone();
        self.client
            .emit_with_ack(name, payload, WAIT, move |payload, _| {
                let _ = tx.send(Got::Ack(tag, values(payload)));
                async {}.boxed()
            })
            .await
            .expect("emit_with_ack");
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Got::Ack(got, args) if got == tag => return (before, ack_body(args)),
                other => before.push(other),
            }
        }
    }

    /// `join-room` with an ack; records the socket id from the ack's `self`.
    pub async fn join(&mut self, room: &str, name: &str) -> (Vec<Got>, Value) {
        let (before, ack) = self
            .call("join-room", json!({"roomId": room, "name": name}))
            .await;
        assert_eq!(ack["ok"], true, "join-room {room} refused: {ack}");
        assert_eq!(ack["roomId"], room);
        self.id = ack["self"]
            .as_str()
            .expect("join-room ack has `self`")
            .to_owned();
        (before, ack)
    }
}

/// The single argument of an ack. `rust_socketio` hands an ack's JSON array over as one
/// value; unwrap it.
pub fn ack_body(mut args: Vec<Value>) -> Value {
    assert_eq!(args.len(), 1, "ack: {args:?}");
    match args.remove(0) {
        Value::Array(mut inner) => {
            assert_eq!(
                inner.len(),
                1,
                "an ack carries exactly one argument: {inner:?}"
            );
            inner.remove(0)
        }
        other => other,
    }
}
