//! The cluster event bus: socketioxide-redis's `Driver` over fred, built not to lose messages.
//!
//! socketioxide-redis turns every emit to a room into one `SPUBLISH` and hands each node what
//! it receives on its subscriptions. The driver it ships for fred has traps for a signaling
//! relay, where one lost message is a failed call:
//!
//! | trap in the stock fred driver                         | what [`RedisBus`] does                              |
//! |-------------------------------------------------------|-----------------------------------------------------|
//! | fred's message channel holds 32 messages, lag = loss  | 16,384 (see `link.rs`); the dispatcher only enqueues |
//! | per-channel queue of 1,024, full = dropped            | the adapter's queue is sized by `STREAM_BUFFER`     |
//! | no reconnect policy, no resubscribe                   | reconnects forever; resubscribes every channel      |
//! | subscribe fails while Redis is down → adapter fails   | subscribe records the channel; done on reconnect    |
//! | a failed publish also skips local delivery            | publish while Redis is down is skipped and counted  |
//!
//! Skipping is right for a broadcast (its local part is delivered; what other nodes missed is
//! told again after the outage). Messages whose sender must know they went out (relays, join
//! introductions) go as node mail ([`RedisBus::send_mail`]), which fails instead, and the
//! sender is refused with `unavailable`.
//!
//! Redis's own pub/sub output-buffer limit (a subscriber more than 32 MB behind is cut off)
//! is kept at bay by reading continuously: fred's reader never waits on us, and the dispatcher
//! never waits on the adapter (its queue is large and allocated only when used).
//!
//! The counters this keeps (`lost`, `skipped`, `failed`) are what an operator alerts on;
//! `/metrics` exports them as `switchboard_bus_messages_lost_total`,
//! `switchboard_bus_publishes_skipped_total` and `switchboard_bus_publishes_failed_total`.
//! It also counts every message published and received, and node mail that found nothing
//! here to deliver to (`switchboard_cluster_messages_{published,received,misrouted}_total`),
//! so an operator can see what the routing costs each node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Message;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{broadcast, mpsc};

use super::link::RedisLink;
use super::mail::{Mail, mail_channel};
use crate::metrics::{self, RedisError};

/// Messages one subscription may queue between the dispatcher and the adapter. tokio's
/// bounded channel allocates in small blocks as messages arrive, so an idle queue costs
/// nothing; only a node that falls minutes behind would reach this.
pub const STREAM_BUFFER: usize = 1 << 20;

/// A bus operation that failed while Redis was reachable, or a required publish while it was
/// not.
#[derive(Debug, thiserror::Error)]
#[error("redis pub/sub: {0}")]
pub struct BusError(fred::error::Error);

/// Every failed bus command passes through here (`?`), so each is counted once.
impl From<fred::error::Error> for BusError {
    fn from(error: fred::error::Error) -> Self {
        metrics::redis_error(RedisError::Command);
        Self(error)
    }
}

/// The socketioxide-redis driver of this node. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    link: RedisLink,
    /// Channel → the adapter's queue for it.
    routes: RwLock<HashMap<String, mpsc::Sender<ChanItem>>>,
    /// Received messages that could not be handed on (should stay 0).
    lost: AtomicU64,
    /// Publishes skipped because Redis was unreachable; their local part was still delivered.
    skipped: AtomicU64,
    /// Node mail Redis did not accept; its sender was refused or will tell again.
    failed: AtomicU64,
    /// Messages published, and received on any channel.
    published: AtomicU64,
    received: AtomicU64,
    /// Node mail received for something this node does not hold.
    misrouted: AtomicU64,
}

impl RedisBus {
    /// Starts routing received messages and resubscribing after every reconnection.
    pub fn start(link: RedisLink) -> Self {
        let bus = Self {
            inner: Arc::new(Inner {
                routes: RwLock::new(HashMap::new()),
                lost: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                published: AtomicU64::new(0),
                received: AtomicU64::new(0),
                misrouted: AtomicU64::new(0),
                link,
            }),
        };
        tokio::spawn(dispatch(
            bus.inner.link.subscriber().message_rx(),
            bus.inner.clone(),
        ));
        tokio::spawn(resubscribe(
            bus.inner.link.subscriber_connected(),
            bus.inner.clone(),
        ));
        bus
    }

