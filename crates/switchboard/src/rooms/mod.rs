//! Room state: who is in which room, under what name, and with which mic/cam state.
//!
//! Socket.io rooms only know which *local* sockets are in a room; they cannot tell a late
//! joiner who is already there on other nodes, or whether they are muted. That cluster-wide
//! truth lives behind [`RoomStore`], with one implementation per backend:
//!
//! - [`MemoryRoomStore`]: the single-process default, a map behind a mutex.
//! - [`RedisRoomStore`]: cluster mode; the same semantics over Redis hashes and Lua scripts.
//!
//! The trait is shaped for a shared remote store: every method is one small, atomic change or
//! read of a single room (add one member, drop one member, set one member's media state), so
//! a Redis backend maps each to a field-level write or a short server-side script. Nothing
//! here reads a whole room, changes it and writes it back.

mod memory;
mod redis;
mod roster;
mod view;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use switchboard_protocol::{MediaState, MemberName, PeerInfo, RoomId};

pub use memory::MemoryRoomStore;
pub use redis::{Departure, Reaped, RedisRoomStore, Resynced, Told, Unheard, node_members_key};
pub use view::{Remote, RemoteMembers};

/// Milliseconds since the Unix epoch, the clock of `joined_at_ms` and heartbeats.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A socket that is in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The socket id, which is also the id peers address relays to.
    pub id: String,
    pub name: MemberName,
    /// The node that holds the socket, so a survivor can clean up after a crashed node.
    pub node: String,
    /// Milliseconds since the Unix epoch; orders the backfill a late joiner receives.
    pub joined_at_ms: u64,
    /// Whether the member is a resumable session (see `sessions`): what is addressed to it
    /// goes through its session, which keeps it while the member is between connections.
    pub resumable: bool,
}

/// A member as another member sees it: who it is and its last known media state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub member: Member,
    pub media: Option<MediaState>,
}

impl Peer {
    /// The entry of this peer in a `join-room` ack.
    pub fn info(&self) -> PeerInfo {
        PeerInfo {
            id: self.member.id.clone(),
            name: self.member.name.as_str().to_owned(),
            mic: self.media.map(|m| m.mic),
            cam: self.media.map(|m| m.cam),
        }
    }
}

/// What came of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The member is now in the room; these were there before it, oldest first.
    Admitted { peers: Vec<Peer> },
    /// The room already holds its maximum number of members; nothing changed.
    Full,
}

/// What came of a leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Left {
    /// Whether the member was in the room.
    pub was_member: bool,
    /// The other nodes with members in the room when it left, as far as this node knows, and
    /// as Redis had them at that moment: a node whose member joined a moment before hears of
    /// the departure even if this node did not know of it yet. Empty with one process.
    pub nodes: Vec<String>,
}

/// Where a member's socket is connected, which decides how a relay reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// On this node: deliver locally, without a round trip through Redis.
    ThisNode,
    /// On another node of the cluster, by its id.
    OtherNode(String),
}

/// A roommate found by [`RoomStore::locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub location: Location,
    /// See [`Member::resumable`].
    pub resumable: bool,
}

/// The store could not answer. The event that needed it changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("room store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A Redis command that failed (counted in `switchboard_redis_errors_total`).
    pub fn redis(error: fred::error::Error) -> Self {
        crate::metrics::redis_error(crate::metrics::RedisError::Command);
        Self::Unavailable(error.to_string())
    }
}

/// Cluster-wide room membership and media state.
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Adds `member` to `room` unless the room already holds `capacity` members, and returns
    /// the members that were there before. Joining again replaces the member's entry and keeps
    /// its media state. Atomic: concurrent joins never exceed `capacity`.
    async fn join(
        &self,
        room: &RoomId,
        member: &Member,
        capacity: Option<usize>,
    ) -> Result<Joined, StoreError>;

    /// Removes a member and its media state from a room. Returns whether it was there, and
    /// which other nodes must hear of it.
    async fn leave(&self, room: &RoomId, member_id: &str) -> Result<Left, StoreError>;

    /// Records a member's media state in a room. Returns false (and records nothing) when the
    /// member is not in the room.
    async fn set_media(
        &self,
        room: &RoomId,
        member_id: &str,
        media: MediaState,
    ) -> Result<bool, StoreError>;

    /// Where `member_id` is connected, if it shares one of `rooms` with the asker, and that
    /// room: answered from memory when it can be, else with one lookup in the backing store
    /// (however many rooms there are).
    async fn locate(
        &self,
        rooms: &BTreeSet<RoomId>,
        member_id: &str,
    ) -> Result<Option<(RoomId, Located)>, StoreError>;

    /// What [`RoomStore::locate`] would answer, when it can be told from memory without
    /// waiting (this node's own members always can); `None` when only `locate` can tell.
    fn locate_now(&self, room: &RoomId, member_id: &str) -> Option<Option<Located>>;

    /// Everyone in a room, oldest first.
    async fn peers(&self, room: &RoomId) -> Result<Vec<Peer>, StoreError>;

    /// Forgets a member on this node without telling anyone or changing cluster-wide state:
    /// its session now lives on another node, which keeps its rooms. Returns those rooms.
    async fn release(&self, member_id: &str) -> Vec<RoomId>;

    /// Whether the room state is still the one this node wrote its members into (no Redis
    /// restart since). Asked after a publish slow enough to have waited for a reconnection:
    /// it may then have gone to a Redis restarted empty, where nobody listened yet.
    async fn still_intact(&self) -> bool {
        true
    }

    /// The other nodes with members in `room`, as far as this node knows: those a room event
    /// must reach besides this node's sockets. Empty with one process.
    fn room_nodes(&self, room: &RoomId) -> Vec<String>;

    /// How many rooms have at least one member on this node (for `/cluster`).
    fn local_rooms(&self) -> usize;

    /// How many room memberships this node's sockets hold (for `/metrics`).
    fn local_memberships(&self) -> usize;
}
