//! Cluster mode: several `switchboard` processes sharing one real `redis-server`.
//!
//! The socket.io scenarios are JavaScript files in `tests/js` (the official client); each test
//! here starts the Redis and nodes a scenario needs, runs the file, and performs the steps it
//! asks for half-way through (SIGKILL a node, kill and restart Redis, read a room hash). The
//! rest are plain HTTP checks of `/health` and `/cluster`. Every process is killed when its
//! test ends, pass or fail; every wait is bounded.

use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::{
    Cluster, LIMITS_TEST_ARGS, NODE_TTL_SECS, Node, Redis, RedisCluster, free_port, run_node_test,
    run_node_test_with_steps, wait_until,
};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// How long a node may take to notice that Redis went away or came back.
const REDIS_LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// GET `path` on `node` as JSON, failing the test on anything but HTTP 200 with JSON.
fn get_json(node: &Node, path: &str) -> Value {
    let (status, body) = node.get_ok(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// The ids listed by a node's `/cluster`, in the order given.
fn cluster_ids(node: &Node) -> Vec<String> {
    let view = get_json(node, "/cluster");
    view["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("/cluster has no nodes array: {view}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether a node's `/health` reports the Redis link as `redis` (`up`, `down`, ...).
fn health_says_redis(node: &Node, redis: &str) -> bool {
    node.get("/health")
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
        .is_some_and(|h| h["redis"] == redis)
}

/// Asserts that every node of the cluster is still running.
fn assert_all_running(cluster: &mut Cluster) {
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        assert!(node.is_running(), "node {i} exited:\n{}", node.log());
    }
}

/// Runs a JavaScript file against the cluster, answering its steps, then checks that no node
/// exited on its own.
fn run_scenario(cluster: &mut Cluster, file: &str, transport: &str) {
    let env = cluster.js_env(transport);
    run_node_test_with_steps(file, &env, |path, body| cluster.step(path, body));
}

// ---------------------------------------------------------------------------------------------
// The protocol suites of the single node, with every room's peers split across two nodes.

/// The whole protocol over WebSocket, successive sockets alternating between two nodes.
#[test]
fn protocol_split_over_two_nodes_websocket() {
    let mut cluster = Cluster::start(BIN, 2, &[]);
    run_scenario(&mut cluster, "protocol.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// The whole protocol over long-polling, successive sockets alternating between two nodes.
#[test]
fn protocol_split_over_two_nodes_polling() {
    let mut cluster = Cluster::start(BIN, 2, &[]);
    run_scenario(&mut cluster, "protocol.test.mjs", "polling");
    assert_all_running(&mut cluster);
}

/// Room capacity (cluster-wide), rate and size limits with peers split across two nodes.
#[test]
fn limits_split_over_two_nodes() {
    let mut cluster = Cluster::start(BIN, 2, &LIMITS_TEST_ARGS);
    run_scenario(&mut cluster, "limits.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// JWT authentication and room grants with peers split across two nodes.
#[test]
fn auth_split_over_two_nodes() {
    let mut cluster = Cluster::start(BIN, 2, &["--jwt-secret", "test-secret"]);
    let mut env = cluster.js_env("websocket");
    env.push(("SWITCHBOARD_JWT_SECRET", "test-secret".to_string()));
    run_node_test("auth.test.mjs", &env);
    assert_all_running(&mut cluster);
}

// ---------------------------------------------------------------------------------------------
// Cluster scenarios.

/// The whole protocol with every room split across two nodes whose Redis is a three-shard
/// Redis Cluster (`redis-cluster://` URL): room keys, scripts and sharded pub/sub channels land
/// on different shards.
#[test]
fn protocol_over_redis_cluster() {
    let redis = RedisCluster::spawn();
    let url = redis.url();
    let nodes: Vec<Node> = (0..2)
        .map(|i| {
            let id = format!("rc-{i}");
            Node::spawn(
                BIN,
                &["--redis-url", &url, "--node-id", &id, "--node-ttl", "3"],
            )
        })
        .collect();
    for node in &nodes {
        assert!(node.wait_redis("up", REDIS_LINK_TIMEOUT), "{}", node.log());
    }
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    let env = [
        ("SWITCHBOARD_URL", urls[0].clone()),
        ("SWITCHBOARD_URLS", urls.join(",")),
        ("SWITCHBOARD_TRANSPORT", "websocket".to_string()),
    ];
    run_node_test("protocol.test.mjs", &env);
    assert_eq!(cluster_ids(&nodes[1]), ["rc-0", "rc-1"]);
}

/// Join, backfill, relay, media state, leave and disconnect between sockets on three nodes,
/// and the Redis keys that record them.
#[test]
fn cross_node_scenarios() {
    let mut cluster = Cluster::start(BIN, 3, &[]);
    run_scenario(&mut cluster, "cluster.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// Many simultaneous joins from two nodes never put more members in a room than
/// `--max-room-size`.
#[test]
fn room_full_race() {
    let mut cluster = Cluster::start(BIN, 2, &["--max-room-size", "4"]);
    run_scenario(&mut cluster, "cluster-capacity.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// A SIGKILLed node's members are announced as gone to their rooms on the surviving nodes,
/// once each, and removed from the room hashes; also when the node is restarted at once under
/// the same id, and when two nodes die together.
#[test]
fn crash_cleanup() {
    let mut cluster = Cluster::start(BIN, 3, &[]);
    run_scenario(&mut cluster, "cluster-crash.test.mjs", "websocket");
    // The last scenario kills nodes 1 and 2.
    assert!(cluster.nodes[0].is_running(), "{}", cluster.nodes[0].log());
}

/// A node stopped with SIGTERM (it drains, here with no wait and a one-second spread): its
/// members' departures reach the other nodes once each, and they leave the room hashes.
#[test]
fn graceful_stop() {
    let mut cluster = Cluster::start(BIN, 3, &["--drain-wait", "0", "--drain-spread", "1"]);
    run_scenario(&mut cluster, "cluster-stop.test.mjs", "websocket");
    for node in &mut cluster.nodes[..2] {
        assert!(
            node.is_running(),
            "a node that was not stopped exited:\n{}",
            node.log()
        );
    }
}

/// Redis SIGKILLed and restarted empty while rooms are live: nodes stay up, report the outage,
/// rebuild the roster, and relay across nodes again.
#[test]
fn redis_restart() {
    let mut cluster = Cluster::start(BIN, 2, &[]);
    run_scenario(&mut cluster, "cluster-redis-restart.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// Session resume: an opted-in client keeps its peer id across a drain, a SIGKILL and a
/// dropped transport, relays sent meanwhile arrive in order, and partners notice nothing;
/// bad tokens get a fresh session; the departure is announced once the grace is over.
#[test]
fn session_resume() {
    let mut cluster = Cluster::start(
        BIN,
        2,
        &[
            "--resume-grace",
            "4",
            "--drain-wait",
            "0",
            "--drain-spread",
            "1",
        ],
    );
    run_scenario(&mut cluster, "resume.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

/// 20,000 relays from one node to another as fast as the sender may go: all delivered, in
/// order, and the receiving node still hears the cluster afterwards.
#[test]
fn publish_burst() {
    let mut cluster = Cluster::start(BIN, 2, &["--rate-limit", "0"]);
    run_scenario(&mut cluster, "cluster-burst.test.mjs", "websocket");
    assert_all_running(&mut cluster);
}

// ---------------------------------------------------------------------------------------------
// Health, registry and Redis link.

/// A node whose Redis is unreachable serves anyway, says so in `/health` (HTTP 200,
/// degraded) and in its log, keeps retrying, and connects once Redis appears.
#[test]
fn unreachable_redis_url() {
    let port = free_port(); // nothing listens here
    let url = format!("redis://127.0.0.1:{port}");
    let mut node = Node::spawn(BIN, &["--redis-url", &url, "--node-ttl", "3"]);

    let health = get_json(&node, "/health");
    assert_eq!(health["redis"], "down", "{health}");
    assert_eq!(health["status"], "degraded", "{health}");

    let says_retrying = |log: &str| {
        let log = log.to_lowercase();
        log.contains("redis") && (log.contains("retry") || log.contains("retrying"))
    };
    assert!(
        wait_until(Duration::from_secs(10), || says_retrying(&node.log())),
        "the log does not say that Redis is unreachable and being retried:\n{}",
        node.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(node.is_running(), "the node exited:\n{}", node.log());
    assert!(health_says_redis(&node, "down"));

    let _redis = Redis::spawn_on(port);
    assert!(
        wait_until(REDIS_LINK_TIMEOUT, || health_says_redis(&node, "up")),
        "the node did not connect to Redis once it appeared:\n{}",
        node.log()
    );
    let health = get_json(&node, "/health");
    assert_eq!(health["status"], "ok", "{health}");
}

/// `/cluster` lists every live node (sorted by id, with its registry fields) on every node,
/// and drops a SIGKILLed node once its heartbeat is older than the TTL.
#[test]
fn cluster_view_lists_live_nodes() {
    let redis = Redis::spawn();
    let url = redis.url();
    let ttl = NODE_TTL_SECS.to_string();
    let ids = ["node-a", "node-b", "node-c"];
    let advertised = |id: &str| format!("http://{id}.example:3001");
    // Started in reverse order, so sorting is the node's doing.
    let mut nodes: Vec<Node> = ids
        .iter()
        .rev()
        .map(|id| {
            let public = advertised(id);
            let args = [
                "--redis-url",
                &url,
                "--node-id",
                id,
                "--node-ttl",
                &ttl,
                "--advertise-url",
                &public,
                "--region",
                "test-region",
            ];
            Node::spawn(BIN, &args)
        })
        .collect();
    nodes.reverse();

    for (node, id) in nodes.iter().zip(ids) {
        assert!(node.wait_redis("up", REDIS_LINK_TIMEOUT), "{}", node.log());
        let health = get_json(node, "/health");
        assert_eq!(health["redis"], "up", "{health}");
        assert_eq!(health["status"], "ok", "{health}");
        assert!(
            wait_until(Duration::from_secs(5), || cluster_ids(node) == ids),
            "{id} /cluster: {}",
            get_json(node, "/cluster")
        );
        let view = get_json(node, "/cluster");
        assert_eq!(view["node"], id, "{view}");
        for (entry, listed) in view["nodes"].as_array().into_iter().flatten().zip(ids) {
            assert_eq!(entry["url"], advertised(listed), "{entry}");
            assert_eq!(entry["region"], "test-region", "{entry}");
            assert_eq!(entry["draining"], false, "{entry}");
            for field in ["started_at_ms", "sockets", "rooms", "heartbeat_ms"] {
                assert!(entry[field].is_u64(), "{field} in {entry}");
            }
        }
    }

    nodes[2].kill();
    let bound = Duration::from_secs(NODE_TTL_SECS + 5);
    for node in &nodes[..2] {
        assert!(
            wait_until(bound, || cluster_ids(node) == ids[..2]),
            "a killed node is still listed after {bound:?}: {}",
            get_json(node, "/cluster")
        );
    }
}

/// Without `--redis-url` the node is single-process: `/health` says Redis is disabled and
/// `/cluster` lists only the node itself.
#[test]
fn single_node_health_and_cluster() {
    let node = Node::spawn(BIN, &["--node-id", "solo"]);
    let health = get_json(&node, "/health");
    assert_eq!(health["redis"], "disabled", "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let view = get_json(&node, "/cluster");
    assert_eq!(view["node"], "solo", "{view}");
    assert_eq!(cluster_ids(&node), ["solo"], "{view}");
}
