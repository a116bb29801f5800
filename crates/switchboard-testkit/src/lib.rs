//! Test support: real processes on free loopback ports, killed when dropped.
//!
//! Every integration test (Rust or JavaScript) gets its servers from here, so there is one
//! place that knows how to start them, wait until they serve and clean them up, even when the
//! test fails: each handle kills its process (by the PID it spawned) on drop.

//!
//! - [`Node`]: one `switchboard` process (SIGKILL on demand, log printed if the test fails).
//! - [`Redis`]: one `redis-server` that keeps nothing on disk, killable and restartable on
//!   the same port, with a small RESP client ([`Reply`]) to read room hashes.
//! - [`RedisCluster`]: three cluster-mode `redis-server`s forming a real Redis Cluster.
//! - [`Cluster`]: Redis plus several nodes sharing it, and the steps JavaScript scenarios ask
//!   for (kill a node, restart Redis, run a Redis command).
//! - [`Nginx`]: nginx configured by a shipped file (`docker/nginx.conf` or
//!   `docker/nginx-room-affinity.conf`), in front of test nodes.
//! - [`Prometheus`]: Prometheus configured by the shipped `docker/prometheus/`, scraping test
//!   nodes.
//! - [`run_node_test`], [`run_node_test_with_steps`]: the socket.io JavaScript client tests.
//! - [`wait_until`]: bounded polling.

mod cluster;
mod js;
mod metrics;
mod nginx;
mod node;
mod port;
mod prometheus;
mod redis;
mod redis_cluster;
mod wait;

pub use cluster::{Cluster, NODE_TTL_SECS};
pub use js::{LIMITS_TEST_ARGS, js_dir, run_node_test, run_node_test_with_steps};
pub use metrics::exported_metrics;
pub use nginx::{Nginx, room_affinity_config};
pub use node::Node;
pub use port::free_port;
pub use prometheus::{PROMETHEUS_INTERVAL, Prometheus};
pub use redis::{Redis, Reply};
pub use redis_cluster::RedisCluster;
pub use wait::wait_until;
