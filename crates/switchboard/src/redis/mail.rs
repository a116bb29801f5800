//! Node mail: messages addressed to one node, on that node's own channel.
//!
//! A relay concerns two sockets, so it should cost the two nodes that hold them and nobody
//! else. Every node subscribes to one sharded channel of its own (`sb-mail#{node}`), and
//! whatever is meant for one node is published there, not on a channel every node reads:
//!
//! - **relays** to a socket on another node (`Relay`), where the sender's node found the
//!   target in its view of the room (`rooms::view`), without asking Redis;
//! - **room events** (`Emit`: presence, media state, departures, introductions) for the
//!   node's sockets in a room;
//! - **roster changes** (`Roster`) that keep those views current: who joined or left which
//!   room, and which node died;
//! - **session events** (`Deliver`, `Moved`) for resumable sessions (`crate::sessions`).
//!
//! `SPUBLISH` answers how many nodes were listening, so a message to a node that crashed or
//! exited (nobody listening) is known at once: a session event is then kept for the session,
//! a relay refused. Everything one node sends another goes out on one connection to one
//! channel, so it arrives in the order it was sent.
//!
//! The wire format is a tag byte and length-prefixed fields: a relay's payload (SDP, a
//! candidate) travels as the exact bytes of its JSON text, neither escaped nor parsed on the
//! way.

use switchboard_protocol::RoomId;

/// One message to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// Deliver a server event (JSON payload) to a session this node holds.
    Deliver {
        peer: String,
        event: String,
        payload: String,
    },
    /// A session this node held was resumed on another node: forget it, silently.
    Moved { peer: String },
    /// Deliver a relay (`#rtcio:message`, its JSON payload) to `target`, if it is a member of
    /// `room` on this node; `from` is the sending node, told when it is not.
    Relay {
        from: String,
        room: RoomId,
        target: String,
        payload: String,
    },
    /// Emit a server event (JSON payload) to this node's sockets in a call room: all of them
    /// when `to` is empty, else those of `to` that are members of the room here.
    Emit {
        room: RoomId,
        to: Vec<String>,
        event: String,
        payload: String,
    },
    /// A change to the members of a room this node may have in its view.
    Roster(RosterChange),
}

/// A change to the members of a room, told to the nodes that may have it in their view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// `member` joined `room` on `node` (or its session moved to `node`).
    Joined {
        room: RoomId,
        member: String,
        node: String,
        resumable: bool,
    },
    /// `member` is no longer in `room` on `node`.
    Left {
        room: RoomId,
        member: String,
        node: String,
    },
    /// `node` died; its members that are not resumable sessions are gone.
    NodeGone { node: String },
}

const DELIVER: u8 = b'D';
const MOVED: u8 = b'M';
const RELAY: u8 = b'R';
const JOINED: u8 = b'J';
const LEFT: u8 = b'L';
const NODE_GONE: u8 = b'G';
const EMIT: u8 = b'E';

