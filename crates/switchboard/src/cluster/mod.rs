//! Cluster mode: several switchboard nodes sharing one Redis.
//!
//! What each part is for:
//!
//! - the Redis link, its pub/sub bus and node mail: [`crate::redis`], shared with the room
//!   store and the sessions.
//! - room state: [`crate::rooms::RedisRoomStore`], so every node sees who is in a room, and
//!   where the other nodes' members of its own rooms are (its view, `rooms::view`).
//! - [`registry`]: which nodes are alive, so a survivor can clean up after a crashed one.
//! - [`mailroom`]: what other nodes send this one (relays, room events, roster changes,
//!   session events), and the roster changes this node tells them.
//! - [`upkeep`]: the node's upkeep loop ([`Cluster::run`]), which heartbeats, resynchronises
//!   this node's members into Redis after every (re)connection, and reaps dead nodes.
//!
//! Request handling knows little of this: handlers call the `RoomStore` trait and emit
//! through socketioxide, as in single-process mode; what goes to other nodes goes as node
//! mail over the bus (`signaling::broadcast`, `signaling::relay`).

mod mailroom;
mod registry;
mod upkeep;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socketioxide::adapter::Emitter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

pub use registry::{NodeInfo, NodeRegistry};

use crate::redis::{InvalidRedisUrl, RedisBus, RedisLink, STREAM_BUFFER, mail_channel};
use crate::rooms::{RedisRoomStore, now_ms};
use crate::sessions::RedisSessionDirectory;
use crate::signaling::Signaling;

/// How long a leaving node waits for the mail it received to be handled.
const MAIL_FLUSH: Duration = Duration::from_secs(2);

/// How long a starting node waits for Redis before it serves anyway.
const STARTUP_WAIT: Duration = Duration::from_secs(3);

/// The socketioxide adapter of a cluster node.
pub type ClusterAdapter = CustomRedisAdapter<Emitter, RedisBus>;

/// How this node presents itself in the registry.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub id: String,
    pub url: String,
    pub region: String,
    pub started_at_ms: u64,
}

impl NodeIdentity {
    /// What this node tells the registry (and `GET /cluster`) about itself now.
    pub fn describe(&self, signaling: &Signaling, draining: bool) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            url: self.url.clone(),
            region: self.region.clone(),
            started_at_ms: self.started_at_ms,
            sockets: signaling.connected_sockets(),
            rooms: signaling.store.local_rooms(),
            draining,
            heartbeat_ms: now_ms(),
        }
    }
}

pub struct Cluster {
    pub link: RedisLink,
    pub bus: RedisBus,
    pub store: Arc<RedisRoomStore>,
    pub sessions: Arc<RedisSessionDirectory>,
    pub registry: NodeRegistry,
    pub node: NodeIdentity,
    /// A node silent this long is dead.
    ttl: Duration,
    /// Set when the node starts draining; heartbeats carry it to `GET /cluster`.
    draining: AtomicBool,
    /// Closed once the mail reader has handled every message this node will receive.
    mail_read: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    /// Connects to Redis, waiting for it a moment (`STARTUP_WAIT`) so the first clients of a
    /// freshly started node find room state; after that the node serves without Redis and
    /// keeps trying in the background.
    pub async fn open(
        url: &str,
        node: NodeIdentity,
        ttl: Duration,
    ) -> Result<Self, InvalidRedisUrl> {
        let link = RedisLink::open(url)?;
        if !link.wait_up(STARTUP_WAIT).await {
            tracing::warn!("Redis not reachable yet; serving local rooms only until it is");
        }
        let store = Arc::new(RedisRoomStore::new(link.clone(), node.id.clone()));
        let bus = RedisBus::start(link.clone());
        Ok(Self {
            sessions: Arc::new(RedisSessionDirectory::new(
                link.clone(),
                bus.clone(),
                node.id.clone(),
                store.clone(),
            )),
            bus,
            store,
            registry: NodeRegistry::new(link.clone(), ttl),
            link,
            node,
            ttl,
            draining: AtomicBool::new(false),
            mail_read: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The socketioxide-redis adapter over this node's bus.
    pub fn adapter(&self) -> RedisAdapterCtr<RedisBus> {
        let config = RedisAdapterConfig::new()
            .with_prefix("sb")
            .with_stream_buffer(STREAM_BUFFER);
        RedisAdapterCtr::new_with_driver(self.bus.clone(), config)
    }

    fn heartbeat_every(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_millis(200))
    }

    /// Marks this node draining in the registry at once, not at the next heartbeat.
    pub async fn cordon(&self, signaling: &Signaling) {
        self.draining.store(true, Ordering::Relaxed);
        if let Err(e) = self.registry.heartbeat(&self.describe(signaling)).await {
            tracing::warn!(error = %e, "could not mark this node draining in the registry");
        }
    }

    /// What this node tells the registry about itself now.
    pub fn describe(&self, signaling: &Signaling) -> NodeInfo {
        self.node
            .describe(signaling, self.draining.load(Ordering::Relaxed))
    }

    /// Leaves the cluster cleanly: removes this node from the registry, so nobody waits for
    /// its heartbeat to expire. Its members are gone already (their sockets were closed).
    pub async fn leave(&self) {
        // Mail for sessions that were here: stop receiving it (senders then keep it for the
        // sessions in Redis), and handle what already arrived before exiting.
        let channel = mail_channel(&self.node.id);
        if let Err(e) = socketioxide_redis::drivers::Driver::unsubscribe(&self.bus, channel).await {
            tracing::warn!(error = %e, "could not stop receiving node mail");
        }
        let mut read = self.mail_read.subscribe();
        let _ = tokio::time::timeout(MAIL_FLUSH, read.wait_for(|done| *done)).await;
        if let Err(e) = self.store.resync().await {
            tracing::warn!(error = %e, "could not remove this node's members from Redis");
        }
        if let Err(e) = self.registry.forget(&self.node.id).await {
            tracing::warn!(error = %e, "could not leave the node registry");
        }
    }
}
