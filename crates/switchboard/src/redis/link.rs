//! The node's connection to Redis: how it connects, reconnects and fails.
//!
//! Everything cluster-wide (room state, the node registry, the event bus) goes through one
//! [`RedisLink`], so the rules for talking to Redis live in one place:
//!
//! - **Never exit because of Redis.** The first connection is not awaited and every failure,
//!   first or later, goes to fred's reconnect loop (forever, once a second). A node started
//!   before its Redis, or during a Redis restart, serves local rooms meanwhile.
//! - **Fail fast while disconnected.** Commands are sent with fred's `fail_fast` and a short
//!   timeout, so a handler that needs Redis answers `unavailable` at once instead of queueing
//!   behind a reconnect; events between sockets on this node do not wait for Redis at all.
//!   A command is written once: one in flight when the connection drops fails rather than
//!   being replayed into a Redis that may have restarted empty.
//! - **RESP3**, which sharded pub/sub (`SSUBSCRIBE`, Redis 7+) needs on a connection that also
//!   sends commands.
//! - Two connections: one for commands and publishing, one for subscriptions, so a burst of
//!   incoming cluster traffic never delays a store write or a publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface};
use fred::prelude::{Builder, Config, ReconnectPolicy};
use fred::types::RespVersion;
use fred::types::config::Server;
use fred::types::config::{ConnectionConfig, Options, PerformanceConfig, UnresponsiveConfig};
use tokio::sync::broadcast;

use crate::metrics::{self, RedisError};

/// How long a command may take before the caller treats Redis as unavailable.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection backoff: the first attempt after 50 ms (fred waits before its very first
/// attempt too), doubling up to one attempt a second.
const RECONNECT_FIRST_MS: u32 = 50;
const RECONNECT_MAX_MS: u32 = 1000;
/// Pub/sub messages fred may hold for the bus before the bus must have taken them. The bus
/// only moves each one into a queue, so this covers scheduling hiccups, not slow consumers.
const SUBSCRIBER_BUFFER: usize = 16_384;

/// URL schemes switchboard accepts: plain, TLS, Redis Cluster (plain or TLS).
const SCHEMES: [&str; 4] = ["redis", "rediss", "redis-cluster", "rediss-cluster"];

/// Why a Redis URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid --redis-url: {0}")]
pub struct InvalidRedisUrl(String);

/// The two Redis connections of this node.
#[derive(Clone)]
pub struct RedisLink {
    commands: Client,
    subscriber: SubscriberClient,
    /// Set once the first connection succeeded; decides how loudly failures are logged.
    ever_up: Arc<AtomicBool>,
}

impl RedisLink {
    /// Builds both clients and starts connecting in the background; returns at once.
    pub fn open(url: &str) -> Result<Self, InvalidRedisUrl> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|s| SCHEMES.contains(&s)) {
            return Err(InvalidRedisUrl(format!(
                "{} does not start with one of {}",
                redacted(url),
                SCHEMES.join("://, ")
            )));
        }
        let mut config = Config::from_url(url).map_err(|e| InvalidRedisUrl(e.to_string()))?;
        config.version = RespVersion::RESP3;
        config.fail_fast = false;
        let connection = ConnectionConfig {
            connection_timeout: Duration::from_secs(3),
            internal_command_timeout: Duration::from_secs(3),
            unresponsive: UnresponsiveConfig {
                max_timeout: Some(Duration::from_secs(5)),
                interval: Duration::from_secs(1),
            },
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: COMMAND_TIMEOUT,
            broadcast_channel_capacity: SUBSCRIBER_BUFFER,
            ..PerformanceConfig::default()
        };
        let mut policy =
            ReconnectPolicy::new_exponential(0, RECONNECT_FIRST_MS, RECONNECT_MAX_MS, 2);
        policy.set_jitter(20);
        let mut builder = Builder::from_config(config);
        builder
            .set_connection_config(connection)
            .set_performance_config(performance)
            .set_policy(policy);
        let commands = builder
            .build()
            .map_err(|e| InvalidRedisUrl(e.to_string()))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| InvalidRedisUrl(e.to_string()))?;
        let link = Self {
            commands,
            subscriber,
            ever_up: Arc::new(AtomicBool::new(false)),
        };
        link.report_failures();
        tracing::info!(redis = %redacted(url), "connecting to Redis");
        link.commands.connect();
        link.subscriber.connect();
        Ok(link)
    }

    /// Whether both connections are up right now.
    pub fn is_up(&self) -> bool {
        self.commands.is_connected() && self.subscriber.is_connected()
    }

    /// Waits until both connections are up, or `limit` passed; whether they are up.
    pub async fn wait_up(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.is_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The command connection, set to fail fast while Redis is unreachable. A command whose
    /// connection closes before its answer fails too, instead of being sent again on the next
    /// connection: that may be to a Redis restarted empty, where a publish reaches no node
    /// yet listening and a lookup finds nobody, while the caller would take the answer as
    /// true.
    pub fn commands(&self) -> fred::clients::WithOptions<Client> {
        self.commands.with_options(&Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(COMMAND_TIMEOUT),
            ..Options::default()
        })
    }

    /// Runs a Lua script by its hash, sending its source only when Redis does not know it yet
    /// (first use, or after Redis restarted).
    pub async fn run_script(
        &self,
        script: &fred::types::scripts::Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<fred::types::Value, fred::error::Error> {
        use fred::interfaces::LuaInterface;
        let redis = self.commands();
        match redis
            .evalsha(script.sha1().clone(), keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let source = script.lua().cloned().unwrap_or_default();
                redis.eval(source, keys, args).await
            }
            other => other,
        }
    }

    /// The raw command client, for the few calls that need fred's own helpers.
    pub fn command_client(&self) -> &Client {
        &self.commands
    }

    pub fn subscriber(&self) -> &SubscriberClient {
        &self.subscriber
    }

    /// Fires each time the command connection is (re)established, the first time included.
    pub fn connected(&self) -> broadcast::Receiver<Server> {
        self.commands.reconnect_rx()
    }

    /// Fires each time the subscription connection is (re)established.
    pub fn subscriber_connected(&self) -> broadcast::Receiver<Server> {
        self.subscriber.reconnect_rx()
    }

    /// Logs connection changes: every (re)connection, the first failure after being up, and
    /// while never connected, a reminder every 30 attempts that this node is still retrying.
    fn report_failures(&self) {
        let mut connected = self.commands.reconnect_rx();
        let mut errors = self.commands.error_rx();
        let ever_up = self.ever_up.clone();
        tokio::spawn(async move {
            let mut failures: u64 = 0;
            loop {
                tokio::select! {
                    server = connected.recv() => match server {
                        Ok(server) => {
                            tracing::info!(%server, "Redis connected");
                            ever_up.store(true, Ordering::Relaxed);
                            failures = 0;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    error = errors.recv() => match error {
                        Ok((error, _)) => {
                            metrics::redis_error(RedisError::Connection);
                            failures += 1;
                            if failures == 1 || failures.is_multiple_of(30) {
                                let state = if ever_up.load(Ordering::Relaxed) {
                                    "Redis connection lost"
                                } else {
                                    "Redis unreachable"
                                };
                                tracing::warn!(%error, attempts = failures,
                                    "{state}; serving local rooms only, retrying every second");
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}

/// The URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("redis://user:secret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused() {
        assert!(RedisLink::open("http://not-redis").is_err());
    }
}
