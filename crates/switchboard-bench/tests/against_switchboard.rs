//! The bench's protocol handling against a real `switchboard` process: every scenario, run
//! small, must count exactly what the server delivered. Not timed: only counts and contents
//! are asserted.
//!
//! The `switchboard` binary belongs to another crate, so `CARGO_BIN_EXE_switchboard` is not
//! available here; the tests ask cargo to build it (a no-op when it is fresh) and take its
//! path from cargo's JSON messages, which respects `CARGO_TARGET_DIR` and the profile.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use switchboard_bench::client::Conn;
use switchboard_bench::procstat::Watched;
use switchboard_bench::report::Report;
use switchboard_bench::scenario::churn::{self, ChurnOptions};
use switchboard_bench::scenario::idle::{self, IdleOptions};
use switchboard_bench::scenario::relay::{self, RelayOptions};
use switchboard_bench::scenario::storm::{self, StormOptions};
use switchboard_bench::scenario::{Target, call};
use switchboard_bench::target::{NodeUrl, Topology};
use switchboard_bench::wire;
use switchboard_testkit::{Cluster, Node};

/// Path of the `switchboard` binary, built once per test process.
fn switchboard_binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "-p",
                "switchboard",
                "--bin",
                "switchboard",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "building switchboard failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["target"]["name"] == "switchboard")
            .find_map(|m| m["executable"].as_str().map(str::to_string))
            .expect("cargo reported the switchboard executable")
    })
}

/// A node with rate limiting and the per-address cap off, so full-speed relays are not
/// refused and every socket (all from one loopback address) is admitted, as `scripts/bench`
/// runs it.
fn node() -> Node {
    Node::spawn(
        switchboard_binary(),
        &["--rate-limit", "0", "--max-connections-per-address", "0"],
    )
}

fn target(node: &Node) -> Target {
    let url = NodeUrl::parse(&node.url()).expect("node URL is loopback");
    Target {
        urls: vec![url.clone()],
        cluster: vec![url],
        watched: vec![Watched {
            label: "switchboard".into(),
            pid: node.pid(),
        }],
        label: "switchboard".into(),
        sources: None,
        concurrency: 16,
        progress: false,
    }
}

fn assert_passed(report: &Report) {
    assert!(report.passed(), "{}", report.table());
}

/// The client completes the handshake, learns its sid and reads a join ack that lists peers.
#[tokio::test]
async fn handshake_and_join_ack() {
    let node = node();
    let url = NodeUrl::parse(&node.url()).unwrap();
    let source = Some("127.0.0.1".parse().unwrap());
    let mut a = Conn::connect(&url, source).await.unwrap();
    let mut b = Conn::connect(&url, source).await.unwrap();
    assert!(!a.sid.is_empty() && a.sid != b.sid);
    let wait = Duration::from_secs(5);
    let (args, _) = call(&mut a, "join-room", &wire::join_payload("r", "a"), 1, wait)
        .await
        .unwrap();
    assert_eq!(wire::join_ack_peers(&args), Some(vec![]));
    let (args, _) = call(&mut b, "join-room", &wire::join_payload("r", "b"), 1, wait)
        .await
        .unwrap();
    assert_eq!(wire::join_ack_peers(&args), Some(vec![a.sid.clone()]));
}

