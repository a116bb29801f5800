//! The node's upkeep loop: what keeps Redis true about this node, and the cluster free of
//! dead nodes' members.
//!
//! Every `--node-ttl`/5 the loop (1) after any (re)connection, resyncs this node's members
//! into Redis and announces what it found stale, (2) heartbeats, resyncing again at once if
//! Redis lost the previous heartbeat, (3) tells the other nodes what they missed during an
//! outage, once they can have resubscribed, and (4) reaps dead nodes. See
//! docs/architecture.md, "Node registry and crash cleanup".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use socketioxide::SocketIo;
use socketioxide_redis::drivers::Driver;
use tokio::sync::broadcast;

use super::{Cluster, ClusterAdapter, Mail, bus, mail_channel};
use crate::metrics;
use crate::rooms::{Departure, Unheard, now_ms};
use crate::sessions::{Orphan, Roster};
use crate::signaling::{self, Signaling};

/// How long after its grace a parked session is left to the node that parked it before any
/// node's sweep ends it (that node may have crashed).
const SWEEP_MARGIN_MS: u64 = 2000;

/// How long after its own reconnection a node waits before telling the others what they
/// missed during an outage: pub/sub keeps nothing, so they must have resubscribed first, and
/// they retry their connection at least once a second (`link.rs`).
const OTHERS_RECONNECT: Duration = Duration::from_millis(1500);

/// What the upkeep loop remembers between ticks.
#[derive(Default)]
struct Upkeep {
    /// Since when Redis holds this node's members; `None` after any (re)connection.
    in_sync_since: Option<Instant>,
    /// Whether this node's heartbeat was written since the last resync.
    registered: bool,
    /// What the other nodes missed during an outage, and when to tell them.
    missed: Option<(Instant, Unheard)>,
}

/// When the upkeep loop should run again.
#[derive(PartialEq, Eq)]
enum Next {
    OnTick,
    Now,
}

