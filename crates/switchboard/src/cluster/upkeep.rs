//! The node's upkeep loop: what keeps Redis true about this node, and the cluster free of
//! dead nodes' members.
//!
//! Every `--node-ttl`/5 the loop (1) after any (re)connection of either Redis connection, at
//! once, resyncs this node's members into Redis and announces what it found stale, (2)
//! heartbeats, resyncing again at once if Redis lost the previous heartbeat, (3) while Redis's
//! roster is being rebuilt, opens the gate in front of joins once every node it expects has
//! written its members back (polling every [`REBUILD_POLL`]), (4) tells the other nodes what
//! they missed during an outage, once they can have resubscribed, and (5) reaps dead nodes.
//! See docs/architecture.md, "Node registry and crash cleanup" and "Resync".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketioxide::SocketIo;
use tokio::sync::broadcast;

use super::{Cluster, ClusterAdapter};
use crate::metrics;
use crate::redis::RosterChange;
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
/// How often a node whose joins wait for the roster to be whole checks whether it is.
const REBUILD_POLL: Duration = Duration::from_millis(100);

/// What the upkeep loop remembers between ticks.
#[derive(Default)]
struct Upkeep {
    /// Since when Redis holds this node's members; `None` after any (re)connection.
    in_sync_since: Option<Instant>,
    /// Whether this node's heartbeat was written since the last resync.
    registered: bool,
    /// What the other nodes missed during an outage, and when to tell them.
    missed: Option<(Instant, Unheard)>,
    /// When each node was last known alive while the roster was whole (heartbeating, or
    /// listed as synced when the gate opened): after Redis lost its data, the nodes seen
    /// within a TTL before are those whose members must be written back before joins resume.
    /// Kept across ticks rather than replaced by each tick's live list: right after a
    /// rebuild, nodes have written their members back but may not have heartbeat yet.
    last_seen: HashMap<String, Instant>,
    /// Since when this node waits for the roster to be whole again.
    rebuilding_since: Option<Instant>,
    /// Whether this node's view of its rooms' other members must be read from Redis again
    /// (after a resync, once the roster is whole).
    views_stale: bool,
}

/// When the upkeep loop should run again.
#[derive(PartialEq, Eq)]
enum Next {
    OnTick,
    Now,
    Soon,
}

