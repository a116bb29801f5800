//! Production topology: three nodes and Redis behind real nginx, configured by the shipped
//! `docker/nginx.conf` (or `docker/nginx-room-affinity.conf`); clients from different /24
//! networks on loopback so `ip_hash` spreads them. The scenarios are JavaScript files (the
//! official socket.io client); this file starts the processes and answers their steps (drain a
//! node, restart it).

use switchboard_testkit::{Cluster, Nginx, room_affinity_config, run_node_test_with_steps};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Three nodes (extra `args`) and nginx (`docker/nginx.conf`) in front of them.
fn cluster_behind_nginx(args: &[&str]) -> (Cluster, Nginx) {
    let cluster = cluster_for_nginx(args);
    let nginx = Nginx::spawn(&ports(&cluster));
    (cluster, nginx)
}

/// Three nodes (extra `args`) that believe nginx's `X-Forwarded-For`.
fn cluster_for_nginx(args: &[&str]) -> Cluster {
    // nginx is every node's only peer: believe its X-Forwarded-For (as docker/compose.yml
    // does), so each client counts under its own address for --max-connections-per-address.
    let args = [args, &["--trusted-proxies", "127.0.0.1"]].concat();
    Cluster::start(BIN, 3, &args)
}

fn ports(cluster: &Cluster) -> Vec<u16> {
    cluster.nodes.iter().map(|n| n.port()).collect()
}

fn run(cluster: &mut Cluster, nginx: &Nginx, file: &str, extra_env: &[(&'static str, String)]) {
    let mut env = cluster.js_env("websocket");
    env.push(("SWITCHBOARD_PROXY_URL", nginx.url()));
    env.extend_from_slice(extra_env);
    run_node_test_with_steps(file, &env, |path, body| cluster.step(path, body));
}

/// ip_hash stickiness: long-polling clients never reach a node that does not know their
/// session, the WebSocket upgrade works through the proxy, and peers on different nodes
/// complete a call set-up. A 1 s ping interval makes every long-poll end each second.
#[test]
fn sticky_sessions_through_nginx() {
    let (mut cluster, nginx) = cluster_behind_nginx(&["--ping-interval", "1"]);
    run(&mut cluster, &nginx, "nginx.test.mjs", &[]);
}

/// Each node in turn drained (SIGTERM) and restarted while clients join, relay and leave.
#[test]
fn rolling_restart() {
    let (mut cluster, nginx) = cluster_behind_nginx(&["--drain-wait", "1", "--drain-spread", "3"]);
    run(&mut cluster, &nginx, "rolling-restart.test.mjs", &[]);
}

/// The same rolling restart with clients that opt in to resumable sessions: no peer id
/// changes, no departure is heard, no acknowledged relay is lost.
#[test]
fn rolling_restart_with_resumable_sessions() {
    let (mut cluster, nginx) = cluster_behind_nginx(&["--drain-wait", "1", "--drain-spread", "3"]);
    run(&mut cluster, &nginx, "rolling-restart-resume.test.mjs", &[]);
}

/// SIGTERM on a node holding 1,000 sockets: it exits within drain-wait + drain-spread and
/// every client is back in its room on another node.
#[test]
fn drain_moves_every_socket() {
    let (wait, spread) = ("2", "10");
    // 1,000 clients from a few addresses (those ip_hash sends to node 0): no per-address cap.
    let (mut cluster, nginx) = cluster_behind_nginx(&[
        "--drain-wait",
        wait,
        "--drain-spread",
        spread,
        "--max-connections-per-address",
        "0",
    ]);
    let env = [
        ("DRAIN_WAIT_SECS", wait.to_string()),
        ("DRAIN_SPREAD_SECS", spread.to_string()),
        ("DRAIN_TEST_SOCKETS", "1000".to_string()),
    ];
    run(&mut cluster, &nginx, "drain.test.mjs", &env);
}

/// Room affinity (`docker/nginx-room-affinity.conf`): the members of a room meet on the node
/// their room hashes to, long-polling stays on its session's node, and a drain moves each
/// room of the drained node whole to one other node, where it relays again.
#[test]
fn room_affinity_through_nginx() {
    let mut cluster = cluster_for_nginx(&[
        "--ping-interval",
        "1",
        "--drain-wait",
        "1",
        "--drain-spread",
        "2",
    ]);
    let nginx = Nginx::spawn_with(&room_affinity_config(), &ports(&cluster));
    run(&mut cluster, &nginx, "room-affinity.test.mjs", &[]);
}

/// The same rooms and relays through `ip_hash` and through room affinity, in front of the same
/// nodes: prints the share of relays delivered on the sender's node for each, and checks that
/// room affinity keeps (nearly) all of them there.
#[test]
fn local_relay_share_with_and_without_room_affinity() {
    let mut cluster = cluster_for_nginx(&[]);
    let ip_hash = Nginx::spawn(&ports(&cluster));
    let affinity = Nginx::spawn_with(&room_affinity_config(), &ports(&cluster));
    let env = [
        ("LOCALITY_IP_HASH_URL", ip_hash.url()),
        ("LOCALITY_ROOM_AFFINITY_URL", affinity.url()),
    ];
    run(&mut cluster, &ip_hash, "relay-locality.test.mjs", &env);
}