/// Every envelope sent in a relay run arrives, in order, with the sender's id as `source`.
#[tokio::test]
async fn relay_delivers_every_envelope_with_its_source() {
    let node = node();
    let options = RelayOptions {
        rooms: 4,
        duration: Duration::from_millis(700),
        window: 4,
        payload_bytes: 512,
        rate: 0,
        drain: Duration::from_secs(5),
    };
    let report = relay::run(&target(&node), &options).await;
    assert_passed(&report);
    let sent = report.count_of("sent").unwrap();
    assert!(sent > 0);
    assert_eq!(report.count_of("received"), Some(sent));
    assert_eq!(report.count_of("wrong source"), Some(0));
    assert_eq!(report.count_of("out of order"), Some(0));
    // The latency distribution behind the percentiles, for the charts: rising quantiles,
    // values that never fall, ending at the maximum.
    let latency = report
        .distributions
        .iter()
        .find(|d| d.name == "latency")
        .expect("a latency distribution");
    assert!(
        latency
            .quantiles
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    let max = report
        .figures
        .iter()
        .find(|f| f.name == "latency max")
        .unwrap();
    assert_eq!(
        latency.quantiles.last().map(|q| (q.0, q.1)),
        Some((1.0, max.value))
    );
}

/// A paced relay sends about the configured number of envelopes and delivers all of them.
#[tokio::test]
async fn paced_relay_delivers_exactly_what_was_sent() {
    let node = node();
    let options = RelayOptions {
        rooms: 2,
        duration: Duration::from_secs(1),
        window: 16,
        payload_bytes: 1024,
        rate: 200,
        drain: Duration::from_secs(5),
    };
    let report = relay::run(&target(&node), &options).await;
    assert_passed(&report);
    let sent = report.count_of("sent").unwrap();
    assert!((150..=260).contains(&sent), "sent {sent}");
    assert_eq!(report.count_of("received"), Some(sent));
}

/// A storm of three rooms of four gets every offer, answer and candidate, nothing more.
#[tokio::test]
async fn storm_counts_every_offer_answer_and_candidate() {
    let node = node();
    let options = StormOptions {
        peers: 12,
        room_size: 4,
        join_rate: 50.0,
        sdp_bytes: 5120,
        candidates: 8,
        deadline: Duration::from_secs(10),
    };
    let report = storm::run(&target(&node), &options).await;
    assert_passed(&report);
    // 3 rooms × 4 × 3 ordered pairs × (1 description + 8 candidates).
    assert_eq!(report.count_of("expected messages"), Some(324));
    assert_eq!(report.count_of("received messages"), Some(324));
}

/// Churn keeps presence consistent and loses no relay between steady peers.
#[tokio::test]
async fn churn_keeps_presence_consistent() {
    let node = node();
    let options = ChurnOptions {
        rooms: 3,
        churners: 6,
        ops: 30.0,
        rate: 100,
        duration: Duration::from_secs(2),
        payload_bytes: 256,
    };
    let report = churn::run(&target(&node), &options).await;
    assert_passed(&report);
    assert!(report.count_of("churn steps").unwrap() > 6);
    assert!(report.count_of("received").unwrap() > 0);
}

/// Idle sockets are all held and the server's memory is sampled.
#[tokio::test]
async fn idle_holds_every_socket() {
    let node = node();
    let options = IdleOptions {
        sockets: 50,
        hold: Duration::from_millis(300),
        connect_deadline: Duration::from_secs(20),
    };
    let report = idle::run(&target(&node), &options).await;
    assert_passed(&report);
    assert_eq!(report.count_of("sockets held"), Some(50));
    assert!(report.figures.iter().any(|f| f.name == "switchboard rss"));
    // Memory per socket read at every tenth of the sockets (the last point: after the hold,
    // as the figure), for the charts.
    let curve = report
        .curves
        .iter()
        .find(|c| c.name == "rss per socket")
        .expect("an rss per socket curve");
    let sockets: Vec<f64> = curve.points.iter().map(|p| p.0).collect();
    assert_eq!(sockets.len(), 10, "{sockets:?}");
    assert!(sockets.windows(2).all(|w| w[0] <= w[1]), "{sockets:?}");
    assert_eq!(sockets.last(), Some(&50.0));
    let per_socket = report
        .figures
        .iter()
        .find(|f| f.name == "rss per socket")
        .unwrap();
    assert_eq!(curve.points.last().map(|p| p.1), Some(per_socket.value));
}

/// On a cluster with an idle node, every pair is across the two busy nodes, the report
/// records it, and the cluster counters are reported for every node, or left out with a note
/// by a build that does not export them: never a failed run.
#[tokio::test]
async fn cluster_relay_records_pairs_across_nodes() {
    let cluster = Cluster::start(
        switchboard_binary(),
        3,
        &["--rate-limit", "0", "--max-connections-per-address", "0"],
    );
    let urls: Vec<NodeUrl> = cluster
        .nodes
        .iter()
        .map(|n| NodeUrl::parse(&n.url()).expect("node URL is loopback"))
        .collect();
    let watched = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Watched {
            label: format!("switchboard-{i}"),
            pid: n.pid(),
        })
        .collect();
    let target = Target {
        urls: urls[..2].to_vec(),
        cluster: urls,
        watched,
        label: "switchboard".into(),
        sources: None,
        concurrency: 16,
        progress: false,
    };
    let options = RelayOptions {
        rooms: 4,
        duration: Duration::from_millis(700),
        window: 8,
        payload_bytes: 1024,
        rate: 200,
        drain: Duration::from_secs(5),
    };
    let report = relay::run(&target, &options).await;
    assert_passed(&report);
    assert_eq!(
        report.topology,
        Some(Topology {
            nodes: 3,
            busy_nodes: 2,
            pairs: 4,
            pairs_across_nodes: 4
        })
    );
    let measured = report
        .figures
        .iter()
        .any(|f| f.name == "cluster received per relay");
    let noted = report
        .notes
        .iter()
        .any(|n| n.starts_with("cluster counters n/a"));
    assert!(measured != noted, "{}", report.table());
    if measured {
        assert!(report.count_of("cluster received, node 2").is_some());
    }
}
