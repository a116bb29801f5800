//! The Redis [`RoomStore`]: room state shared by every node of a cluster.
//!
//! Key schema (`{…}` is a Redis Cluster hash tag: a room's keys, and a node's keys, each
//! live in one slot, so every script below touches a single slot):
//!
//! | key                          | type | field → value                                        |
//! |------------------------------|------|------------------------------------------------------|
//! | `sb:room:{<roomId>}:members` | hash | socket id → `{"name","node","joined_at_ms"}` (JSON)  |
//! | `sb:room:{<roomId>}:media`   | hash | socket id → `{"mic","cam"}` (JSON)                   |
//! | `sb:node:{<nodeId>}:members` | set  | `"<roomId> <socketId>"` for each member of that node |
//!
//! Every change is a field-level write (`HSET`/`HDEL`) or a short Lua script over one room's
//! two hashes: `join` checks the capacity, reads the snapshot and adds the member in one step,
//! so concurrent joins on different nodes never exceed `--max-room-size` and each newcomer's
//! snapshot is exact. The per-node set is what a survivor reads to clean up after a crashed
//! node; it is written *before* a member enters a room and trimmed *after* it left, so it
//! always covers every member the node may have in Redis.
//!
//! This store also keeps the members of *this* node in memory ([`LocalMembers`]): the truth
//! about local sockets does not need Redis. That is what lets local rooms keep relaying while
//! Redis is down, and what [`RedisRoomStore::resync`] writes back when Redis returns empty.
//! Until every node has written its members back, joins wait behind [`Roster`]'s gate.
//!
//! It also keeps where the other nodes' members of its rooms are ([`RemoteMembers`], see
//! `view.rs`), so a relay finds its target's node without Redis. What the other nodes must
//! hear to keep their views current goes out through [`RedisRoomStore::told`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::clients::{Client, WithOptions};
use fred::interfaces::{HashesInterface, SetsInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use serde::{Deserialize, Serialize};
use switchboard_protocol::{MediaState, MemberName, RoomId};
use tokio::sync::{RwLock, mpsc};

use super::roster::{Roster, rebuilding};
use super::view::{Remote, RemoteMembers};
use super::{Joined, Left, Located, Location, Member, Peer, RoomStore, StoreError};
use crate::redis::{COMMAND_TIMEOUT, RedisLink, RosterChange};

/// Adds a member unless the room is full; returns `{members before, media}` or nil when full.
const JOIN: &str = r#"
local id, record, capacity = ARGV[1], ARGV[2], tonumber(ARGV[3])
if capacity > 0 and redis.call('HEXISTS', KEYS[1], id) == 0
   and redis.call('HLEN', KEYS[1]) >= capacity then
  return false
end
local members = redis.call('HGETALL', KEYS[1])
local media = redis.call('HGETALL', KEYS[2])
redis.call('HSET', KEYS[1], id, record)
return {members, media}
"#;

/// Removes a member and its media state; returns {1 if it was in the room, the records of
/// the members left}.
const LEAVE: &str = r#"
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {removed, redis.call('HVALS', KEYS[1])}
"#;

/// Records a member's media state if it is in the room; returns 1 if so.
const SET_MEDIA: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"#;

/// Writes a member (and its media state, if any) back, e.g. after Redis lost its data. With
/// ARGV[4] set (a resumable session, ARGV[4] = this node), a record naming another node is
/// left alone: the session resumed there, and that node's record is the newer one.
const RESTORE: &str = r#"
if ARGV[4] ~= '' then
  local current = redis.call('HGET', KEYS[1], ARGV[1])
  if current and cjson.decode(current).node ~= ARGV[4] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
return 1
"#;

fn members_key(room: &str) -> String {
    format!("sb:room:{{{room}}}:members")
}

fn media_key(room: &str) -> String {
    format!("sb:room:{{{room}}}:media")
}

/// The set of `"<roomId> <socketId>"` entries a node has in rooms.
pub fn node_members_key(node: &str) -> String {
    format!("sb:node:{{{node}}}:members")
}

/// The set of `"<roomId> <socketId>"` departures of a node's members that other nodes have
/// not been told yet: kept in Redis so that they are told even if the node dies first (by
/// the node itself when it restarts, or by whoever reaps it).
fn node_unheard_key(node: &str) -> String {
    format!("sb:node:{{{node}}}:unheard")
}

fn index_entry(room: &str, member_id: &str) -> String {
    format!("{room} {member_id}")
}

/// A member's entry in a room's `members` hash.
#[derive(Debug, Serialize, Deserialize)]
struct MemberRecord {
    name: String,
    node: String,
    joined_at_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resumable: bool,
}

impl MemberRecord {
    fn of(member: &Member) -> Self {
        Self {
            name: member.name.as_str().to_owned(),
            node: member.node.clone(),
            joined_at_ms: member.joined_at_ms,
            resumable: member.resumable,
        }
    }

    fn into_member(self, id: String) -> Option<Member> {
        Some(Member {
            id,
            name: MemberName::try_from(self.name).ok()?,
            node: self.node,
            joined_at_ms: self.joined_at_ms,
            resumable: self.resumable,
        })
    }
}

/// A member that left a room without leaving itself (its node died or forgot it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub room: RoomId,
    pub member_id: String,
}

