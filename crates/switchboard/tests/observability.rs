//! What an operator sees: `GET /metrics` and the JSON log, from real nodes under real traffic.
//!
//! The metrics test runs two cluster nodes on a real Redis, drives them with the Rust
//! socket.io client over both transports (joins, relays, refusals, a leave, disconnects), then
//! crashes a node and Redis, and reads every metric back from the Prometheus text (parsed, not
//! grepped). The log test starts a node exactly as production would log (`--log-format json`,
//! `RUST_LOG=info`) and reads its output line by line.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::Peer;
use rust_socketio::TransportType;
use serde_json::{Value, json};
use switchboard_testkit::{Cluster, Node};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Longest wait for a metric to reach a value: a reap needs a TTL and a tick, Redis reconnects
/// take a few attempts.
const METRIC_WAIT: Duration = Duration::from_secs(20);

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` page: samples and the `# TYPE` of each metric family.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
    text: String,
}

impl Scrape {
    /// Parses the text exposition format, failing the test on any line it cannot read.
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        let mut types = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                    (name, parse_labels(body, line))
                }
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Scrape {
            samples,
            types,
            text: text.to_owned(),
        }
    }

    /// The value of the one series `name{labels}` (other labels of the series ignored).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|got| got == v))
            })
            .collect();
        match found.as_slice() {
            [one] => one.value,
            [] => panic!("no series {name}{labels:?} in\n{}", self.text),
            many => panic!("{} series match {name}{labels:?}: {many:?}", many.len()),
        }
    }

    /// The family's `# TYPE`.
    fn kind(&self, name: &str) -> &str {
        self.types
            .get(name)
            .unwrap_or_else(|| panic!("no # TYPE for {name} in\n{}", self.text))
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// Fetches and parses a node's `/metrics`.
fn scrape(node: &Node) -> Scrape {
    let (status, body) = node.get_ok("/metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    Scrape::parse(&body)
}

/// Scrapes until `done` holds; panics with the last page after [`METRIC_WAIT`].
async fn scrape_until(node: &Node, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + METRIC_WAIT;
    loop {
        let page = scrape(node);
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what}:\n{}",
            page.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every metric is exported with its type, and counts what real traffic did: sockets by
/// transport, rooms, members, joins, leaves by cause, relays and their latency by event,
/// refusals by code, disconnects, ghosts of a crashed node, the Redis link going down, the
/// publishes skipped meanwhile and the connection errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic() {
    let mut cluster = Cluster::start(BIN, 2, &[]);
    let before = scrape(&cluster.nodes[0]);
    assert_eq!(before.kind("switchboard_draining"), "gauge");
    assert_eq!(before.value("switchboard_draining", &[]), 0.0);
    assert_eq!(before.value("switchboard_joins_total", &[]), 0.0);
    assert_eq!(before.value("switchboard_redis_up", &[]), 1.0);

    let node0 = &cluster.nodes[0];
    let node1 = &cluster.nodes[1];
    let mut alice = Peer::connect_over(node0, TransportType::Websocket).await;
    alice.join("metrics", "alice").await;
    let mut bob = Peer::connect_over(node0, TransportType::Polling).await;
    bob.join("metrics", "bob").await;
    let mut carol = Peer::connect_over(node1, TransportType::Websocket).await;
    carol.join("metrics", "carol").await;
    let mut dave = Peer::connect_over(node0, TransportType::Websocket).await;
    dave.join("metrics", "dave").await;

    let offer = json!({"description": {"type": "offer", "sdp": "v=0\r\n"}});
    // One relay to a socket on this node, one to the other node (a publish).
    for target in [&bob.id, &carol.id] {
        let (_, ack) = alice
            .call(
                "#rtcio:message",
                json!({"source": alice.id, "target": target, "data": offer}),
            )
            .await;
        assert_eq!(ack, json!({"ok": true}));
    }
    let (_, ack) = alice
        .call(
            "media-state",
            json!({"roomId": "metrics", "mic": false, "cam": true}),
        )
        .await;
    assert_eq!(ack, json!({"ok": true}));
    let (_, ack) = alice
        .call("stopScreenShare", json!({"roomId": "metrics"}))
        .await;
    assert_eq!(ack, json!({"ok": true}));
    let (_, ack) = alice
        .call("leave-room", json!({"roomId": "elsewhere"}))
        .await;
    assert_eq!(ack["code"], "not-in-room");
    let (_, ack) = alice
        .call("join-room", json!({"roomId": "no spaces", "name": "x"}))
        .await;
    assert_eq!(ack["code"], "invalid-payload");

    let busy = scrape(node0);
    let sockets = "switchboard_connected_sockets";
    assert_eq!(busy.kind(sockets), "gauge");
    assert_eq!(busy.value(sockets, &[("transport", "polling")]), 1.0);
    assert_eq!(busy.value(sockets, &[("transport", "websocket")]), 2.0);
    assert_eq!(busy.value("switchboard_rooms", &[]), 1.0);
    assert_eq!(busy.value("switchboard_room_members", &[]), 3.0);
    assert_eq!(busy.kind("switchboard_joins_total"), "counter");
    assert_eq!(busy.value("switchboard_joins_total", &[]), 3.0);
    assert_eq!(busy.value("switchboard_connections_total", &[]), 3.0);

    let relayed = "switchboard_relayed_messages_total";
    assert_eq!(busy.kind(relayed), "counter");
    for (event, count) in [
        ("#rtcio:message", 2.0),
        ("media-state", 1.0),
        ("stopScreenShare", 1.0),
    ] {
        assert_eq!(busy.value(relayed, &[("event", event)]), count, "{event}");
        let latency = "switchboard_relay_latency_seconds";
        assert_eq!(busy.kind(latency), "histogram");
        let observed = busy.value(&format!("{latency}_count"), &[("event", event)]);
        assert_eq!(observed, count, "{event}");
        let all = busy.value(
            &format!("{latency}_bucket"),
            &[("event", event), ("le", "+Inf")],
        );
        assert_eq!(all, count, "{event}");
        let within_1s = busy.value(
            &format!("{latency}_bucket"),
            &[("event", event), ("le", "1")],
        );
        assert_eq!(
            within_1s, count,
            "a loopback relay took over a second: {event}"
        );
        let sum = busy.value(&format!("{latency}_sum"), &[("event", event)]);
        assert!(sum > 0.0 && sum < count, "{event}: sum {sum}");
    }

    let refused = "switchboard_refused_events_total";
    assert_eq!(busy.kind(refused), "counter");
    for code in ["not-in-room", "invalid-payload"] {
        assert_eq!(busy.value(refused, &[("code", code)]), 1.0, "{code}");
    }
    for code in ["room-full", "rate-limited", "unauthorized", "unknown-event"] {
        assert_eq!(busy.value(refused, &[("code", code)]), 0.0, "{code}");
    }
    let info = busy.value("switchboard_build_info", &[("node", "node-0")]);
    assert_eq!(info, 1.0);
    assert!(busy.value("switchboard_start_time_seconds", &[]) > 1.7e9);
    assert_eq!(busy.value("switchboard_redis_up", &[]), 1.0);
    assert_eq!(busy.kind("switchboard_bus_messages_lost_total"), "counter");
    assert_eq!(busy.value("switchboard_bus_messages_lost_total", &[]), 0.0);

    // Bob leaves the room, then disconnects; Dave disconnects while in the room.
    let (_, ack) = bob.call("leave-room", json!({"roomId": "metrics"})).await;
    assert_eq!(ack, json!({"ok": true}));
    bob.client.disconnect().await.expect("disconnect");
    dave.client.disconnect().await.expect("disconnect");
    let leaves = "switchboard_leaves_total";
    let quiet = scrape_until(node0, "two disconnects", |s| {
        s.value(sockets, &[("transport", "polling")]) == 0.0
            && s.value(sockets, &[("transport", "websocket")]) == 1.0
            && s.value(leaves, &[("cause", "disconnect")]) == 1.0
    })
    .await;
    assert_eq!(quiet.value(leaves, &[("cause", "leave-room")]), 1.0);
    assert_eq!(quiet.value("switchboard_room_members", &[]), 1.0);
    let disconnects: f64 = quiet
        .samples
        .iter()
        .filter(|s| s.name == "switchboard_disconnects_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(disconnects, 2.0, "{}", quiet.text);
    assert_eq!(quiet.kind("switchboard_disconnects_total"), "counter");

    // Carol's node crashes: node 0 reaps her from the room (within a TTL and a tick).
    cluster.nodes[1].kill();
    let node0 = &cluster.nodes[0];
    let reaped = scrape_until(node0, "the reaped ghost", |s| {
        s.value("switchboard_ghosts_reaped_total", &[]) >= 1.0
    })
    .await;
    assert_eq!(reaped.kind("switchboard_ghosts_reaped_total"), "counter");
    assert_eq!(
        reaped.value("switchboard_redis_errors_total", &[("kind", "connection")]),
        0.0
    );

    // Redis goes away: the link gauge drops, reconnect attempts count as errors, and a
    // broadcast to the room is delivered locally. Nothing is published or skipped: no other
    // node has members in the room any more (room events go only to those that do).
    cluster.redis.kill();
    scrape_until(node0, "redis_up 0", |s| {
        s.value("switchboard_redis_up", &[]) == 0.0
    })
    .await;
    let (_, ack) = alice
        .call(
            "media-state",
            json!({"roomId": "metrics", "mic": true, "cam": true}),
        )
        .await;
    assert_eq!(ack, json!({"ok": true}));
    let down = scrape_until(node0, "Redis errors", |s| {
        s.value("switchboard_redis_errors_total", &[("kind", "connection")]) >= 1.0
    })
    .await;
    assert_eq!(
        down.value("switchboard_bus_publishes_skipped_total", &[]),
        0.0
    );
    let published = "switchboard_cluster_messages_published_total";
    assert_eq!(down.value(published, &[]), reaped.value(published, &[]));
    assert_eq!(down.kind("switchboard_redis_errors_total"), "counter");
    assert_eq!(
        down.kind("switchboard_bus_publishes_skipped_total"),
        "counter"
    );
    assert_eq!(down.value(relayed, &[("event", "media-state")]), 2.0);
    assert_eq!(down.value("switchboard_bus_messages_lost_total", &[]), 0.0);
}

/// A single-process node exports no Redis metrics.
#[test]
fn single_process_has_no_redis_metrics() {
    let node = Node::spawn(BIN, &[]);
    let page = scrape(&node);
    assert_eq!(page.value("switchboard_rooms", &[]), 0.0);
    assert!(!page.has("switchboard_redis_up"), "{}", page.text);
    assert!(!page.has("switchboard_bus_messages_lost_total"));
    assert!(!page.has("switchboard_bus_publishes_skipped_total"));
}

/// The lines of a node's log, each parsed as one JSON object.
fn json_lines(node: &Node) -> Vec<Value> {
    node.log()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            assert!(value.is_object(), "not a JSON object: {line}");
            value
        })
        .collect()
}

/// The `fields` of the log lines whose message is `message`.
fn lines_saying<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .map(|l| &l["fields"])
        .filter(|f| f["message"] == message)
        .collect()
}

