//! A cluster under test: one `redis-server` and several `switchboard` nodes sharing it, with
//! the steps a JavaScript scenario may ask for half-way through (see
//! [`crate::run_node_test_with_steps`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::node::Node;
use crate::redis::{Redis, json_string};

/// The `--node-ttl` every cluster node gets: short, so crash clean-up tests stay quick. A node
/// heartbeats every ttl/5 and is declared dead once its heartbeat is older than this.
pub const NODE_TTL_SECS: u64 = 3;
/// How long a new node may take to connect to Redis. A node serves HTTP and socket.io before
/// its Redis link is up (it must start even when Redis is down), refusing joins meanwhile, so
/// a cluster is handed to a test only once every node reports `"redis": "up"`.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest graceful stop a `drain-node` step waits for (tests set short drain times).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Redis plus `switchboard` nodes named `node-0`, `node-1`, ... Everything is killed on drop.
pub struct Cluster {
    /// Dropped after the nodes (fields drop in declaration order), so no node ever sees Redis
    /// vanish while the test tears down.
    pub nodes: Vec<Node>,
    pub redis: Redis,
}

impl Cluster {
    /// Starts Redis, then `count` nodes of `binary` with `--redis-url`, `--node-id node-<i>`,
    /// `--node-ttl` [`NODE_TTL_SECS`] and the extra `args`, and waits until every node's
    /// `/health` says its Redis link is up.
    pub fn start(binary: impl AsRef<Path>, count: usize, args: &[&str]) -> Cluster {
        let binary: PathBuf = binary.as_ref().to_path_buf();
        let redis = Redis::spawn();
        let url = redis.url();
        let ttl = NODE_TTL_SECS.to_string();
        let nodes = (0..count)
            .map(|i| {
                let id = Cluster::node_id(i);
                let mut all = vec!["--redis-url", &url, "--node-id", &id, "--node-ttl", &ttl];
                all.extend_from_slice(args);
                Node::spawn(&binary, &all)
            })
            .collect::<Vec<Node>>();
        for node in &nodes {
            assert!(
                node.wait_redis("up", LINK_TIMEOUT),
                "a node did not connect to Redis within {LINK_TIMEOUT:?}:\n{}",
                node.log()
            );
        }
        Cluster { nodes, redis }
    }

    /// The id of node `i`.
    pub fn node_id(i: usize) -> String {
        format!("node-{i}")
    }

    /// The environment the JavaScript harness reads: every node's URL (successive sockets
    /// alternate between them), their ids, the node TTL and the transport.
    pub fn js_env(&self, transport: &str) -> Vec<(&'static str, String)> {
        let urls: Vec<String> = self.nodes.iter().map(Node::url).collect();
        let ids: Vec<String> = (0..self.nodes.len()).map(Cluster::node_id).collect();
        vec![
            ("SWITCHBOARD_URL", urls[0].clone()),
            ("SWITCHBOARD_URLS", urls.join(",")),
            ("SWITCHBOARD_NODE_IDS", ids.join(",")),
            ("SWITCHBOARD_NODE_TTL", NODE_TTL_SECS.to_string()),
            ("SWITCHBOARD_TRANSPORT", transport.to_string()),
        ]
    }

    /// Runs one step a JavaScript scenario asked for and answers with JSON:
    ///
    /// | path | does | answers |
    /// |---|---|---|
    /// | `kill-node/<i>` | SIGKILL node `i` | `true` |
    /// | `restart-node/<i>` | SIGKILL node `i` if it runs, start it again (same id, port, args), wait until its Redis link is up | `true` |
    /// | `term-node/<i>` | SIGTERM node `i`, wait up to 10 s for it to exit | whether it exited |
    /// | `drain-node/<i>` | SIGTERM node `i` (it drains), wait up to 60 s for it to exit | `{"exited_after_ms": …}` |
    /// | `drain-restart/<i>` | `drain-node/<i>`, then start it again and wait until its Redis link is up | `{"exited_after_ms": …}` |
    /// | `kill-redis` | SIGKILL Redis | `true` |
    /// | `restart-redis` | start an empty Redis on the same port | `true` |
    /// | `pause-redis` / `resume-redis` | SIGSTOP / SIGCONT Redis (hung: connections open, commands time out) | whether it was signalled |
    /// | `redis` | run the command whose arguments are the body's lines | the reply |
    /// | `alive` | - | whether each node still runs, e.g. `[true,false,true]` |
    /// | `log/<i>` | - | node `i`'s log so far, as a string |
    pub fn step(&mut self, path: &str, body: &str) -> Result<String, String> {
        let (name, arg) = path.split_once('/').unwrap_or((path, ""));
        match name {
            "kill-node" => {
                self.node_mut(arg)?.kill();
                Ok("true".to_string())
            }
            "restart-node" => {
                let node = self.node_mut(arg)?;
                node.restart();
                if !node.wait_redis("up", LINK_TIMEOUT) {
                    return Err(format!("restarted node {arg} did not connect to Redis"));
                }
                Ok("true".to_string())
            }
            "term-node" => {
                let exited = self.node_mut(arg)?.terminate(Duration::from_secs(10));
                Ok(exited.to_string())
            }
            "drain-node" => {
                let exited_after = drain(self.node_mut(arg)?)?;
                Ok(format!("{{\"exited_after_ms\":{exited_after}}}"))
            }
            "drain-restart" => {
                let node = self.node_mut(arg)?;
                let exited_after = drain(node)?;
                node.relaunch();
                if !node.wait_redis("up", LINK_TIMEOUT) {
                    return Err(format!("relaunched node {arg} did not connect to Redis"));
                }
                Ok(format!("{{\"exited_after_ms\":{exited_after}}}"))
            }
            "kill-redis" => {
                self.redis.kill();
                Ok("true".to_string())
            }
            "pause-redis" => Ok(self.redis.freeze(true).to_string()),
            "resume-redis" => Ok(self.redis.freeze(false).to_string()),
            "restart-redis" => {
                self.redis.restart();
                Ok("true".to_string())
            }
            "redis" => {
                let args: Vec<&str> = body.lines().collect();
                Ok(self.redis.command(&args)?.to_json())
            }
            "alive" => {
                let alive: Vec<&str> = self
                    .nodes
                    .iter_mut()
                    .map(|n| if n.is_running() { "true" } else { "false" })
                    .collect();
                Ok(format!("[{}]", alive.join(",")))
            }
            "log" => Ok(json_string(&self.node_mut(arg)?.log())),
            _ => Err(format!("unknown step {path:?}")),
        }
    }

    fn node_mut(&mut self, index: &str) -> Result<&mut Node, String> {
        let i: usize = index
            .parse()
            .map_err(|e| format!("bad node index {index:?}: {e}"))?;
        self.nodes.get_mut(i).ok_or_else(|| format!("no node {i}"))
    }
}

/// SIGTERMs a node and waits for it to finish draining and exit; returns the milliseconds
/// that took.
fn drain(node: &mut Node) -> Result<u128, String> {
    let started = std::time::Instant::now();
    if !node.terminate(DRAIN_TIMEOUT) {
        return Err(format!(
            "node did not exit within {DRAIN_TIMEOUT:?} of SIGTERM"
        ));
    }
    Ok(started.elapsed().as_millis())
}
