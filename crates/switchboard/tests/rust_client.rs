//! A Rust socket.io client (`rust_socketio` 0.6, async, see `common`) against a real
//! `switchboard` process.

mod common;

use std::time::Duration;

use common::{Got, Peer, WAIT};
use serde_json::{Value, json};
use switchboard_testkit::Node;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Alice joins `room` first, then Bob; both have seen the introductions and nothing else.
async fn alice_and_bob(node: &Node, room: &str) -> (Peer, Peer) {
    let mut alice = Peer::connect(node).await;
    let (before, _) = alice.join(room, "alice").await;
    assert!(before.is_empty(), "alice got {before:?}");
    let mut bob = Peer::connect(node).await;
    bob.join(room, "bob").await;
    alice.expect_event("user-connected").await;
    alice.expect_event("#rtcio:init-offer").await;
    (alice, bob)
}

/// B joins A's room: B gets `user-connected {A}` and the ack; A gets `user-connected`, init-offer.
#[tokio::test]
async fn second_peer_is_introduced_both_ways() {
    let node = Node::spawn(BIN, &[]);
    let mut alice = Peer::connect(&node).await;
    let (before, ack) = alice.join("intro", "alice").await;
    assert!(before.is_empty(), "first member got {before:?}");
    assert_eq!(
        ack,
        json!({"ok": true, "roomId": "intro", "self": alice.id, "peers": []})
    );

    let mut bob = Peer::connect(&node).await;
    let (before, ack) = bob.join("intro", "bob").await;
    assert_ne!(bob.id, alice.id);
    match before.as_slice() {
        [Got::Event(name, args)] if name == "user-connected" => {
            assert_eq!(args, &[json!({"id": alice.id, "name": "alice"})]);
        }
        other => panic!("bob's backfill: {other:?}"),
    }
    assert_eq!(
        ack,
        json!({"ok": true, "roomId": "intro", "self": bob.id,
               "peers": [{"id": alice.id, "name": "alice"}]})
    );

    let connected = alice.expect_event("user-connected").await;
    assert_eq!(connected, json!({"id": bob.id, "name": "bob"}));
    let offer = alice.expect_event("#rtcio:init-offer").await;
    assert_eq!(offer, json!({"source": bob.id}));
}