/// With `--log-format json` and the production filter, every log line is one JSON object;
/// a connection's life is logged at info (connected with transport and remote address,
/// joined, left, refused, disconnected with a reason); rate-limited refusals stay below info;
/// and no relayed SDP or ICE candidate ever reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_tells_the_lifecycle_without_payloads() {
    let node = Node::spawn_with_env(
        BIN,
        &[
            "--log-format",
            "json",
            "--rate-limit",
            "5",
            "--rate-burst",
            "5",
        ],
        &[("RUST_LOG", "info")],
    );
    let mut alice = Peer::connect(&node).await;
    alice.join("logs", "alice").await;
    let mut bob = Peer::connect_over(&node, TransportType::Polling).await;
    bob.join("logs", "bob").await;
    alice.expect_event("user-connected").await;
    alice.expect_event("#rtcio:init-offer").await;

    let sdp = "v=0\r\no=- 7311 2 IN IP4 127.0.0.1\r\ns=secret-session-name-4417\r\n";
    let candidate = "candidate:9 1 udp 1 198.51.100.7 61417 typ host";
    for data in [
        json!({"description": {"type": "offer", "sdp": sdp}}),
        json!({"candidate": {"candidate": candidate, "sdpMid": "0"}}),
    ] {
        let (_, ack) = alice
            .call(
                "#rtcio:message",
                json!({"source": alice.id, "target": bob.id, "data": data}),
            )
            .await;
        assert_eq!(ack, json!({"ok": true}));
        bob.expect_event("#rtcio:message").await;
    }
    let (_, ack) = bob.call("leave-room", json!({"roomId": "logs"})).await;
    assert_eq!(ack, json!({"ok": true}));
    let (_, ack) = bob.call("leave-room", json!({"roomId": "logs"})).await;
    assert_eq!(ack["code"], "not-in-room");
    // A flood: past the burst of 5, refusals are rate-limited.
    for _ in 0..20 {
        bob.client
            .emit("no-such-event", json!({}))
            .await
            .expect("emit");
    }
    let bob_id = bob.id.clone();
    let alice_id = alice.id.clone();
    scrape_until(&node, "the flood refused", |s| {
        s.value(
            "switchboard_refused_events_total",
            &[("code", "rate-limited")],
        ) >= 1.0
    })
    .await;
    bob.client.disconnect().await.expect("disconnect");
    let lines = {
        let deadline = Instant::now() + METRIC_WAIT;
        loop {
            let lines = json_lines(&node);
            let gone = lines_saying(&lines, "disconnected")
                .iter()
                .any(|f| f["socket"] == bob_id.as_str());
            if gone {
                break lines;
            }
            assert!(Instant::now() < deadline, "no disconnect line for {bob_id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert_ne!(
            line["level"], "DEBUG",
            "RUST_LOG=info lets no debug line out: {line}"
        );
    }
    let connected = lines_saying(&lines, "connected");
    let of = |id: &str| {
        connected
            .iter()
            .find(|f| f["socket"] == id)
            .copied()
            .unwrap_or_else(|| panic!("no connected line for {id}: {connected:?}"))
    };
    assert_eq!(of(&alice_id)["transport"], "websocket");
    assert_eq!(of(&bob_id)["transport"], "polling");
    for id in [&alice_id, &bob_id] {
        let remote = of(id)["remote"].as_str().unwrap_or_default();
        assert!(remote.starts_with("127.0.0.1:"), "remote {remote:?}");
    }
    let joined = lines_saying(&lines, "joined room");
    assert!(
        joined
            .iter()
            .any(|f| f["socket"] == bob_id.as_str() && f["room"] == "logs")
    );
    let left = lines_saying(&lines, "left room");
    assert!(
        left.iter()
            .any(|f| f["socket"] == bob_id.as_str() && f["room"] == "logs")
    );
    let refused = lines_saying(&lines, "event refused");
    assert!(
        refused
            .iter()
            .any(|f| f["code"] == "not-in-room" && f["event"] == "leave-room"),
        "{refused:?}"
    );
    assert!(refused.iter().any(|f| f["code"] == "unknown-event"));
    assert!(
        refused.iter().all(|f| f["code"] != "rate-limited"),
        "rate-limited refusals are debug: {refused:?}"
    );
    let disconnected = lines_saying(&lines, "disconnected");
    let bye: Vec<_> = disconnected
        .iter()
        .filter(|f| f["socket"] == bob_id.as_str())
        .collect();
    assert_eq!(bye.len(), 1, "one goodbye per connection: {disconnected:?}");
    let reason = bye[0]["reason"].as_str().unwrap_or_default();
    assert!(
        ["client-left", "client-closed"].contains(&reason),
        "reason {reason:?}"
    );

    let log = node.log();
    for secret in ["secret-session-name-4417", "198.51.100.7", "v=0"] {
        assert!(!log.contains(secret), "{secret:?} reached the log:\n{log}");
    }
}
