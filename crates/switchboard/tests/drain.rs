//! Draining one node, seen over HTTP and raw Engine.IO requests: what `/ready`, `/health`,
//! `/cluster`, `POST /admin/drain` and new handshakes answer, and how signals end the
//! process. (Clients moving to other nodes behind nginx: `tests/nginx.rs`.)

use std::time::{Duration, Instant};

use switchboard_testkit::{Cluster, Node};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// A new Engine.IO session (long-polling handshake).
const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

/// Connects one socket.io socket over raw long-polling (handshake, then CONNECT), which keeps
/// a drain in its wait phase until it leaves.
fn connect_socket(node: &Node) {
    let (status, body) = node.get_ok(HANDSHAKE);
    assert_eq!(status, 200, "{body}");
    let sid = body
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no sid in {body}"));
    let url = format!("{}{HANDSHAKE}&sid={sid}", node.url());
    let response = ureq::post(&url).send("40").expect("CONNECT");
    assert_eq!(response.status().as_u16(), 200);
    assert!(switchboard_testkit::wait_until(
        Duration::from_secs(5),
        || {
            node.get("/health")
                .is_ok_and(|(_, h)| h.contains(r#""sockets":1"#))
        }
    ));
}

#[test]
fn admin_drain_needs_the_token_and_cordons_the_node() {
    let mut node = Node::spawn(
        BIN,
        &[
            "--admin-token",
            "s3cret",
            "--drain-wait",
            "30",
            "--drain-spread",
            "1",
        ],
    );
    assert_eq!(node.get_ok("/ready").0, 200);
    connect_socket(&node);

    assert_eq!(node.post("/admin/drain", None).unwrap().0, 401);
    assert_eq!(node.post("/admin/drain", Some("wrong")).unwrap().0, 401);
    assert_eq!(
        node.get_ok("/ready").0,
        200,
        "a refused request changes nothing"
    );

    let (status, body) = node.post("/admin/drain", Some("s3cret")).unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(body.contains(r#""started":true"#), "{body}");
    let (status, body) = node.get_ok("/ready");
    assert_eq!(status, 503);
    assert!(body.contains(r#""phase":"waiting""#), "{body}");
    assert_eq!(
        node.get_ok("/health").0,
        200,
        "a draining node is still alive"
    );
    assert!(node.get_ok("/cluster").1.contains(r#""draining":true"#));
    let metrics = node.get_ok("/metrics").1;
    assert!(
        metrics.lines().any(|l| l == "switchboard_draining 1"),
        "{metrics}"
    );
    let (status, _) = node.get_ok(HANDSHAKE);
    assert_eq!(status, 503, "new sessions are refused while draining");
    let (_, body) = node.post("/admin/drain", Some("s3cret")).unwrap();
    assert!(body.contains(r#""started":false"#), "{body}");

    // The socket keeps the node in its wait phase; a signal does not start a second drain,
    // and a second signal ends the process at once.
    node.signal("TERM");
    assert!(
        !node.exits_within(Duration::from_millis(500)),
        "the drain waits"
    );
    node.signal("TERM");
    assert!(node.exits_within(Duration::from_secs(5)), "{}", node.log());
}

#[test]
fn admin_endpoints_do_not_exist_without_a_token() {
    let node = Node::spawn(BIN, &[]);
    assert_eq!(node.post("/admin/drain", Some("anything")).unwrap().0, 404);
    assert_eq!(node.get_ok("/ready").0, 200);
}

#[test]
fn sigterm_without_sockets_exits_at_once_and_leaves_the_cluster() {
    let mut cluster = Cluster::start(BIN, 2, &["--drain-wait", "30", "--drain-spread", "30"]);
    let started = Instant::now();
    assert!(cluster.nodes[1].terminate(Duration::from_secs(5)));
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, view) = cluster.nodes[0].get_ok("/cluster");
    assert!(
        !view.contains("node-1"),
        "the drained node left the registry: {view}"
    );
}

#[test]
fn second_signal_exits_without_finishing_the_drain() {
    let mut node = Node::spawn(BIN, &["--drain-wait", "60", "--drain-spread", "60"]);
    connect_socket(&node);
    node.signal("INT");
    assert!(switchboard_testkit::wait_until(
        Duration::from_secs(5),
        || { node.get("/ready").is_ok_and(|(status, _)| status == 503) }
    ));
    assert!(
        !node.exits_within(Duration::from_millis(500)),
        "the drain waits"
    );
    node.signal("INT");
    assert!(node.exits_within(Duration::from_secs(5)), "{}", node.log());
}
