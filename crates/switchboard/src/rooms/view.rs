//! This node's view of where the *other* nodes' members of its rooms are.
//!
//! A relay goes from a sender to a roommate, so the sender's node always has a member (the
//! sender) in the room. Keeping, for each room with a member here, the node of every remote
//! member lets a relay go straight to the target's node (`redis::mail`) without asking Redis
//! where it is.
//!
//! How the view stays current, without a round trip on the relay path:
//!
//! - A member joining here sees the room's atomic snapshot (the join script), nodes included:
//!   the view starts from it, and the joiner's node tells every node in it ([`RosterChange`]).
//!   A later joiner sees this node's member in its own snapshot, so it tells this node too.
//! - A member leaving tells the nodes in its node's view; a node reaping a dead one, or
//!   telling departures after a Redis outage, tells every live node.
//! - A relay that reaches a node where the target is not (a change not heard yet) makes that
//!   node answer `Left`, and the entry goes; the next relay asks Redis once and re-learns it.
//!
//! A stale entry can only send a relay to the wrong node, which delivers it to nobody: a
//! node delivers a relay only to its own member of the room the sender named. A missing one
//! costs one lookup in Redis.

use std::collections::{BTreeSet, HashMap};

use switchboard_protocol::RoomId;

use crate::redis::RosterChange;

/// Where a remote member is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub node: String,
    /// A resumable session: reached through its session, wherever it is.
    pub resumable: bool,
}

/// Remote members of the rooms this node has members in: room → member id → where.
#[derive(Debug, Default)]
pub struct RemoteMembers {
    rooms: HashMap<RoomId, HashMap<String, Remote>>,
}

impl RemoteMembers {
    /// Starts (or adds to) the view of a room this node now has a member in.
    pub fn track(&mut self, room: &RoomId, members: impl IntoIterator<Item = (String, Remote)>) {
        self.rooms.entry(room.clone()).or_default().extend(members);
    }

    /// Forgets a room this node no longer has members in; the nodes it listed.
    pub fn untrack(&mut self, room: &RoomId) -> BTreeSet<String> {
        self.rooms
            .remove(room)
            .map(|members| members.into_values().map(|r| r.node).collect())
            .unwrap_or_default()
    }

    /// Replaces the view of a tracked room (read from Redis after an outage).
    pub fn replace(&mut self, room: &RoomId, members: HashMap<String, Remote>) {
        if let Some(view) = self.rooms.get_mut(room) {
            *view = members;
        }
    }

    pub fn locate(&self, room: &RoomId, member: &str) -> Option<&Remote> {
        self.rooms.get(room)?.get(member)
    }

    /// Whether this node keeps a view of `room`.
    pub fn tracks(&self, room: &RoomId) -> bool {
        self.rooms.contains_key(room)
    }

    /// Records what Redis answered for a member that was missing (only in a tracked room).
    pub fn learn(&mut self, room: &RoomId, member: &str, remote: Remote) {
        if let Some(view) = self.rooms.get_mut(room) {
            view.insert(member.to_owned(), remote);
        }
    }

    /// The nodes with members in `room`, as far as this node knows.
    pub fn nodes(&self, room: &RoomId) -> BTreeSet<String> {
        self.rooms
            .get(room)
            .map(|members| members.values().map(|r| r.node.clone()).collect())
            .unwrap_or_default()
    }

    /// Applies a change another node told; changes to rooms not tracked here are ignored.
    pub fn apply(&mut self, change: &RosterChange) {
        match change {
            RosterChange::Joined {
                room,
                member,
                node,
                resumable,
            } => self.learn(
                room,
                member,
                Remote {
                    node: node.clone(),
                    resumable: *resumable,
                },
            ),
            RosterChange::Left { room, member, node } => {
                if let Some(view) = self.rooms.get_mut(room)
                    && view.get(member).is_some_and(|r| &r.node == node)
                {
                    view.remove(member);
                }
            }
            RosterChange::NodeGone { node } => {
                for view in self.rooms.values_mut() {
                    view.retain(|_, r| &r.node != node || r.resumable);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::try_from(name.to_owned()).unwrap()
    }

    fn on(node: &str) -> Remote {
        Remote {
            node: node.into(),
            resumable: false,
        }
    }

    #[test]
    fn changes_apply_only_to_tracked_rooms() {
        let mut view = RemoteMembers::default();
        let r = room("r");
        view.apply(&RosterChange::Joined {
            room: r.clone(),
            member: "a".into(),
            node: "n2".into(),
            resumable: false,
        });
        assert_eq!(view.locate(&r, "a"), None, "not tracked yet");
        view.track(&r, [("b".to_owned(), on("n3"))]);
        view.apply(&RosterChange::Joined {
            room: r.clone(),
            member: "a".into(),
            node: "n2".into(),
            resumable: false,
        });
        assert_eq!(view.locate(&r, "a"), Some(&on("n2")));
        assert_eq!(view.nodes(&r), BTreeSet::from(["n2".into(), "n3".into()]));
        assert_eq!(view.untrack(&r).len(), 2);
        assert_eq!(view.locate(&r, "a"), None);
    }

    #[test]
    fn a_departure_from_an_old_node_does_not_remove_a_moved_member() {
        let mut view = RemoteMembers::default();
        let r = room("r");
        view.track(&r, [("s".to_owned(), on("n2"))]);
        view.apply(&RosterChange::Joined {
            room: r.clone(),
            member: "s".into(),
            node: "n3".into(),
            resumable: true,
        });
        view.apply(&RosterChange::Left {
            room: r.clone(),
            member: "s".into(),
            node: "n2".into(),
        });
        assert_eq!(view.locate(&r, "s").map(|r| r.node.as_str()), Some("n3"));
        view.apply(&RosterChange::Left {
            room: r.clone(),
            member: "s".into(),
            node: "n3".into(),
        });
        assert_eq!(view.locate(&r, "s"), None);
    }

    #[test]
    fn a_dead_node_takes_its_members_but_not_resumable_sessions() {
        let mut view = RemoteMembers::default();
        let r = room("r");
        let session = Remote {
            node: "dead".into(),
            resumable: true,
        };
        view.track(
            &r,
            [
                ("a".to_owned(), on("dead")),
                ("s".to_owned(), session.clone()),
                ("b".to_owned(), on("alive")),
            ],
        );
        view.apply(&RosterChange::NodeGone {
            node: "dead".into(),
        });
        assert_eq!(view.locate(&r, "a"), None);
        assert_eq!(view.locate(&r, "s"), Some(&session));
        assert_eq!(view.locate(&r, "b"), Some(&on("alive")));
    }
}