impl Cluster {
    /// The node's upkeep, until the process ends: on every tick, heartbeat and reap dead
    /// nodes; after every (re)connection to Redis, first write this node's members back.
    ///
    /// A node reaps others only after it has itself been connected for a whole TTL: when
    /// Redis comes back after a long outage every heartbeat has expired, and the living nodes
    /// must get the chance to heartbeat again before anyone is declared dead.
    pub fn run(self: Arc<Self>, io: SocketIo<ClusterAdapter>, signaling: Arc<Signaling>) {
        tokio::spawn(self.clone().read_mail(io.clone(), signaling.clone()));
        if let Some(told) = self.store.told() {
            tokio::spawn(self.clone().tell_roster_changes(told));
        }
        tokio::spawn(async move {
            let mut connected = self.link.connected();
            let mut subscribed = self.link.subscriber_connected();
            let mut ticks = tokio::time::interval(self.heartbeat_every());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut upkeep = Upkeep::default();
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    // Either connection coming back may be the last one Redis needed: write
                    // back at once, not at the next tick.
                    event = connected.recv() => {
                        if !matches!(event, Err(broadcast::error::RecvError::Closed)) {
                            upkeep.in_sync_since = None;
                        }
                    }
                    event = subscribed.recv() => {
                        if !matches!(event, Err(broadcast::error::RecvError::Closed)) {
                            upkeep.in_sync_since = None;
                        }
                    }
                }
                match self.tick(&io, &signaling, &mut upkeep).await {
                    Next::OnTick => {}
                    Next::Now => ticks.reset_immediately(),
                    Next::Soon => ticks.reset_after(REBUILD_POLL),
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
            // Listening first: once a member is written back, other nodes relay to it.
            if let Err(e) = self.bus.listen().await {
                tracing::warn!(error = %e, "could not subscribe to the cluster channels");
                return Next::Soon;
            }
            let resynced = match self.store.resync().await {
                Ok(resynced) => resynced,
                Err(e) => {
                    tracing::warn!(error = %e, "could not write room state to Redis");
                    return Next::Soon;
                }
            };
            tracing::info!(
                stale = resynced.stale.len(),
                left_while_down = resynced.unheard.departures.len(),
                new_epoch = resynced.new_epoch,
                "room state written to Redis"
            );
            if resynced.new_epoch {
                upkeep.rebuilding_since = Some(Instant::now());
            }
            announce(io, &resynced.stale).await;
            let mut departed = Vec::new();
            let node = self.node.id.clone();
            self.park_orphans(&node, resynced.orphaned, signaling, &mut departed)
                .await;
            announce(io, &departed).await;
            departed.extend(resynced.stale);
            self.tell_departures(&departed, &node).await;
            let mut unheard = resynced.unheard;
            if let Some((_, earlier)) = upkeep.missed.take() {
                unheard.departures.extend(earlier.departures);
                unheard.media.extend(earlier.media);
            }
            self.record(&unheard).await;
            upkeep.missed = Some((Instant::now() + OTHERS_RECONNECT, unheard));
            upkeep.in_sync_since = Some(Instant::now());
            upkeep.registered = false;
            upkeep.views_stale = true;
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
        let next = self.admit_joins_when_whole(upkeep).await;
        if upkeep.views_stale && self.store.roster_complete() {
            match self.store.refresh_views().await {
                Ok(()) => upkeep.views_stale = false,
                Err(e) => tracing::debug!(error = %e, "room views not refreshed; retried"),
            }
        }
        // Told once every node listens again (the roster is whole), and kept for the next
        // round if Redis lost its data meanwhile (some nodes may not have heard it).
        let due = |(at, _): &(Instant, Unheard)| Instant::now() >= *at;
        if upkeep.missed.as_ref().is_some_and(due)
            && self.store.roster_complete()
            && let Some((at, unheard)) = upkeep.missed.take()
        {
            self.tell_other_nodes(io, &unheard).await;
            if !self.store.roster_still_whole().await {
                upkeep.missed = Some((at, unheard));
            } else if let Err(e) = self.store.forget_unheard(&unheard.departures).await {
                tracing::debug!(error = %e, "told departures stay recorded; told again later");
            }
        }
        if upkeep
            .in_sync_since
            .is_some_and(|t| t.elapsed() >= self.ttl)
        {
            self.reap_dead(io, signaling).await;
            self.end_due_sessions(io, signaling).await;
        }
        next
    }

    /// Keeps the gate in front of joins: remembers the live nodes while the roster is whole;
    /// while it is being rebuilt, opens the gate once every expected node wrote its members
    /// back. Expected: the nodes alive before (for one TTL: a node silent that long is dead)
    /// and every node heartbeating now. After three TTLs the gate opens regardless, so that a
    /// node stuck half-way cannot stop joins everywhere for good.
    async fn admit_joins_when_whole(&self, upkeep: &mut Upkeep) -> Next {
        let live: BTreeSet<String> = match self.registry.live().await {
            Ok(nodes) => nodes.into_iter().map(|n| n.id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list live nodes");
                return Next::Soon;
            }
        };
        let now = Instant::now();
        if self.store.roster_complete() {
            for id in live {
                upkeep.last_seen.insert(id, now);
            }
            let forget = self.ttl * 10;
            upkeep
                .last_seen
                .retain(|_, seen| now.duration_since(*seen) < forget);
            upkeep.rebuilding_since = None;
            self.schedule_unheard(upkeep).await;
            return Next::OnTick;
        }
        let since = *upkeep.rebuilding_since.get_or_insert(now);
        let mut expected = live.clone();
        if since.elapsed() < self.ttl {
            let recent = upkeep
                .last_seen
                .iter()
                .filter(|(_, seen)| since.duration_since(**seen) < self.ttl)
                .map(|(id, _)| id.clone());
            expected.extend(recent);
        }
        if since.elapsed() >= self.ttl * 3 {
            expected.clear();
            tracing::warn!("some nodes never wrote their members back; admitting joins anyway");
        }
        match self.store.open_roster(&expected).await {
            Ok(true) => {
                tracing::info!(
                    nodes = expected.len(),
                    waited_ms = since.elapsed().as_millis() as u64,
                    "room roster whole again; joins admitted"
                );
                for id in expected.into_iter().chain(live) {
                    upkeep.last_seen.insert(id, now);
                }
                upkeep.rebuilding_since = None;
                self.schedule_unheard(upkeep).await;
                Next::OnTick
            }
            Ok(false) => Next::Soon,
            Err(e) => {
                tracing::debug!(error = %e, "could not check the roster");
                Next::Soon
            }
        }
    }

    /// Schedules what other nodes may have missed since the last resync (changes made while
    /// the roster was being rebuilt, when some nodes did not listen yet) to be told with the
    /// rest of what they missed.
    async fn schedule_unheard(&self, upkeep: &mut Upkeep) {
        let unheard = self.store.take_unheard();
        if unheard.departures.is_empty() && unheard.media.is_empty() {
            return;
        }
        self.record(&unheard).await;
        let (due, mut missed) = upkeep
            .missed
            .take()
            .unwrap_or_else(|| (Instant::now() + OTHERS_RECONNECT, Unheard::default()));
        missed.departures.extend(unheard.departures);
        missed.media.extend(unheard.media);
        upkeep.missed = Some((due, missed));
    }

    /// Records in Redis the departures about to be told, so that they are told even if this
    /// node dies first (by its next run, or by whoever reaps it).
    async fn record(&self, unheard: &Unheard) {
        if let Err(e) = self.store.record_unheard(&unheard.departures).await {
            tracing::debug!(error = %e, "departures to tell kept in memory only");
        }
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
        self.tell_departures(&unheard.departures, &self.node.id)
            .await;
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
                    let gone = RosterChange::NodeGone { node: node.clone() };
                    self.store.apply(&gone);
                    self.tell_live_nodes(gone).await;
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
