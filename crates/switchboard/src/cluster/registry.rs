//! The node registry: which switchboard nodes are alive, and who cleans up after a dead one.
//!
//! Each node keeps a short-lived key about itself (`SET … PX ttl`, refreshed every fifth of
//! the TTL) and its id in the set of known nodes. A known node whose key expired stopped
//! heartbeating: it crashed, hung or lost Redis for a whole TTL. Survivors race for a claim
//! key (`SET … NX`); exactly one wins and reaps that node's members. The claim expires on its
//! own, so a survivor that dies while reaping is replaced on the next sweep.
//!
//! | key                        | type   | value                                         |
//! |----------------------------|--------|-----------------------------------------------|
//! | `sb:nodes`                 | set    | ids of every node not yet reaped              |
//! | `sb:node:{<nodeId>}:info`  | string | [`NodeInfo`] as JSON, expires after the TTL    |
//! | `sb:node:{<nodeId>}:reaper`| string | id of the survivor cleaning up, expires       |

use std::time::Duration;

use fred::interfaces::{KeysInterface, SetsInterface};
use fred::types::{Expiration, SetOptions};
use serde::{Deserialize, Serialize};

use crate::metrics::{self, RedisError};
use crate::redis::RedisLink;

const NODES: &str = "sb:nodes";

fn info_key(node: &str) -> String {
    format!("sb:node:{{{node}}}:info")
}

fn reaper_key(node: &str) -> String {
    format!("sb:node:{{{node}}}:reaper")
}

/// What a node says about itself, as `GET /cluster` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Where clients and operators reach the node (`--advertise-url`).
    pub url: String,
    pub region: String,
    pub started_at_ms: u64,
    /// Sockets connected to the node at its last heartbeat.
    pub sockets: usize,
    /// Rooms with at least one member on the node at its last heartbeat.
    pub rooms: usize,
    /// Whether the node is draining (it takes no new sockets).
    pub draining: bool,
    /// When the node last heartbeat, in milliseconds since the Unix epoch.
    pub heartbeat_ms: u64,
}

/// A registry call that failed because Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("node registry: {0}")]
pub struct RegistryError(fred::error::Error);

/// Every failed registry command passes through here (`?`), so each is counted once.
impl From<fred::error::Error> for RegistryError {
    fn from(error: fred::error::Error) -> Self {
        metrics::redis_error(RedisError::Command);
        Self(error)
    }
}

pub struct NodeRegistry {
    link: RedisLink,
    ttl: Duration,
}

impl NodeRegistry {
    pub fn new(link: RedisLink, ttl: Duration) -> Self {
        Self { link, ttl }
    }

    /// Announces (or re-announces) a node as alive for one TTL. Returns whether Redis still
    /// had the previous heartbeat: `false` from a node that was registered means Redis lost
    /// its data (flushed, failed over to an empty replica) or the node was silent a whole TTL.
    pub async fn heartbeat(&self, info: &NodeInfo) -> Result<bool, RegistryError> {
        let redis = self.link.commands();
        let json = serde_json::to_string(info).unwrap_or_default();
        let ttl = Expiration::PX(self.ttl.as_millis() as i64);
        let previous: Option<String> = redis
            .set(info_key(&info.id), json, Some(ttl), None, true)
            .await?;
        let _: i64 = redis.sadd(NODES, info.id.as_str()).await?;
        Ok(previous.is_some())
    }

    /// Every node that heartbeat within the TTL, sorted by id.
    pub async fn live(&self) -> Result<Vec<NodeInfo>, RegistryError> {
        let mut nodes = Vec::new();
        for id in self.known().await? {
            if let Some(info) = self.info(&id).await? {
                nodes.push(info);
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Known nodes, other than `me`, whose heartbeat expired.
    pub async fn dead(&self, me: &str) -> Result<Vec<String>, RegistryError> {
        let mut dead = Vec::new();
        for id in self.known().await? {
            if id != me && self.info(&id).await?.is_none() {
                dead.push(id);
            }
        }
        Ok(dead)
    }

    /// Tries to become the one survivor that reaps `dead`; the claim lasts `hold`.
    pub async fn claim(&self, dead: &str, me: &str, hold: Duration) -> Result<bool, RegistryError> {
        let won: Option<String> = self
            .link
            .commands()
            .set(
                reaper_key(dead),
                me,
                Some(Expiration::PX(hold.as_millis() as i64)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(won.is_some())
    }

    /// Removes a node from the registry: after it was reaped, or when it leaves cleanly.
    pub async fn forget(&self, node: &str) -> Result<(), RegistryError> {
        let redis = self.link.commands();
        let _: i64 = redis.srem(NODES, node).await?;
        let _: i64 = redis.del(info_key(node)).await?;
        let _: i64 = redis.del(reaper_key(node)).await?;
        Ok(())
    }

    async fn known(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.link.commands().smembers(NODES).await?)
    }

    async fn info(&self, id: &str) -> Result<Option<NodeInfo>, RegistryError> {
        let json: Option<String> = self.link.commands().get(info_key(id)).await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}
