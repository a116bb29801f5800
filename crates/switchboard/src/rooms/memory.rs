//! The in-memory [`RoomStore`]: the default when no Redis is configured.
//!
//! One process holds every socket, so a plain map behind a mutex is the whole truth. The lock
//! is never held across an await; each method is one short critical section, which is also
//! what makes `join` with a capacity atomic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use switchboard_protocol::{MediaState, RoomId};

use super::{Joined, Left, Located, Location, Member, Peer, RoomStore, StoreError};

#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    rooms: Mutex<HashMap<RoomId, Room>>,
}

#[derive(Debug, Default)]
struct Room {
    /// Member id → entry. Rooms are small (a call), so listing sorts on read.
    members: HashMap<String, Entry>,
    /// Ticks on every admission so peers list in join order even within one millisecond.
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    member: Member,
    media: Option<MediaState>,
    seq: u64,
}

impl MemoryRoomStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomId, Room>> {
        // A panic while holding this lock cannot leave a room half-written (every critical
        // section is a single map operation), so a poisoned lock is still safe to use.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Room {
    fn peers_except(&self, member_id: &str) -> Vec<Peer> {
        let mut entries: Vec<&Entry> = self
            .members
            .values()
            .filter(|e| e.member.id != member_id)
            .collect();
        entries.sort_by_key(|e| e.seq);
        entries
            .into_iter()
            .map(|e| Peer {
                member: e.member.clone(),
                media: e.media,
            })
            .collect()
    }
}

#[async_trait]
impl RoomStore for MemoryRoomStore {
    async fn join(
        &self,
        room: &RoomId,
        member: &Member,
        capacity: Option<usize>,
    ) -> Result<Joined, StoreError> {
        let mut rooms = self.rooms();
        let entry = rooms.entry(room.clone()).or_default();
        let already = entry.members.contains_key(&member.id);
        if !already && capacity.is_some_and(|cap| entry.members.len() >= cap) {
            if entry.members.is_empty() {
                rooms.remove(room);
            }
            return Ok(Joined::Full);
        }
        let peers = entry.peers_except(&member.id);
        let seq = entry.next_seq;
        entry.next_seq += 1;
        let media = entry.members.get(&member.id).and_then(|e| e.media);
        entry.members.insert(
            member.id.clone(),
            Entry {
                member: member.clone(),
                media,
                seq,
            },
        );
        Ok(Joined::Admitted { peers })
    }

    async fn leave(&self, room: &RoomId, member_id: &str) -> Result<Left, StoreError> {
        let mut rooms = self.rooms();
        let Some(entry) = rooms.get_mut(room) else {
            return Ok(Left::default());
        };
        let removed = entry.members.remove(member_id).is_some();
        if entry.members.is_empty() {
            rooms.remove(room);
        }
        Ok(Left {
            was_member: removed,
            nodes: Vec::new(),
        })
    }