/// What reaping a dead node found.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Members removed from their rooms, to announce.
    pub departed: Vec<Departure>,
    /// Members that are resumable sessions: left in their rooms for their grace period.
    pub resumable: Vec<Departure>,
}

/// What a resync changed, for the caller to announce.
#[derive(Debug, Default)]
pub struct Resynced {
    /// Members Redis still listed for this node that it no longer has (e.g. left over by an
    /// earlier run with the same id): nobody has been told.
    pub stale: Vec<Departure>,
    /// Resumable sessions Redis still listed for this node that it no longer holds (an
    /// earlier run of this node parked them or held them): left in their rooms, to park.
    pub orphaned: Vec<Departure>,
    /// What happened while Redis was down: sockets on this node were told, the others not.
    pub unheard: Unheard,
    /// Whether Redis had lost the data this node's members were written into before (or this
    /// node just started): joins wait until every node has written its members back.
    pub new_epoch: bool,
}

/// Changes of this node's members made while Redis was down.
#[derive(Debug, Default)]
pub struct Unheard {
    /// Members that left.
    pub departures: Vec<Departure>,
    /// Members whose media state changed, with their state now.
    pub media: Vec<(RoomId, String, MediaState)>,
}

/// How long a departure announced through Redis is remembered, to be told again if Redis
/// loses its data soon after: pub/sub messages published just before Redis dies may never
/// have reached the other nodes.
const RECENT: Duration = Duration::from_secs(3);
/// How long a relay sent to a member before its departure was heard may still be on its way:
/// it is delivered if it arrives within this long of the departure (the sender's node checked
/// the two shared the room when it was sent).
const IN_FLIGHT: Duration = Duration::from_secs(2);
/// Departures older than this are never told again, however recent the last one was.
const RECENT_MAX: Duration = Duration::from_secs(60);

/// This node's own members and their media state: room → member id → entry.
type LocalMembers = HashMap<RoomId, HashMap<String, (Member, Option<MediaState>)>>;

/// A roster change for other nodes to hear, and which nodes.
#[derive(Debug)]
pub struct Told {
    pub to: BTreeSet<String>,
    pub change: RosterChange,
}

pub struct RedisRoomStore {
    link: RedisLink,
    node: String,
    local: Mutex<LocalMembers>,
    /// Where the other nodes' members of the rooms in `local` are.
    remote: Mutex<RemoteMembers>,
    /// Roster changes for the cluster to send (see [`RedisRoomStore::told`]).
    tell: mpsc::UnboundedSender<Told>,
    told: Mutex<Option<mpsc::UnboundedReceiver<Told>>>,
    /// Held shared by every change of this node's members and exclusively by `resync`, so a
    /// resync never sees a change half done (a member in the index but not yet local, or
    /// written back just after it left).
    changes: RwLock<()>,
    /// Changes Redis could not be told about (it was down): the room's sockets on other
    /// nodes have not heard of them yet.
    unheard: Mutex<Unheard>,
    /// Whether the roster in Redis is whole, so joins may be admitted.
    roster: Roster,
    /// Departures announced through Redis in the last [`RECENT`] before the latest one.
    recent: Mutex<VecDeque<(Instant, Departure)>>,
    /// This node's members that left a room in the last [`IN_FLIGHT`], oldest first.
    left_lately: Mutex<VecDeque<(Instant, Departure)>>,
    /// Members being admitted to a room on this node right now.
    joining: Mutex<Vec<Departure>>,
    join: Script,
    leave: Script,
    set_media: Script,
    restore: Script,
}

impl RedisRoomStore {
    pub fn new(link: RedisLink, node: String) -> Self {
        let (tell, told) = mpsc::unbounded_channel();
        Self {
            link,
            node,
            local: Mutex::new(HashMap::new()),
            remote: Mutex::new(RemoteMembers::default()),
            tell,
            told: Mutex::new(Some(told)),
            changes: RwLock::new(()),
            unheard: Mutex::new(Unheard::default()),
            roster: Roster::default(),
            recent: Mutex::new(VecDeque::new()),
            left_lately: Mutex::new(VecDeque::new()),
            joining: Mutex::new(Vec::new()),
            join: Script::from_lua(JOIN),
            leave: Script::from_lua(LEAVE),
            set_media: Script::from_lua(SET_MEDIA),
            restore: Script::from_lua(RESTORE),
        }
    }