    /// Received cluster messages dropped since start (a non-zero value is a bug to report).
    pub fn lost(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// Publishes skipped while Redis was unreachable.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Subscribes again to every channel on the current subscription connection, and returns
    /// once Redis confirmed each: from then on this node hears whatever is published. The
    /// upkeep loop calls it before writing this node's members back, so no node can find a
    /// member here (and relay to it) before this node listens again.
    pub async fn listen(&self) -> Result<(), BusError> {
        for channel in self.inner.channels() {
            self.inner
                .link
                .subscriber()
                .ssubscribe(channel.as_str())
                .await?;
        }
        Ok(())
    }

    /// Node mail (relays, introductions) Redis did not accept.
    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// Messages this node published, on any channel.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Messages this node received, on any channel.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// Node mail this node received for something it does not hold.
    pub fn misrouted(&self) -> u64 {
        self.inner.misrouted.load(Ordering::Relaxed)
    }

    pub fn count_misrouted(&self) {
        self.inner.misrouted.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends `mail` to `node` alone (see `mail`); whether a node was listening. Fails when
    /// Redis is unreachable or refused it; the caller counts that as a failed publish (its
    /// sender is refused) or a skipped one (told again later).
    pub async fn send_mail(&self, node: &str, mail: &Mail) -> Result<bool, BusError> {
        let bus = &self.inner;
        if !bus.link.is_up() {
            return Err(BusError(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                "Redis is unreachable",
            )));
        }
        let receivers: i64 = bus
            .link
            .commands()
            .spublish(mail_channel(node), mail.encode())
            .await?;
        bus.published.fetch_add(1, Ordering::Relaxed);
        Ok(receivers > 0)
    }

    /// Sends `mail` to each of `nodes`; whether Redis took it for every one. What it did not
    /// take is counted as skipped (told again later, or not needed).
    pub async fn send_each(&self, nodes: &[String], mail: &Mail) -> bool {
        let mut taken = true;
        for node in nodes {
            if let Err(e) = self.send_mail(node, mail).await {
                self.count_skipped();
                tracing::debug!(%node, error = %e, "node mail not sent");
                taken = false;
            }
        }
        taken
    }

    /// Counts mail Redis did not take whose sender was refused.
    pub fn count_failed(&self) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts mail Redis did not take that is told again later, or not needed.
    pub fn count_skipped(&self) {
        self.inner.skipped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn channels(&self) -> Vec<String> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.keys().cloned().collect()
    }

    fn route(&self, message: Message) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let channel = message.channel.to_string();
        let Some(data) = message.value.into_owned_bytes() else {
            tracing::warn!(%channel, "cluster message without a binary payload ignored");
            return;
        };
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = routes.get(&channel) else {
            return; // unsubscribed meanwhile
        };
        if let Err(e) = queue.try_send((channel, data)) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cluster message lost: adapter queue unavailable");
        }
    }
}

/// Moves every received message into its channel's queue, in order, without ever waiting.
async fn dispatch(mut messages: broadcast::Receiver<Message>, bus: Arc<Inner>) {
    loop {
        match messages.recv().await {
            Ok(message) => bus.route(message),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                bus.lost.fetch_add(n, Ordering::Relaxed);
                tracing::error!(
                    lost = n,
                    "cluster messages lost: subscriber buffer overflowed"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Subscribes again to every channel each time the subscription connection comes back.
async fn resubscribe(
    mut connected: broadcast::Receiver<fred::types::config::Server>,
    bus: Arc<Inner>,
) {
    loop {
        match connected.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        for channel in bus.channels() {
            if let Err(e) = bus.link.subscriber().ssubscribe(channel.as_str()).await {
                tracing::warn!(%channel, error = %e, "resubscribe failed; retried on reconnect");
            }
        }
        tracing::debug!("cluster channels subscribed");
    }
}

impl Driver for RedisBus {
    type Error = BusError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        let bus = &self.inner;
        if !bus.link.is_up() {
            bus.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let published = bus.link.commands().spublish::<i64, _, _>(chan, val).await;
        if published.is_ok() {
            bus.published.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = published {
            metrics::redis_error(RedisError::Command);
            // Returning the error would make the adapter skip local delivery too.
            bus.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "publish to the cluster failed; delivered locally only");
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (queue, stream) = mpsc::channel(size.max(1));
        self.inner
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chan.clone(), queue);
        let subscriber = self.inner.link.subscriber();
        if subscriber.is_connected()
            && let Err(e) = subscriber.ssubscribe(chan.as_str()).await
        {
            tracing::warn!(channel = %chan, error = %e, "subscribe failed; retried on reconnect");
        }
        Ok(MessageStream::new(stream))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.inner
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        if self.inner.link.subscriber().is_connected() {
            self.inner.link.subscriber().sunsubscribe(chan).await?;
        }
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = self
            .inner
            .link
            .subscriber()
            .pubsub_shardnumsub(chan)
            .await?;
        Ok(count)
    }
}