impl Mail {
    pub fn encode(&self) -> Vec<u8> {
        // Member ids never contain a space (socket ids and session ids are URL-safe).
        let to = match self {
            Mail::Emit { to, .. } => to.join(" "),
            _ => String::new(),
        };
        let (tag, fields): (u8, Vec<&str>) = match self {
            Mail::Emit {
                room,
                event,
                payload,
                ..
            } => (EMIT, vec![room.as_str(), &to, event, payload]),
            Mail::Deliver {
                peer,
                event,
                payload,
            } => (DELIVER, vec![peer, event, payload]),
            Mail::Moved { peer } => (MOVED, vec![peer]),
            Mail::Relay {
                from,
                room,
                target,
                payload,
            } => (RELAY, vec![from, room.as_str(), target, payload]),
            Mail::Roster(RosterChange::Joined {
                room,
                member,
                node,
                resumable,
            }) => {
                let resumable = if *resumable { "1" } else { "" };
                (JOINED, vec![room.as_str(), member, node, resumable])
            }
            Mail::Roster(RosterChange::Left { room, member, node }) => {
                (LEFT, vec![room.as_str(), member, node])
            }
            Mail::Roster(RosterChange::NodeGone { node }) => (NODE_GONE, vec![node]),
        };
        let len = 1 + fields.iter().map(|f| 4 + f.len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        bytes.push(tag);
        for field in fields {
            bytes.extend_from_slice(&(field.len() as u32).to_be_bytes());
            bytes.extend_from_slice(field.as_bytes());
        }
        bytes
    }

    /// `None` for anything this version did not write.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, mut rest) = bytes.split_first()?;
        let mut next = || -> Option<String> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_be_bytes(*len) as usize;
            let field = tail.get(..len)?;
            rest = &tail[len..];
            String::from_utf8(field.to_vec()).ok()
        };
        let room = |text: String| RoomId::try_from(text).ok();
        let mail = match tag {
            DELIVER => Mail::Deliver {
                peer: next()?,
                event: next()?,
                payload: next()?,
            },
            MOVED => Mail::Moved { peer: next()? },
            RELAY => Mail::Relay {
                from: next()?,
                room: room(next()?)?,
                target: next()?,
                payload: next()?,
            },
            JOINED => Mail::Roster(RosterChange::Joined {
                room: room(next()?)?,
                member: next()?,
                node: next()?,
                resumable: !next()?.is_empty(),
            }),
            LEFT => Mail::Roster(RosterChange::Left {
                room: room(next()?)?,
                member: next()?,
                node: next()?,
            }),
            NODE_GONE => Mail::Roster(RosterChange::NodeGone { node: next()? }),
            EMIT => Mail::Emit {
                room: room(next()?)?,
                to: next()?
                    .split(' ')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect(),
                event: next()?,
                payload: next()?,
            },
            _ => return None,
        };
        rest.is_empty().then_some(mail)
    }
}

/// The sharded pub/sub channel of `node` (its own hash tag, its own slot).
pub fn mail_channel(node: &str) -> String {
    format!("sb-mail#{{{node}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn every_kind_of_mail_round_trips() {
        let mails = [
            Mail::Deliver {
                peer: "p".into(),
                event: "#rtcio:message".into(),
                payload: r#"{"data":{"sdp":"v=0\r\n"}}"#.into(),
            },
            Mail::Moved { peer: "p".into() },
            Mail::Relay {
                from: "n1".into(),
                room: room("r"),
                target: "abc".into(),
                payload: "{\"data\":\"é\"}".into(),
            },
            Mail::Roster(RosterChange::Joined {
                room: room("r"),
                member: "m".into(),
                node: "n2".into(),
                resumable: true,
            }),
            Mail::Roster(RosterChange::Joined {
                room: room("r"),
                member: "m".into(),
                node: "n2".into(),
                resumable: false,
            }),
            Mail::Roster(RosterChange::Left {
                room: room("r"),
                member: "m".into(),
                node: "n2".into(),
            }),
            Mail::Roster(RosterChange::NodeGone { node: "n3".into() }),
            Mail::Emit {
                room: room("r"),
                to: vec![],
                event: "media-state".into(),
                payload: "{}".into(),
            },
            Mail::Emit {
                room: room("r"),
                to: vec!["a".into(), "b".into()],
                event: "user-connected".into(),
                payload: "{\"id\":\"c\"}".into(),
            },
        ];
        for mail in mails {
            assert_eq!(Mail::decode(&mail.encode()), Some(mail));
        }
        assert_eq!(mail_channel("n1"), "sb-mail#{n1}");
    }

    #[test]
    fn junk_and_truncated_mail_is_refused() {
        assert_eq!(Mail::decode(b""), None);
        assert_eq!(Mail::decode(b"junk"), None);
        let mut relay = Mail::Moved { peer: "p".into() }.encode();
        relay.push(0);
        assert_eq!(Mail::decode(&relay), None, "trailing bytes");
        let whole = Mail::Relay {
            from: "n".into(),
            room: room("r"),
            target: "t".into(),
            payload: "{}".into(),
        }
        .encode();
        for cut in 0..whole.len() {
            assert_eq!(Mail::decode(&whole[..cut]), None, "cut at {cut}");
        }
    }
}
