//! The official socket.io JavaScript client against a real `switchboard` process.
//!
//! Each test starts its own node with the configuration the scenario needs and runs one file
//! of `tests/js` against it; the node is killed when the test ends, pass or fail.

use switchboard_testkit::{LIMITS_TEST_ARGS, Node, run_node_test};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn env(node: &Node, transport: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHBOARD_URL", node.url()),
        ("SWITCHBOARD_TRANSPORT", transport.to_string()),
    ]
}

/// The whole protocol over WebSocket-only connections.
#[test]
fn protocol_over_websocket() {
    let node = Node::spawn(BIN, &[]);
    run_node_test("protocol.test.mjs", &env(&node, "websocket"));
}

/// The whole protocol over HTTP long-polling-only connections.
#[test]
fn protocol_over_polling() {
    let node = Node::spawn(BIN, &[]);
    run_node_test("protocol.test.mjs", &env(&node, "polling"));
}

/// Room capacity, rate limiting and payload size limits.
#[test]
fn limits() {
    let node = Node::spawn(BIN, &LIMITS_TEST_ARGS);
    run_node_test("limits.test.mjs", &env(&node, "websocket"));
}

/// JWT authentication of handshakes and room-scoped tokens.
#[test]
fn auth() {
    let node = Node::spawn(BIN, &["--jwt-secret", "test-secret"]);
    let mut vars = env(&node, "websocket");
    vars.push(("SWITCHBOARD_JWT_SECRET", "test-secret".to_string()));
    run_node_test("auth.test.mjs", &vars);
}

/// Runs `examples/<name>` against `node` and returns what it printed, failing the test if
/// the script failed.
fn run_example(name: &str, node: &Node) -> String {
    let script = switchboard_testkit::js_dir()
        .join("../../examples")
        .join(name);
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(node.url())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The README's example, a plain socket.io-client script, joins, gets backfill and relays an
/// offer.
#[test]
fn readme_example_script() {
    let node = Node::spawn(BIN, &[]);
    let stdout = run_example("two-peers.mjs", &node);
    assert!(stdout.contains("bob: backfill"), "{stdout}");
    assert!(stdout.contains("cam: true"), "{stdout}");
    assert!(stdout.contains(r#""type":"offer""#), "{stdout}");
}

/// examples/resume.mjs: a client that opts in to resumable sessions loses its transport,
/// reconnects by itself and keeps its peer id; the relay sent meanwhile reaches it, and its
/// partner hears of no departure.
#[test]
fn resume_example_script() {
    let node = Node::spawn(BIN, &[]);
    let stdout = run_example("resume.mjs", &node);
    assert!(stdout.contains("(resumed: true)"), "{stdout}");
    assert!(
        stdout.contains("same peer id after the reconnect: true"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"during":"the gap"}"#), "{stdout}");
    assert!(!stdout.contains("bob: user-disconnected"), "{stdout}");
    assert!(!stdout.contains("bob: #rtcio:peer-left"), "{stdout}");
}