impl Cluster {
    /// The node's upkeep, until the process ends: on every tick, heartbeat and reap dead
    /// nodes; after every (re)connection to Redis, first write this node's members back.
    ///
    /// A node reaps others only after it has itself been connected for a whole TTL: when
    /// Redis comes back after a long outage every heartbeat has expired, and the living nodes
    /// must get the chance to heartbeat again before anyone is declared dead.
    pub fn run(self: Arc<Self>, io: SocketIo<ClusterAdapter>, signaling: Arc<Signaling>) {
        tokio::spawn(self.clone().read_mail(signaling.clone()));
        tokio::spawn(async move {
            let mut connected = self.link.connected();
            let mut ticks = tokio::time::interval(self.heartbeat_every());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut upkeep = Upkeep::default();
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    event = connected.recv() => {
                        if !matches!(event, Err(broadcast::error::RecvError::Closed)) {
                            upkeep.in_sync_since = None;
                        }
                    }
                }
                if self.tick(&io, &signaling, &mut upkeep).await == Next::Now {
                    ticks.reset_immediately();
                }
            }
        });
    }

    /// One round of upkeep: resync if needed, heartbeat, tell what was missed, reap.
    async fn tick(
        &self,
        io: &SocketIo<ClusterAdapter>,
        signaling: &Signaling,
        upkeep: &mut Upkeep,
    ) -> Next {
        if !self.link.is_up() {
            upkeep.in_sync_since = None;
            return Next::OnTick;
        }
        if upkeep.in_sync_since.is_none() {
            let resynced = match self.store.resync().await {
                Ok(resynced) => resynced,
                Err(e) => {
                    tracing::warn!(error = %e, "could not write room state to Redis");
                    return Next::OnTick;
                }
            };
            tracing::info!(
                stale = resynced.stale.len(),
                left_while_down = resynced.unheard.departures.len(),
                "room state written to Redis"
            );
            announce(io, &resynced.stale).await;
            let mut departed = Vec::new();
            let node = self.node.id.clone();
            self.park_orphans(&node, resynced.orphaned, signaling, &mut departed)
                .await;
            announce(io, &departed).await;
            let mut unheard = resynced.unheard;
            if let Some((_, earlier)) = upkeep.missed.take() {
                unheard.departures.extend(earlier.departures);
                unheard.media.extend(earlier.media);
            }
            upkeep.missed = Some((Instant::now() + OTHERS_RECONNECT, unheard));
            upkeep.in_sync_since = Some(Instant::now());
            upkeep.registered = false;
        }
        match self.registry.heartbeat(&self.describe(signaling)).await {
            Ok(false) if upkeep.registered => {
                tracing::warn!("Redis lost this node's state; writing it again");
                upkeep.in_sync_since = None;
                return Next::Now;
            }
            Ok(_) => upkeep.registered = true,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                return Next::OnTick;
            }
        }
        let due = |(at, _): &(Instant, Unheard)| Instant::now() >= *at;
        if upkeep.missed.as_ref().is_some_and(due)
            && let Some((_, unheard)) = upkeep.missed.take()
        {
            self.tell_other_nodes(io, &unheard).await;
        }
        if upkeep
            .in_sync_since
            .is_some_and(|t| t.elapsed() >= self.ttl)
        {
            self.reap_dead(io, signaling).await;
            self.end_due_sessions(io, signaling).await;
        }
        Next::OnTick
    }

    /// Handles the mail addressed to this node (see `mail`), until the process ends.
    async fn read_mail(self: Arc<Self>, signaling: Arc<Signaling>) {
        let channel = mail_channel(&self.node.id);
        let mut inbox = match self.bus.subscribe(channel, bus::STREAM_BUFFER).await {
            Ok(inbox) => inbox,
            Err(e) => {
                tracing::error!(error = %e, "cannot receive node mail; resumable sessions degrade");
                return;
            }
        };
        while let Some((_, bytes)) = inbox.next().await {
            match Mail::decode(&bytes) {
                Some(Mail::Deliver {
                    peer,
                    event,
                    payload,
                }) => {
                    // In its own task: a session being kept in Redis must not hold up the
                    // others. Events for one session arrive from one sender's node in order
                    // and are handed on in order unless its session is parked.
                    let result =
                        signaling::to_session(&signaling, &peer, &event, payload, None).await;
                    if let Err(e) = result {
                        tracing::warn!(peer, event, error = %e, "event for a session lost");
                    }
                }
                Some(Mail::Moved { peer }) => {
                    if signaling.sessions.moved_away(&peer) {
                        let rooms = signaling.store.release(&peer).await;
                        tracing::info!(
                            peer,
                            rooms = rooms.len(),
                            "session resumed on another node"
                        );
                    }
                }
                None => tracing::warn!("unreadable node mail ignored"),
            }
        }
        self.mail_read.send_replace(true);
    }

    /// Ends parked sessions whose grace is over and whose node did not end them (it
    /// crashed or exited), and announces their departures.
    async fn end_due_sessions(&self, io: &SocketIo<ClusterAdapter>, signaling: &Signaling) {
        let due = match self
            .sessions
            .due(now_ms().saturating_sub(SWEEP_MARGIN_MS))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "could not list parked sessions");
                return;
            }
        };
        for peer in due {
            match self.sessions.end_due(&peer).await {
                Ok(Some(roster)) => {
                    signaling::announce_session_end(io, signaling.store.as_ref(), &peer, &roster)
                        .await;
                    metrics::session_ended(false);
                    tracing::info!(peer, reason = "expired", "session ended");
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(peer, error = %e, "could not end parked session"),
            }
        }
    }

    /// Tells the sockets on other nodes what they missed while Redis was down: departures and
    /// media changes of this node's members (sockets on this node heard them at the time).
    async fn tell_other_nodes(&self, io: &SocketIo<ClusterAdapter>, unheard: &Unheard) {
        for departure in &unheard.departures {
            let here = self.store.local_members(&departure.room);
            signaling::announce_departure(io, &departure.room, &departure.member_id, here).await;
        }
        for (room, member_id, media) in &unheard.media {
            let here = self.store.local_members(room);
            signaling::announce_media(io, room, member_id, *media, here).await;
        }
    }

    /// Cleans up after every dead node this node wins the claim for. Its resumable sessions
    /// are parked for their grace, as if their connections had just been lost.
    async fn reap_dead(&self, io: &SocketIo<ClusterAdapter>, signaling: &Signaling) {
        let dead = match self.registry.dead(&self.node.id).await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!(error = %e, "could not list dead nodes");
                return;
            }
        };
        for node in dead {
            match self
                .registry
                .claim(&node, &self.node.id, self.ttl * 3)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(%node, error = %e, "could not claim dead node");
                    continue;
                }
            }
            match self.store.reap(&node).await {
                Ok(reaped) => {
                    let mut departed = reaped.departed;
                    let parked = self
                        .park_orphans(&node, reaped.resumable, signaling, &mut departed)
                        .await;
                    tracing::warn!(%node, ghosts = departed.len(), parked, "node died; its members were removed from their rooms");
                    metrics::ghosts_reaped(departed.len());
                    announce(io, &departed).await;
                    if let Err(e) = self.registry.forget(&node).await {
                        tracing::warn!(%node, error = %e, "could not forget reaped node");
                    }
                }
                Err(e) => tracing::warn!(%node, error = %e, "reaping failed; retried later"),
            }
        }
    }
}

impl Cluster {
    /// Parks the resumable sessions of a dead node; those without a session record left are
    /// removed from their rooms like any ghost (added to `departed`). Returns how many were
    /// parked.
    async fn park_orphans(
        &self,
        node: &str,
        members: Vec<Departure>,
        signaling: &Signaling,
        departed: &mut Vec<Departure>,
    ) -> usize {
        let mut sessions: BTreeMap<String, Vec<Departure>> = BTreeMap::new();
        for member in members {
            sessions
                .entry(member.member_id.clone())
                .or_default()
                .push(member);
        }
        let mut parked = 0;
        for (peer, rooms) in sessions {
            let mut roster = Roster::new();
            for d in &rooms {
                let peers = signaling.store.peers(&d.room).await.unwrap_or_default();
                roster.insert(
                    d.room.clone(),
                    peers.into_iter().map(|p| p.member.id).collect(),
                );
            }
            let grace = signaling.sessions.grace();
            match self.sessions.park_orphan(&peer, node, &roster, grace).await {
                Ok(Orphan::Parked) => parked += 1,
                Ok(Orphan::LivesElsewhere) => {}
                Ok(Orphan::Gone) => {
                    for d in rooms {
                        if self
                            .store
                            .remove_member(&d.room, &peer)
                            .await
                            .unwrap_or(false)
                        {
                            departed.push(d);
                        }
                    }
                }
                Err(e) => tracing::warn!(peer, error = %e, "could not park a dead node's session"),
            }
        }
        parked
    }
}

/// Tells each room that a member left without saying so.
async fn announce(io: &SocketIo<ClusterAdapter>, departed: &[Departure]) {
    for departure in departed {
        signaling::announce_departure(io, &departure.room, &departure.member_id, Vec::new()).await;
    }
}