/// Relayed envelopes reach the target with the sender's real id as `source` and `data` unchanged.
#[tokio::test]
async fn relay_stamps_source_and_keeps_data() {
    let node = Node::spawn(BIN, &[]);
    let (mut alice, mut bob) = alice_and_bob(&node, "relay").await;
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
               a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n  trailing space \r\n";
    let offer = json!({"description": {"type": "offer", "sdp": sdp}});
    let (before, ack) = alice
        .call(
            "#rtcio:message",
            json!({"source": "spoofed-id", "target": bob.id, "data": offer}),
        )
        .await;
    assert!(before.is_empty(), "alice got {before:?}");
    assert_eq!(ack, json!({"ok": true}));
    let got = bob.expect_event("#rtcio:message").await;
    assert_eq!(
        got,
        json!({"source": alice.id, "target": bob.id, "data": offer})
    );
    assert_eq!(got["data"]["description"]["sdp"].as_str(), Some(sdp));

    let answer = json!({"description": {"type": "answer", "sdp": "v=0\r\n"}});
    let candidates = [
        json!({"candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                              "sdpMid": "0", "sdpMLineIndex": 0}}),
        // An empty candidate (end of candidates) is relayed like any other.
        json!({"candidate": {}}),
        json!({"mid": "0", "events": ["x-unknown"], "x-future": {"nested": [1, 2.5, null]}}),
    ];
    for data in std::iter::once(&answer).chain(&candidates) {
        bob.client
            .emit(
                "#rtcio:message",
                json!({"source": alice.id, "target": alice.id, "data": data}),
            )
            .await
            .expect("emit");
    }
    // Bob's `target: alice.id` with `source: alice.id` spoofed: still stamped as Bob.
    for data in std::iter::once(&answer).chain(&candidates) {
        let got = alice.expect_event("#rtcio:message").await;
        assert_eq!(
            got,
            json!({"source": bob.id, "target": alice.id, "data": data})
        );
    }
}

/// A relay to a socket sharing no room delivers nothing and answers `error {code: not-in-room}`.
#[tokio::test]
async fn relay_without_shared_room_is_refused() {
    let node = Node::spawn(BIN, &[]);
    let mut alice = Peer::connect(&node).await;
    alice.join("room-a", "alice").await;
    let mut carol = Peer::connect(&node).await;
    carol.join("room-c", "carol").await;

    let (before, ack) = alice
        .call(
            "#rtcio:message",
            json!({"source": alice.id, "target": carol.id,
                   "data": {"description": {"type": "offer", "sdp": "v=0\r\n"}}}),
        )
        .await;
    match before.as_slice() {
        [Got::Error(args)] => {
            assert_eq!(args.len(), 1, "error carries one argument: {args:?}");
            assert_eq!(args[0]["code"], "not-in-room");
            assert_eq!(args[0]["event"], "#rtcio:message");
            assert!(args[0]["message"].is_string());
        }
        other => panic!("expected one error event before the ack, got {other:?}"),
    }
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["code"], "not-in-room");

    // Carol got nothing: the first thing she sees after Alice joins her room is the
    // introduction, not an envelope.
    alice.join("room-c", "alice").await;
    let connected = carol.expect_event("user-connected").await;
    assert_eq!(connected, json!({"id": alice.id, "name": "alice"}));
    let offer = carol.expect_event("#rtcio:init-offer").await;
    assert_eq!(offer, json!({"source": alice.id}));
}

/// B's disconnect reaches A as `#rtcio:peer-left {B}` then `user-disconnected {B}`, nothing else.
#[tokio::test]
async fn disconnect_announces_peer_left_then_user_disconnected() {
    let node = Node::spawn(BIN, &[]);
    let (mut alice, bob) = alice_and_bob(&node, "bye").await;
    let bob_id = bob.id.clone();
    bob.client.disconnect().await.expect("disconnect");

    let left = alice.expect_event("#rtcio:peer-left").await;
    assert_eq!(left, json!({"id": bob_id}));
    let gone = alice.expect_event("user-disconnected").await;
    assert_eq!(gone, json!({"id": bob_id}));

    // Nothing else came: Alice's next answer is the ack of her own next event.
    let (before, ack) = alice
        .call(
            "media-state",
            json!({"roomId": "bye", "mic": true, "cam": true}),
        )
        .await;
    assert!(before.is_empty(), "alice got {before:?}");
    assert_eq!(ack, json!({"ok": true}));
}

/// Reads `/health` until `sockets` equals `want` (a disconnect is counted once the server
/// has announced it), then returns the body.
async fn health_with_sockets(node: &Node, want: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = node.get("/health").expect("GET /health");
        assert_eq!(status, 200, "{body}");
        let health: Value = serde_json::from_str(&body).expect("/health is JSON");
        if health["sockets"] == want {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "/health never reported {want} sockets: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/health` answers `{status: "ok", node, version, uptime_secs, sockets}`, counting live sockets.
#[tokio::test]
async fn health_reports_connected_sockets() {
    let node = Node::spawn(BIN, &["--node-id", "node-under-test"]);
    let health = health_with_sockets(&node, 0).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node"], "node-under-test");
    assert!(health["version"].is_string(), "{health}");
    assert!(health["uptime_secs"].is_u64(), "{health}");

    let carol = Peer::connect(&node).await;
    // A connected socket counts before it joins any room.
    health_with_sockets(&node, 1).await;
    carol.client.disconnect().await.expect("disconnect");
    health_with_sockets(&node, 0).await;

    let (_alice, bob) = alice_and_bob(&node, "health").await;
    health_with_sockets(&node, 2).await;

    bob.client.disconnect().await.expect("disconnect");
    health_with_sockets(&node, 1).await;
}