    fn local(&self) -> MutexGuard<'_, LocalMembers> {
        // Every critical section is one map operation: a poisoned lock holds no half-write.
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unheard(&self) -> MutexGuard<'_, Unheard> {
        self.unheard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remote(&self) -> MutexGuard<'_, RemoteMembers> {
        lock(&self.remote)
    }

    /// The roster changes other nodes must hear, in order, for the cluster to send (once:
    /// the receiver is handed out to the first caller).
    pub fn told(&self) -> Option<mpsc::UnboundedReceiver<Told>> {
        lock(&self.told).take()
    }

    fn tell(&self, to: BTreeSet<String>, change: RosterChange) {
        if !to.is_empty() {
            // Fails only once the cluster is gone, when nobody is left to tell.
            let _ = self.tell.send(Told { to, change });
        }
    }

    /// Whether node mail for `member_id` in `room` is delivered on this node: it is a member
    /// of the room here, reached through its socket (not a resumable session), or is being
    /// admitted to it, or left it so lately that the mail may have been sent before its
    /// departure was heard.
    pub fn delivers_here(&self, room: &RoomId, member_id: &str) -> bool {
        let member = self
            .local()
            .get(room)
            .and_then(|m| m.get(member_id))
            .map(|(m, _)| m.resumable);
        let is = |d: &Departure| &d.room == room && d.member_id == member_id;
        match member {
            Some(resumable) => !resumable,
            None => {
                lock(&self.joining).iter().any(is)
                    || lock(&self.left_lately)
                        .iter()
                        .any(|(at, d)| at.elapsed() <= IN_FLIGHT && is(d))
            }
        }
    }

    /// Remembers a departure of one of this node's members for [`IN_FLIGHT`].
    fn remember_left(&self, room: &RoomId, member_id: &str) {
        let departure = Departure {
            room: room.clone(),
            member_id: member_id.to_owned(),
        };
        remember_for(&self.left_lately, IN_FLIGHT, departure);
    }

    /// Applies a roster change another node told this one.
    pub fn apply(&self, change: &RosterChange) {
        self.remote().apply(change);
    }

    /// Forgets the view of `room` if this node no longer has members there; the nodes it
    /// listed. Otherwise the nodes with members in it.
    fn nodes_after_leaving(&self, room: &RoomId) -> BTreeSet<String> {
        let still_here = self.local().contains_key(room);
        let mut remote = self.remote();
        if still_here {
            remote.nodes(room)
        } else {
            remote.untrack(room)
        }
    }

    /// Starts (or adds to) the view of `room` with `peers`, a snapshot that includes the
    /// other nodes' members. The joiner's session tells those nodes (`signaling::join`).
    fn track(&self, room: &RoomId, peers: &[Peer]) {
        let remote = peers
            .iter()
            .filter(|p| p.member.node != self.node)
            .map(|p| {
                let remote = Remote {
                    node: p.member.node.clone(),
                    resumable: p.member.resumable,
                };
                (p.member.id.clone(), remote)
            });
        self.remote().track(room, remote);
    }

    /// Reads the other nodes' members of every room this node has members in from Redis
    /// again: after an outage, changes told meanwhile may have been lost with Redis.
    pub async fn refresh_views(&self) -> Result<(), StoreError> {
        let rooms: Vec<RoomId> = self.local().keys().cloned().collect();
        for room in rooms {
            let remote = self.read_remote(&room).await?;
            self.remote().replace(&room, remote);
        }
        Ok(())
    }

    /// The other nodes' members of `room`, as Redis has them.
    async fn read_remote(&self, room: &RoomId) -> Result<HashMap<String, Remote>, StoreError> {
        let members: HashMap<String, String> = self
            .redis()?
            .hgetall(members_key(room.as_str()))
            .await
            .map_err(StoreError::redis)?;
        Ok(members
            .into_iter()
            .filter_map(|(id, json)| {
                let record: MemberRecord = serde_json::from_str(&json).ok()?;
                let remote = Remote {
                    node: record.node,
                    resumable: record.resumable,
                };
                (remote.node != self.node).then_some((id, remote))
            })
            .collect())
    }

    fn redis(&self) -> Result<WithOptions<Client>, StoreError> {
        if self.link.is_up() {
            Ok(self.link.commands())
        } else {
            Err(StoreError::Unavailable("Redis is unreachable".into()))
        }
    }

    /// Runs a script by hash, sending its source only when Redis does not know it yet.
    async fn run(
        &self,
        script: &Script,
        room: &str,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        self.redis()?;
        let keys = vec![members_key(room), media_key(room)];
        self.link
            .run_script(script, keys, args)
            .await
            .map_err(StoreError::redis)
    }

    /// Clears a node's index of the members `keep` rejects: each is removed from its room
    /// (returned in `departed` if it was still there), except resumable sessions, which are
    /// left in their rooms for their grace period (returned in `resumable`, for the caller to
    /// park), and members whose record names another node (they resumed there).
    async fn clear_index(
        &self,
        node: &str,
        keep: impl Fn(&Departure) -> bool,
    ) -> Result<Reaped, StoreError> {
        let index = node_members_key(node);
        let mut reaped = Reaped::default();
        for (entry, departure) in self.listed(&index, keep).await? {
            match self.record(&departure.room, &departure.member_id).await? {
                Some(r) if r.node != node => {}
                Some(r) if r.resumable => reaped.resumable.push(departure),
                _ => {
                    if self
                        .remove(departure.room.as_str(), &departure.member_id)
                        .await?
                    {
                        reaped.departed.push(departure);
                    }
                }
            }
            let _: i64 = self
                .redis()?
                .srem(&index, &entry)
                .await
                .map_err(StoreError::redis)?;
        }
        Ok(reaped)
    }

    /// The entries of a node's set of `"<roomId> <memberId>"` at `key` that `keep` rejects,
    /// each with the departure it names (entries that do not parse are skipped).
    async fn listed(
        &self,
        key: &str,
        keep: impl Fn(&Departure) -> bool,
    ) -> Result<Vec<(String, Departure)>, StoreError> {
        let entries: Vec<String> = self
            .redis()?
            .smembers(key)
            .await
            .map_err(StoreError::redis)?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let departure = parse_index_entry(&entry)?;
                (!keep(&departure)).then_some((entry, departure))
            })
            .collect())
    }

    /// Removes one member from a room in Redis; whether it was there.
    async fn remove(&self, room: &str, member_id: &str) -> Result<bool, StoreError> {
        Ok(self.remove_telling(room, member_id).await?.0)
    }

    /// [`RedisRoomStore::remove`], and the nodes of the members still in the room.
    async fn remove_telling(
        &self,
        room: &str,
        member_id: &str,
    ) -> Result<(bool, BTreeSet<String>), StoreError> {
        let reply = self
            .run(&self.leave, room, vec![member_id.to_owned()])
            .await?;
        let Value::Array(mut parts) = reply else {
            return Ok((false, BTreeSet::new()));
        };
        let records = match parts.pop() {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        };
        let nodes = records
            .into_iter()
            .filter_map(|r| r.into_string())
            .filter_map(|json| serde_json::from_str::<MemberRecord>(&json).ok())
            .map(|record| record.node)
            .filter(|node| *node != self.node)
            .collect();
        Ok((matches!(parts.pop(), Some(Value::Integer(1))), nodes))
    }

    /// Removes every member a node left in Redis, except resumable sessions, which get their
    /// grace period (the caller parks them; see `sessions`), and adds the departures it had
    /// recorded but not told. Returns the members to announce, and the resumable ones. Safe
    /// to repeat.
    pub async fn reap(&self, node: &str) -> Result<Reaped, StoreError> {
        let mut reaped = self.clear_index(node, |_| false).await?;
        for departure in self.take_recorded_unheard(node, |_| false).await? {
            if !reaped.departed.contains(&departure) {
                reaped.departed.push(departure);
            }
        }
        Ok(reaped)
    }

    /// Records departures the other nodes have not been told yet (see [`node_unheard_key`]).
    pub async fn record_unheard(&self, departures: &[Departure]) -> Result<(), StoreError> {
        let Some(entries) = unheard_entries(departures) else {
            return Ok(());
        };
        let _: i64 = self
            .redis()?
            .sadd(node_unheard_key(&self.node), entries)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    /// Forgets recorded departures once they have been told.
    pub async fn forget_unheard(&self, departures: &[Departure]) -> Result<(), StoreError> {
        let Some(entries) = unheard_entries(departures) else {
            return Ok(());
        };
        let _: i64 = self
            .redis()?
            .srem(node_unheard_key(&self.node), entries)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    /// Takes a node's recorded departures that `keep` rejects, for the caller to announce.
    async fn take_recorded_unheard(
        &self,
        node: &str,
        keep: impl Fn(&Departure) -> bool,
    ) -> Result<Vec<Departure>, StoreError> {
        let key = node_unheard_key(node);
        let mut taken = Vec::new();
        for (entry, departure) in self.listed(&key, keep).await? {
            let _: i64 = self
                .redis()?
                .srem(&key, &entry)
                .await
                .map_err(StoreError::redis)?;
            taken.push(departure);
        }
        Ok(taken)
    }

    /// Makes Redis agree with this node about its members: removes what Redis still holds for
    /// members this node no longer has (left while Redis was down, or left over by an earlier
    /// run with the same node id), then writes every local member and its media state back
    /// (Redis may have restarted empty). Returns the departures nobody heard of yet.
    pub async fn resync(&self) -> Result<Resynced, StoreError> {
        let _exclusive = self.changes.write().await;
        let (epoch, new_epoch) = self.roster.enter(&self.redis()?, &self.node).await?;
        let Reaped {
            departed: mut removed,
            resumable,
        } = self
            .clear_index(&self.node, |d| {
                self.local()
                    .get(&d.room)
                    .is_some_and(|m| m.contains_key(&d.member_id))
            })
            .await?;
        // Departures an earlier run of this node recorded but never told (it died first).
        let orphaned = self
            .take_recorded_unheard(&self.node, |d| self.unheard().departures.contains(d))
            .await?;
        for departure in orphaned {
            if !removed.contains(&departure) {
                removed.push(departure);
            }
        }
        let index = node_members_key(&self.node);
        let members: Vec<(RoomId, Member, Option<MediaState>)> = self
            .local()
            .iter()
            .flat_map(|(room, members)| {
                members
                    .values()
                    .map(|(member, media)| (room.clone(), member.clone(), *media))
            })
            .collect();
        for (room, member, media) in members {
            let _: i64 = self
                .redis()?
                .sadd(&index, index_entry(room.as_str(), &member.id))
                .await
                .map_err(StoreError::redis)?;
            let media = media.map(|m| to_json(&m)).unwrap_or_default();
            let record = to_json(&MemberRecord::of(&member));
            let only_if_mine = if member.resumable {
                self.node.clone()
            } else {
                String::new()
            };
            self.run(
                &self.restore,
                room.as_str(),
                vec![member.id, record, media, only_if_mine],
            )
            .await?;
        }
        self.roster
            .mark_synced(&self.redis()?, &epoch, &self.node)
            .await?;
        let mut unheard = std::mem::take(&mut *self.unheard());
        if new_epoch {
            // Redis lost its data: departures published just before may never have reached
            // the other nodes. Told again (a socket may hear one twice; never none).
            let recent = std::mem::take(&mut *lock(&self.recent));
            for (at, departure) in recent {
                if at.elapsed() < RECENT_MAX && !unheard.departures.contains(&departure) {
                    unheard.departures.push(departure);
                }
            }
        }
        let stale = removed
            .into_iter()
            .filter(|d| !unheard.departures.contains(d))
            .collect();
        // Only the latest state of members still here is news.
        unheard
            .media
            .retain(|(room, id, _)| self.local().get(room).is_some_and(|m| m.contains_key(id)));
        Ok(Resynced {
            stale,
            orphaned: resumable,
            unheard,
            new_epoch,
        })
    }

    /// A member's record in a room, as Redis has it.
    async fn record(
        &self,
        room: &RoomId,
        member_id: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let record: Option<String> = self
            .redis()?
            .hget(members_key(room.as_str()), member_id)
            .await
            .map_err(StoreError::redis)?;
        Ok(record.and_then(|r| serde_json::from_str::<MemberRecord>(&r).ok()))
    }

    /// Makes a resumed session's membership of `room` this node's: its record names this
    /// node, this node's index lists it and `from`'s no longer does, and it is a local member.
    /// Returns false when Redis no longer has the member in that room (nothing changed).
    pub async fn adopt(
        &self,
        room: &RoomId,
        member_id: &str,
        from: &str,
    ) -> Result<bool, StoreError> {
        let _changing = self.changes.read().await;
        let Some(record) = self.record(room, member_id).await? else {
            return Ok(false);
        };
        let media: Option<String> = self
            .redis()?
            .hget(media_key(room.as_str()), member_id)
            .await
            .map_err(StoreError::redis)?;
        let media = media.and_then(|m| serde_json::from_str::<MediaState>(&m).ok());
        let Some(mut member) = record.into_member(member_id.to_owned()) else {
            return Ok(false);
        };
        member.node = self.node.clone();
        let entry = index_entry(room.as_str(), member_id);
        let _: i64 = self
            .redis()?
            .sadd(node_members_key(&self.node), &entry)
            .await
            .map_err(StoreError::redis)?;
        let media_json = media.map(|m| to_json(&m)).unwrap_or_default();
        let args = vec![
            member_id.to_owned(),
            to_json(&MemberRecord::of(&member)),
            media_json,
            String::new(),
        ];
        self.run(&self.restore, room.as_str(), args).await?;
        if from != self.node {
            let _: i64 = self
                .redis()?
                .srem(node_members_key(from), &entry)
                .await
                .map_err(StoreError::redis)?;
        }
        let remote = self.read_remote(room).await.unwrap_or_default();
        let nodes = remote.values().map(|r| r.node.clone()).collect();
        self.remote().track(room, remote);
        self.tell(
            nodes,
            RosterChange::Joined {
                room: room.clone(),
                member: member_id.to_owned(),
                node: self.node.clone(),
                resumable: member.resumable,
            },
        );
        self.local()
            .entry(room.clone())
            .or_default()
            .insert(member_id.to_owned(), (member, media));
        Ok(true)
    }

    /// The rooms `node`'s index lists `member_id` in (a session live on a node that died).
    pub async fn indexed_rooms(
        &self,
        node: &str,
        member_id: &str,
    ) -> Result<Vec<RoomId>, StoreError> {
        let entries: Vec<String> = self
            .redis()?
            .smembers(node_members_key(node))
            .await
            .map_err(StoreError::redis)?;
        Ok(entries
            .iter()
            .filter_map(|e| parse_index_entry(e))
            .filter(|d| d.member_id == member_id)
            .map(|d| d.room)
            .collect())
    }

    /// Removes a member from a room in Redis on behalf of a node that cannot (it crashed):
    /// whether it was there.
    pub async fn remove_member(&self, room: &RoomId, member_id: &str) -> Result<bool, StoreError> {
        self.remove(room.as_str(), member_id).await
    }

    /// Whether `member_id` is a member of some room on this node.
    pub fn holds(&self, member_id: &str) -> bool {
        self.local().values().any(|m| m.contains_key(member_id))
    }

    /// Takes the changes of this node's members that other nodes may have missed (made while
    /// Redis was down or the roster was being rebuilt), for the upkeep loop to tell.
    pub fn take_unheard(&self) -> Unheard {
        let mut unheard = std::mem::take(&mut *self.unheard());
        unheard
            .media
            .retain(|(room, id, _)| self.local().get(room).is_some_and(|m| m.contains_key(id)));
        unheard
    }

    /// Whether the roster is whole and Redis still holds the data it was rebuilt in.
    pub async fn roster_still_whole(&self) -> bool {
        let Ok(epoch) = self.roster.admitting() else {
            return false;
        };
        match self.redis() {
            Ok(redis) => matches!(self.roster.still(&redis, &epoch).await, Ok(true)),
            Err(_) => false,
        }
    }

    /// Whether joins are admitted now (the roster in Redis is whole).
    pub fn roster_complete(&self) -> bool {
        self.roster.is_complete()
    }

    /// Opens the gate in front of joins if every node of `expected` has written its members
    /// into the data Redis holds now; returns whether joins are admitted.
    pub async fn open_roster(&self, expected: &BTreeSet<String>) -> Result<bool, StoreError> {
        if self.roster.is_complete() {
            return Ok(true);
        }
        let Some(epoch) = self.roster.epoch() else {
            return Ok(false);
        };
        let redis = self.redis()?;
        let synced = self.roster.synced(&redis).await?;
        if !expected.is_subset(&synced) || !self.roster.still(&redis, &epoch).await? {
            return Ok(false);
        }
        self.roster.open(&epoch);
        Ok(true)
    }

    /// Ids of this node's members in a room.
    pub fn local_members(&self, room: &RoomId) -> Vec<String> {
        self.local()
            .get(room)
            .map(|members| members.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl RoomStore for RedisRoomStore {
    async fn join(
        &self,
        room: &RoomId,
        member: &Member,
        capacity: Option<usize>,
    ) -> Result<Joined, StoreError> {
        let _changing = self.changes.read().await;
        let epoch = self.roster.admitting()?;
        // Once the join script ran, other nodes may send to the member before this node has
        // it as a local member (just below): mail for it is delivered meanwhile.
        let _joining = Joining::enter(&self.joining, room, &member.id);
        let index = node_members_key(&self.node);
        let entry = index_entry(room.as_str(), &member.id);
        // Indexed first: a crash between the two writes leaves an index entry without a
        // member (harmless), never a member a survivor cannot find.
        let _: i64 = self
            .redis()?
            .sadd(&index, &entry)
            .await
            .map_err(StoreError::redis)?;
        let args = vec![
            member.id.clone(),
            to_json(&MemberRecord::of(member)),
            capacity.unwrap_or(0).to_string(),
        ];
        let reply = self.run(&self.join, room.as_str(), args).await?;
        let Value::Array(mut parts) = reply else {
            // Full. A failure here only leaves an index entry that the next resync removes.
            let _: Result<i64, _> = self.link.commands().srem(&index, &entry).await;
            return Ok(Joined::Full);
        };
        // The snapshot is whole only if Redis still holds the data the gate was opened for.
        if !matches!(self.roster.still(&self.redis()?, &epoch).await, Ok(true)) {
            let _ = self.remove(room.as_str(), &member.id).await;
            let _: Result<i64, _> = self.link.commands().srem(&index, &entry).await;
            return Err(rebuilding());
        }
        let media = parts.pop().map(hash_pairs).unwrap_or_default();
        let members = parts.pop().map(hash_pairs).unwrap_or_default();
        let peers = peers_from(members, media, &member.id);
        let previous_media = self
            .local()
            .get(room)
            .and_then(|m| m.get(&member.id))
            .and_then(|(_, media)| *media);
        self.local()
            .entry(room.clone())
            .or_default()
            .insert(member.id.clone(), (member.clone(), previous_media));
        self.track(room, &peers);
        Ok(Joined::Admitted { peers })
    }

    async fn leave(&self, room: &RoomId, member_id: &str) -> Result<Left, StoreError> {
        let _changing = self.changes.read().await;
        let was_here = {
            let mut local = self.local();
            let removed = local
                .get_mut(room)
                .and_then(|members| members.remove(member_id))
                .is_some();
            if local.get(room).is_some_and(HashMap::is_empty) {
                local.remove(room);
            }
            removed
        };
        let mut nodes = self.nodes_after_leaving(room);
        if was_here {
            self.remember_left(room, member_id);
            self.tell(
                nodes.clone(),
                RosterChange::Left {
                    room: room.clone(),
                    member: member_id.to_owned(),
                    node: self.node.clone(),
                },
            );
        }
        // The local record is the truth for this node's sockets; if Redis cannot be told
        // now, `resync` removes the member once Redis is back.
        let in_redis = async {
            let (removed, others) = self.remove_telling(room.as_str(), member_id).await?;
            // A node whose member joined a moment ago may not be in the view yet.
            nodes.extend(others);
            let _: i64 = self
                .redis()?
                .srem(
                    node_members_key(&self.node),
                    index_entry(room.as_str(), member_id),
                )
                .await
                .map_err(StoreError::redis)?;
            Ok::<_, StoreError>(removed)
        };
        match in_redis.await {
            Ok(removed) => {
                // Redis did not list a member this node had, or the roster is being rebuilt:
                // Redis lost its data, and nodes that have not resubscribed yet miss the
                // departure announced now. It is told again once the roster is whole.
                let departure = Departure {
                    room: room.clone(),
                    member_id: member_id.to_owned(),
                };
                if was_here && (!removed || !self.roster.is_complete()) {
                    self.unheard().departures.push(departure);
                } else if was_here {
                    remember_for(&self.recent, RECENT, departure);
                }
                Ok(Left {
                    was_member: was_here || removed,
                    nodes: nodes.into_iter().collect(),
                })
            }
            Err(e) => {
                tracing::debug!(%room, member = member_id, error = %e, "leave deferred until Redis is back");
                if was_here {
                    self.unheard().departures.push(Departure {
                        room: room.clone(),
                        member_id: member_id.to_owned(),
                    });
                }
                Ok(Left {
                    was_member: was_here,
                    nodes: nodes.into_iter().collect(),
                })
            }
        }
    }

    async fn set_media(
        &self,
        room: &RoomId,
        member_id: &str,
        media: MediaState,
    ) -> Result<bool, StoreError> {
        let _changing = self.changes.read().await;
        {
            let mut local = self.local();
            let Some((_, state)) = local.get_mut(room).and_then(|m| m.get_mut(member_id)) else {
                return Ok(false);
            };
            *state = Some(media);
        }
        let args = vec![member_id.to_owned(), to_json(&media)];
        let written = self.run(&self.set_media, room.as_str(), args).await;
        // Not written, or written while the roster is being rebuilt (some nodes may not
        // listen yet): told again later, like a change made while Redis was down.
        if !matches!(written, Ok(Value::Integer(1))) || !self.roster.is_complete() {
            tracing::debug!(%room, member = member_id, written = ?written, "media state told again when the roster is whole");
            let mut unheard = self.unheard();
            unheard
                .media
                .retain(|(r, id, _)| !(r == room && id == member_id));
            unheard
                .media
                .push((room.clone(), member_id.to_owned(), media));
        }
        Ok(true)
    }

    async fn locate(
        &self,
        rooms: &BTreeSet<RoomId>,
        member_id: &str,
    ) -> Result<Option<(RoomId, Located)>, StoreError> {
        for room in rooms {
            if let Some(Some(located)) = self.locate_now(room, member_id) {
                return Ok(Some((room.clone(), located)));
            }
        }
        if rooms.is_empty() {
            return Ok(None);
        }
        // Not in this node's view: ask Redis once, for every room at the same time.
        self.redis()?;
        let pipeline = self.link.command_client().pipeline();
        for room in rooms {
            let _: () = pipeline
                .hget(members_key(room.as_str()), member_id)
                .await
                .map_err(StoreError::redis)?;
        }
        let records: Vec<Option<String>> = tokio::time::timeout(COMMAND_TIMEOUT, pipeline.all())
            .await
            .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
            .map_err(StoreError::redis)?;
        for (room, record) in rooms.iter().zip(records) {
            let Some(record) = record.and_then(|r| serde_json::from_str::<MemberRecord>(&r).ok())
            else {
                continue;
            };
            // An entry claiming this node but unknown here is left over from an earlier run,
            // unless it is a resumable session this node is adopting right now: its session
            // knows (`signaling::deliver`).
            if record.node == self.node && !record.resumable {
                continue;
            }
            let remote = Remote {
                node: record.node,
                resumable: record.resumable,
            };
            if remote.node != self.node {
                self.remote().learn(room, member_id, remote.clone());
            }
            let located = Located {
                location: Location::OtherNode(remote.node),
                resumable: remote.resumable,
            };
            return Ok(Some((room.clone(), located)));
        }
        // Nobody there means "not a roommate" only if the roster is whole: while nodes
        // write their members back, the target may simply not be written yet.
        let epoch = self.roster.admitting()?;
        if !self.roster.still(&self.redis()?, &epoch).await? {
            return Err(rebuilding());
        }
        Ok(None)
    }

    async fn release(&self, member_id: &str) -> Vec<RoomId> {
        let _changing = self.changes.read().await;
        let rooms: Vec<RoomId> = {
            let mut local = self.local();
            let rooms: Vec<RoomId> = local
                .iter_mut()
                .filter_map(|(room, members)| members.remove(member_id).map(|_| room.clone()))
                .collect();
            local.retain(|_, members| !members.is_empty());
            rooms
        };
        for room in &rooms {
            self.nodes_after_leaving(room);
            if let Ok(redis) = self.redis() {
                let _: Result<i64, _> = redis
                    .srem(
                        node_members_key(&self.node),
                        index_entry(room.as_str(), member_id),
                    )
                    .await;
            }
        }
        rooms
    }

    async fn still_intact(&self) -> bool {
        self.roster_still_whole().await
    }

    fn locate_now(&self, room: &RoomId, member_id: &str) -> Option<Option<Located>> {
        let here = self
            .local()
            .get(room)
            .and_then(|m| m.get(member_id))
            .map(|(member, _)| member.resumable);
        if let Some(resumable) = here {
            return Some(Some(Located {
                location: Location::ThisNode,
                resumable,
            }));
        }
        let remote = self.remote();
        let there = remote.locate(room, member_id)?;
        Some(Some(Located {
            location: Location::OtherNode(there.node.clone()),
            resumable: there.resumable,
        }))
    }

    fn room_nodes(&self, room: &RoomId) -> Vec<String> {
        self.remote().nodes(room).into_iter().collect()
    }

    fn local_rooms(&self) -> usize {
        self.local().len()
    }

    fn local_memberships(&self) -> usize {
        self.local().values().map(HashMap::len).sum()
    }

    async fn peers(&self, room: &RoomId) -> Result<Vec<Peer>, StoreError> {
        self.roster.admitting()?;
        let redis = self.redis()?;
        let members: HashMap<String, String> = redis
            .hgetall(members_key(room.as_str()))
            .await
            .map_err(StoreError::redis)?;
        let media: HashMap<String, String> = redis
            .hgetall(media_key(room.as_str()))
            .await
            .map_err(StoreError::redis)?;
        Ok(peers_from(
            members.into_iter().collect(),
            media.into_iter().collect(),
            "",
        ))
    }
}

/// Adds `departure` to a list of the departures of the last `window`, oldest first, and
/// forgets those older than that.
fn remember_for(
    list: &Mutex<VecDeque<(Instant, Departure)>>,
    window: Duration,
    departure: Departure,
) {
    let now = Instant::now();
    let mut list = lock(list);
    while list
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > window)
    {
        list.pop_front();
    }
    list.push_back((now, departure));
}

/// A member listed in [`RedisRoomStore::joining`] until its join returns, however it ends.
struct Joining<'a> {
    list: &'a Mutex<Vec<Departure>>,
    entry: Departure,
}

impl<'a> Joining<'a> {
    fn enter(list: &'a Mutex<Vec<Departure>>, room: &RoomId, member_id: &str) -> Self {
        let entry = Departure {
            room: room.clone(),
            member_id: member_id.to_owned(),
        };
        lock(list).push(entry.clone());
        Self { list, entry }
    }
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        let mut list = lock(self.list);
        if let Some(at) = list.iter().position(|d| d == &self.entry) {
            list.swap_remove(at);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one collection update.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The entries of `departures` in a node's unheard set, or `None` when there are none.
fn unheard_entries(departures: &[Departure]) -> Option<Vec<String>> {
    (!departures.is_empty()).then(|| {
        departures
            .iter()
            .map(|d| index_entry(d.room.as_str(), &d.member_id))
            .collect()
    })
}

fn parse_index_entry(entry: &str) -> Option<Departure> {
    let (room, member_id) = entry.split_once(' ')?;
    Some(Departure {
        room: RoomId::try_from(room.to_owned()).ok()?,
        member_id: member_id.to_owned(),
    })
}

/// The field/value pairs of an `HGETALL` reply as a script returns it (a flat array).
fn hash_pairs(value: Value) -> Vec<(String, String)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    let mut strings = items.into_iter().filter_map(|v| v.into_string());
    let mut pairs = Vec::new();
    while let (Some(field), Some(value)) = (strings.next(), strings.next()) {
        pairs.push((field, value));
    }
    pairs
}

/// Peers from a room's two hashes, oldest first, without `except`. Entries that do not parse
/// (written by something else) are skipped rather than failing the join.
fn peers_from(
    members: Vec<(String, String)>,
    media: Vec<(String, String)>,
    except: &str,
) -> Vec<Peer> {
    let media: BTreeMap<String, MediaState> = media
        .into_iter()
        .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
        .collect();
    let mut peers: Vec<Peer> = members
        .into_iter()
        .filter(|(id, _)| id != except)
        .filter_map(|(id, json)| {
            let record: MemberRecord = serde_json::from_str(&json).ok()?;
            let media = media.get(&id).copied();
            Some(Peer {
                member: record.into_member(id)?,
                media,
            })
        })
        .collect();
    peers.sort_by(|a, b| {
        (a.member.joined_at_ms, &a.member.id).cmp(&(b.member.joined_at_ms, &b.member.id))
    });
    peers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mail_for_a_member_is_delivered_while_here_joining_or_just_gone() {
        // Never connects: only this node's own bookkeeping is asked.
        let link = RedisLink::open("redis://127.0.0.1:1").unwrap();
        let store = RedisRoomStore::new(link, "n1".into());
        let room = RoomId::try_from("r".to_owned()).unwrap();
        assert!(!store.delivers_here(&room, "m"), "never here");
        {
            let _joining = Joining::enter(&store.joining, &room, "m");
            assert!(store.delivers_here(&room, "m"), "being admitted");
        }
        assert!(!store.delivers_here(&room, "m"), "admission over");
        store.remember_left(&room, "m");
        assert!(
            store.delivers_here(&room, "m"),
            "mail sent before the departure was heard"
        );
        assert!(!store.delivers_here(&room, "other"));
        lock(&store.left_lately)[0].0 = Instant::now() - IN_FLIGHT - Duration::from_millis(1);
        assert!(
            !store.delivers_here(&room, "m"),
            "gone for longer than mail travels"
        );
    }

    #[test]
    fn keys_of_a_room_share_a_hash_tag() {
        assert_eq!(members_key("r:1"), "sb:room:{r:1}:members");
        assert_eq!(media_key("r:1"), "sb:room:{r:1}:media");
        assert_eq!(node_members_key("n1"), "sb:node:{n1}:members");
    }

    #[test]
    fn index_entries_round_trip() {
        let d = parse_index_entry(&index_entry("room-1", "abc_DEF")).unwrap();
        assert_eq!(d.room.as_str(), "room-1");
        assert_eq!(d.member_id, "abc_DEF");
        assert!(parse_index_entry("no-space").is_none());
    }

    #[test]
    fn peers_are_oldest_first_without_self_and_skip_garbage() {
        let rec = |name: &str, at: u64| {
            to_json(&MemberRecord {
                name: name.into(),
                node: "n".into(),
                joined_at_ms: at,
                resumable: false,
            })
        };
        let members = vec![
            ("b".into(), rec("Bea", 20)),
            ("a".into(), rec("Al", 10)),
            ("me".into(), rec("Me", 5)),
            ("junk".into(), "not json".into()),
        ];
        let media = vec![("a".into(), r#"{"mic":true,"cam":false}"#.into())];
        let peers = peers_from(members, media, "me");
        let ids: Vec<_> = peers.iter().map(|p| p.member.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            peers[0].media,
            Some(MediaState {
                mic: true,
                cam: false
            })
        );
        assert_eq!(peers[1].media, None);
    }
}
