//! The demo page at `/`: what every node serves, the `--ice-servers` check, and a real call
//! between headless Chromium pages on two cluster nodes (`tests/js/demo-browser.test.mjs`).
//!
//! The browser scenario takes the base URL of each page as a parameter, so the same file
//! runs against the nodes directly and behind a proxy. Its screenshots land in
//! `<target dir>/e2e-artifacts/` (`target/e2e-artifacts/` unless `CARGO_TARGET_DIR` is set).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::{Cluster, Nginx, Node, js_dir, run_node_test_with_steps, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// Debian's Chromium (`apt-get install chromium`; `scripts/test` installs it).
const CHROMIUM: &str = "/usr/bin/chromium";

/// `<target dir>/e2e-artifacts`: beside the build, out of the source tree.
fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("e2e-artifacts")
}

/// Runs the browser scenario with page `i` opening `page_urls[i]` (alice, bob, carol), page 0
/// being served by `cluster.nodes[0]` (the scenario restarts it).
fn demo_call(cluster: &mut Cluster, page_urls: &[String]) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (./scripts/test does)"
    );
    let artifacts = artifacts_dir();
    let env = [
        ("SWITCHBOARD_PAGE_URLS", page_urls.join(",")),
        (
            "SWITCHBOARD_ARTIFACTS",
            artifacts.to_string_lossy().into_owned(),
        ),
        ("CHROMIUM", CHROMIUM.to_string()),
    ];
    run_node_test_with_steps("demo-browser.test.mjs", &env, |path, body| {
        cluster.step(path, body)
    });
    let screenshot = artifacts.join("demo-two-peers.png");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("screenshot: {}", screenshot.display());
}

/// Two pages on two nodes of a Redis cluster call each other (connected, video frames decoded
/// both ways), a mute shows on the other's tile, the call survives a restart of the first
/// page's node, a late joiner on the first node sees both with their current mic/cam, a
/// closed tab's tile goes within 5 s, and a crashed tab's tile stays while its media flows
/// and goes once the connection reports trouble.
/// The nodes of the browser calls: a drain that moves alice at once, and a resume grace short
/// enough that the crashed tab's departure (announced when its grace ends) falls within the
/// test's bound, and long enough for alice's drained node to come back.
const CALL_ARGS: &[&str] = &[
    "--ice-servers",
    "[]",
    "--drain-wait",
    "0",
    "--drain-spread",
    "1",
    "--resume-grace",
    "8",
];

#[test]
fn browser_call_across_two_nodes() {
    let mut cluster = Cluster::start(BIN, 2, CALL_ARGS);
    let urls: Vec<String> = cluster.nodes.iter().map(Node::url).collect();
    demo_call(
        &mut cluster,
        &[urls[0].clone(), urls[1].clone(), urls[0].clone()],
    );
}

/// The same call with each page behind nginx (the shipped `docker/nginx.conf`), one nginx in
/// front of each node: a browser cannot pick its source address, so one nginx with ip_hash
/// would send every page to the same node, and the call must still cross nodes.
#[test]
fn browser_call_through_nginx() {
    let mut cluster = Cluster::start(BIN, 2, CALL_ARGS);
    let proxies: Vec<Nginx> = cluster
        .nodes
        .iter()
        .map(|node| Nginx::spawn(&[node.port()]))
        .collect();
    let urls: Vec<String> = proxies.iter().map(Nginx::url).collect();
    demo_call(
        &mut cluster,
        &[urls[0].clone(), urls[1].clone(), urls[0].clone()],
    );
}

/// `/` serves the page and its assets with their content types and a same-origin CSP; and
/// `/ice-servers` serves the `--ice-servers` list, compacted.
#[test]
fn serves_the_page_and_its_ice_servers() {
    let ice = r#"[ {"urls": ["stun:127.0.0.1:3478"]} ]"#;
    let node = Node::spawn(BIN, &["--ice-servers", ice]);
    for (path, content_type, contains) in [
        (
            "/",
            "text/html",
            r#"<script type="module" src="assets/demo.js">"#,
        ),
        ("/assets/demo.css", "text/css", ".tile"),
        ("/assets/demo.js", "text/javascript", "RTCPeerConnection"),
        (
            "/assets/socket.io.esm.min.js",
            "text/javascript",
            "Socket.IO v4",
        ),
    ] {
        let response = ureq_get(&node, path);
        assert_eq!(response.status, 200, "GET {path}");
        assert!(
            response.content_type.starts_with(content_type),
            "GET {path}: {}",
            response.content_type
        );
        assert!(response.csp.contains("default-src 'self'"), "GET {path}");
        assert!(response.body.contains(contains), "GET {path}");
    }
    let (status, body) = node.get_ok("/ice-servers");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{ "urls": ["stun:127.0.0.1:3478"] }])
    );

    let plain = Node::spawn(BIN, &[]);
    assert_eq!(plain.get_ok("/ice-servers"), (200, "[]".to_string()));
}

/// A `--ice-servers` (or `ICE_SERVERS`) that is not a JSON array of ICE servers stops
/// start-up with exit code 2 and a message naming the option.
#[test]
fn invalid_ice_servers_stop_start_up() {
    for (how, value) in [("flag", "{\"urls\":\"stun:a\"}"), ("env", "[{\"urls\":")] {
        let mut command = Command::new(BIN);
        command.args(["--host", "127.0.0.1", "--port", "0"]);
        if how == "flag" {
            command.args(["--ice-servers", value]);
        } else {
            command.env("ICE_SERVERS", value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switchboard started with --ice-servers {value:?} ({how})");
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{how}: {stderr}");
        assert!(stderr.contains("--ice-servers"), "{how}: {stderr}");
    }
}

/// The embedded socket.io-client bundle is the npm package's file, byte for byte, of the
/// version `tests/js/package-lock.json` locks (refresh with `npm run vendor-demo` there).
#[test]
fn bundled_socket_io_client_is_the_locked_npm_file() {
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(js_dir().join("package-lock.json")).unwrap())
            .unwrap();
    let locked = lock["packages"]["node_modules/socket.io-client"]["version"]
        .as_str()
        .unwrap();
    let bundled = switchboard::http::demo::SOCKET_IO_JS;
    assert!(
        bundled.starts_with(&format!("/*!\n * Socket.IO v{locked}\n")),
        "the bundle is not socket.io-client {locked}: run `npm ci && npm run vendor-demo` in tests/js"
    );
    let installed = js_dir().join("node_modules/socket.io-client/dist/socket.io.esm.min.js");
    let installed = std::fs::read_to_string(&installed)
        .unwrap_or_else(|e| panic!("{}: {e} (run `npm ci` in tests/js)", installed.display()));
    assert!(
        installed == bundled,
        "crates/switchboard/assets/socket.io.esm.min.js differs from the npm package's file: \
         run `npm run vendor-demo` in tests/js"
    );
}

/// One GET with the headers the page checks care about.
struct Response {
    status: u16,
    content_type: String,
    csp: String,
    body: String,
}

fn ureq_get(node: &Node, path: &str) -> Response {
    let url = format!("{}{path}", node.url());
    let mut response = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, csp) = (header("content-type"), header("content-security-policy"));
    Response {
        status: response.status().as_u16(),
        content_type,
        csp,
        body: response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("GET {url}: {e}")),
    }
}
