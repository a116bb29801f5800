//! A three-shard Redis Cluster under test, for the nodes' `redis-cluster://` URLs.
//!
//! Three `redis-server` processes in cluster mode, each owning a third of the hash slots and
//! introduced to each other with `CLUSTER MEET`: the smallest real Redis Cluster, built with
//! the same RESP client as [`Redis`] (no `redis-cli` needed). No replicas: the point is that
//! keys, scripts and sharded pub/sub are routed across shards, not failover.

use std::time::Duration;

use crate::port::free_port;
use crate::redis::{Redis, Reply};
use crate::wait::wait_until;

const SHARDS: usize = 3;
const SLOTS: u32 = 16_384;
/// How long the shards may take to agree that the cluster is up.
const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// Three cluster-mode `redis-server`s on loopback. Each is killed on drop.
pub struct RedisCluster {
    pub shards: Vec<Redis>,
    configs: Vec<std::path::PathBuf>,
}

impl RedisCluster {
    /// Starts the shards, assigns slots, joins them and waits for `cluster_state:ok`.
    pub fn spawn() -> RedisCluster {
        let mut shards = Vec::new();
        let mut configs = Vec::new();
        for _ in 0..SHARDS {
            let port = free_port();
            let config = std::env::temp_dir().join(format!("switchboard-test-cluster-{port}.conf"));
            let _ = std::fs::remove_file(&config);
            let config_arg = config.to_string_lossy().into_owned();
            shards.push(Redis::spawn_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config_arg,
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
            configs.push(config);
        }
        let per_shard = SLOTS / SHARDS as u32;
        for (i, shard) in shards.iter().enumerate() {
            let first = per_shard * i as u32;
            let last = if i + 1 == SHARDS {
                SLOTS - 1
            } else {
                first + per_shard - 1
            };
            let (first, last) = (first.to_string(), last.to_string());
            expect_ok(shard.command(&["CLUSTER", "ADDSLOTSRANGE", &first, &last]));
        }
        for other in &shards[1..] {
            let port = other.port().to_string();
            expect_ok(shards[0].command(&["CLUSTER", "MEET", "127.0.0.1", &port]));
        }
        let formed = wait_until(FORM_TIMEOUT, || {
            shards
                .iter()
                .all(|shard| match shard.command(&["CLUSTER", "INFO"]) {
                    Ok(Reply::Bulk(Some(info))) => info.contains("cluster_state:ok"),
                    _ => false,
                })
        });
        assert!(
            formed,
            "the Redis Cluster did not form within {FORM_TIMEOUT:?}"
        );
        RedisCluster { shards, configs }
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=127.0.0.1:P3`
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.shards[0].port());
        for (i, shard) in self.shards[1..].iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            url.push_str(&format!("{sep}node=127.0.0.1:{}", shard.port()));
        }
        url
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.shards.clear();
        for config in &self.configs {
            let _ = std::fs::remove_file(config);
        }
    }
}

fn expect_ok(reply: Result<Reply, String>) {
    match reply {
        Ok(Reply::Status(status)) if status == "OK" => {}
        other => panic!("Redis Cluster set-up failed: {other:?}"),
    }
}