    async fn set_media(
        &self,
        room: &RoomId,
        member_id: &str,
        media: MediaState,
    ) -> Result<bool, StoreError> {
        let mut rooms = self.rooms();
        match rooms
            .get_mut(room)
            .and_then(|r| r.members.get_mut(member_id))
        {
            Some(entry) => {
                entry.media = Some(media);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn locate(
        &self,
        rooms: &BTreeSet<RoomId>,
        member_id: &str,
    ) -> Result<Option<(RoomId, Located)>, StoreError> {
        Ok(rooms.iter().find_map(|room| {
            let located = self.locate_now(room, member_id).flatten()?;
            Some((room.clone(), located))
        }))
    }

    async fn release(&self, member_id: &str) -> Vec<RoomId> {
        let mut rooms = self.rooms();
        let released = rooms
            .iter_mut()
            .filter_map(|(id, room)| room.members.remove(member_id).map(|_| id.clone()))
            .collect();
        rooms.retain(|_, room| !room.members.is_empty());
        released
    }

    fn locate_now(&self, room: &RoomId, member_id: &str) -> Option<Option<Located>> {
        let resumable = self
            .rooms()
            .get(room)
            .and_then(|r| r.members.get(member_id))
            .map(|e| e.member.resumable);
        Some(resumable.map(|resumable| Located {
            location: Location::ThisNode,
            resumable,
        }))
    }

    fn room_nodes(&self, _room: &RoomId) -> Vec<String> {
        Vec::new()
    }

    fn local_rooms(&self) -> usize {
        self.rooms().len()
    }

    fn local_memberships(&self) -> usize {
        self.rooms().values().map(|r| r.members.len()).sum()
    }

    async fn peers(&self, room: &RoomId) -> Result<Vec<Peer>, StoreError> {
        Ok(self
            .rooms()
            .get(room)
            .map(|r| r.peers_except(""))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> RoomId {
        RoomId::try_from(id.to_string()).unwrap()
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            name: format!("name-{id}").try_into().unwrap(),
            node: "n1".into(),
            joined_at_ms: 0,
            resumable: false,
        }
    }

    fn ids(peers: &[Peer]) -> Vec<&str> {
        peers.iter().map(|p| p.member.id.as_str()).collect()
    }

    /// A joiner is told who was there before it, in join order, and never about itself.
    #[tokio::test]
    async fn join_returns_earlier_members_in_order() {
        let store = MemoryRoomStore::new();
        let r = room("r");
        for id in ["a", "b", "c"] {
            store.join(&r, &member(id), None).await.unwrap();
        }
        match store.join(&r, &member("d"), None).await.unwrap() {
            Joined::Admitted { peers } => assert_eq!(ids(&peers), ["a", "b", "c"]),
            Joined::Full => panic!("not full"),
        }
        assert_eq!(ids(&store.peers(&r).await.unwrap()), ["a", "b", "c", "d"]);
    }

    /// Capacity is enforced, and a member already inside may re-join a full room.
    #[tokio::test]
    async fn capacity_is_enforced() {
        let store = MemoryRoomStore::new();
        let r = room("r");
        store.join(&r, &member("a"), Some(2)).await.unwrap();
        store.join(&r, &member("b"), Some(2)).await.unwrap();
        assert_eq!(
            store.join(&r, &member("c"), Some(2)).await.unwrap(),
            Joined::Full
        );
        assert!(matches!(
            store.join(&r, &member("a"), Some(2)).await.unwrap(),
            Joined::Admitted { .. }
        ));
        assert_eq!(store.peers(&r).await.unwrap().len(), 2);
    }

    /// Media state is kept per member per room and forgotten on leave.
    #[tokio::test]
    async fn media_state_lifecycle() {
        let store = MemoryRoomStore::new();
        let (r1, r2) = (room("r1"), room("r2"));
        let on = MediaState {
            mic: true,
            cam: false,
        };
        assert!(
            !store.set_media(&r1, "a", on).await.unwrap(),
            "not a member yet"
        );
        store.join(&r1, &member("a"), None).await.unwrap();
        store.join(&r2, &member("a"), None).await.unwrap();
        assert!(store.set_media(&r1, "a", on).await.unwrap());
        assert_eq!(store.peers(&r1).await.unwrap()[0].media, Some(on));
        assert_eq!(store.peers(&r2).await.unwrap()[0].media, None);
        assert!(store.leave(&r1, "a").await.unwrap().was_member);
        assert!(!store.leave(&r1, "a").await.unwrap().was_member);
        store.join(&r1, &member("a"), None).await.unwrap();
        assert_eq!(store.peers(&r1).await.unwrap()[0].media, None);
        let only_r2 = BTreeSet::from([r2.clone()]);
        assert_eq!(
            store.locate(&only_r2, "a").await.unwrap(),
            Some((
                r2.clone(),
                Located {
                    location: Location::ThisNode,
                    resumable: false
                }
            ))
        );
        assert_eq!(store.locate(&only_r2, "b").await.unwrap(), None);
    }
}
