//! Resumable sessions: a peer id that outlives one connection (switchboard's extension).
//!
//! socket.io gives a reconnecting client a new socket id, and the rtc.io client keys peer
//! connections by id: a client that comes back under a new id after a drain, a crash or a
//! network blip leaves its partners with a second, stuck peer connection. A client that opts
//! in (`resume` in its handshake auth) gets a *session* instead: a peer id (what everyone
//! else sees: `source` of its relays, `id` in presence events, its room membership) and a
//! single-use token. When its transport is lost the session is *parked*, not ended: it stays
//! in its rooms, what is addressed to it is kept, and nobody is told anything. A connection
//! that presents the token within the grace period continues it, on any node; otherwise the
//! departure is announced as for any disconnect. Clients that do not opt in keep their
//! socket id as peer id and see no change at all.
//!
//! [`Sessions`] is this node's part: which sessions it holds, live or parked, and how to reach
//! each. With Redis (cluster mode) a [`SessionDirectory`] is the cluster-wide part: the
//! current token, which node holds a session, whether it is parked, and what was kept for it,
//! so a session parked on one node resumes on another, even after the first one crashed.
//! Without Redis, or while Redis is down, a session resumes on the node that parked it.

mod redis;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_protocol::RoomId;
use tokio::sync::Notify;

pub use redis::{Orphan, RedisSessionDirectory};

use crate::rooms::StoreError;

/// Events kept for one parked session at most; past this the session ends.
pub const MAX_KEPT_EVENTS: usize = 256;
/// Bytes of kept events for one parked session at most (event names plus JSON payloads);
/// past this the session ends.
pub const MAX_KEPT_BYTES: usize = 512 * 1024;
/// Longest resume token a client may present; longer ones are ignored (a new session).
pub const MAX_TOKEN_LEN: usize = 256;

/// A resume token: the peer id and a 128-bit random secret, `"<peer>.<secret hex>"`.
///
/// The peer id in the clear lets any node find the session; the secret is what proves the
/// holder owns it. Each token works once: every resume replaces the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub peer: String,
    secret: String,
}

impl Token {
    /// A fresh token for `peer`.
    pub fn mint(peer: &str) -> Self {
        let mut bytes = [0u8; 16];
        // The OS random source does not fail on Linux once booted; if it ever did, a zero
        // secret would be guessable, so fall back to a hash of the clock and the process.
        if getrandom::fill(&mut bytes).is_err() {
            use std::hash::{BuildHasher, RandomState};
            let a = RandomState::new().hash_one(std::time::SystemTime::now());
            let b = RandomState::new().hash_one(peer);
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&b.to_le_bytes());
        }
        let secret = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            peer: peer.to_owned(),
            secret,
        }
    }

    /// Reads a token a client presented; `None` for anything malformed.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (peer, secret) = text.rsplit_once('.')?;
        let peer_ok = !peer.is_empty()
            && peer.len() <= 64
            && peer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let secret_ok = secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_hexdigit());
        (peer_ok && secret_ok).then(|| Self {
            peer: peer.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Whether `other` carries the same secret, compared in constant time.
    fn matches(&self, other: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), other.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The text a client sends back. Never logged.
    pub fn reveal(&self) -> String {
        format!("{}.{}", self.peer, self.secret)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}.***)", self.peer)
    }
}

/// One server event kept for a parked session: its name and its JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub event: String,
    pub payload: String,
}

impl Kept {
    fn size(&self) -> usize {
        self.event.len() + self.payload.len()
    }

    /// One line in Redis: event names never contain a newline, compact JSON neither.
    fn encode(&self) -> String {
        format!("{}\n{}", self.event, self.payload)
    }

    fn decode(line: &str) -> Option<Self> {
        let (event, payload) = line.split_once('\n')?;
        Some(Self {
            event: event.to_owned(),
            payload: payload.to_owned(),
        })
    }
}

/// Who was in each of a session's rooms when it was parked, so that on resume it can be told
/// who left meanwhile (it could not hear those departures).
pub type Roster = BTreeMap<RoomId, Vec<String>>;

/// The live connection carrying a session on this node.
pub trait Connection: Send + Sync {
    /// Sends one event with an already serialized JSON payload; false if the connection is
    /// closing (the event did not go out).
    fn emit(&self, event: &str, payload: &str) -> bool;
    /// Closes the connection without any announcement: another connection took over.
    fn close(&self);
    /// The socket id of this connection.
    fn socket(&self) -> &str;
}

/// What became of an event addressed to a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent to its live connection, or kept for it.
    Done,
    /// The session is not held by this node.
    NotHere,
    /// Kept events exceed the bound: the session must end (`Sessions::end_parked`).
    Overflow,
}

/// A session continued by a new connection.
#[derive(Debug)]
pub struct Resumed {
    /// Events kept while it was away, oldest first.
    pub kept: Vec<Kept>,
    /// Its rooms when it was parked, with who was in them.
    pub roster: Roster,
    /// The node that held it, when that was another node.
    pub from: Option<String>,
}

/// Why a session's departure is being announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Not resumed within the grace period.
    Expired,
    /// Too much was kept for it.
    Overflow,
}

/// The cluster-wide record of sessions (Redis).
#[async_trait]
pub trait SessionDirectory: Send + Sync {
    /// Records a new live session on this node.
    async fn open(&self, token: &Token, subject: Option<&str>) -> Result<(), StoreError>;
    /// Continues the session `token` names on this node with `next` as its token, if the
    /// token is current, the subject matches and the session is still there.
    async fn resume(
        &self,
        token: &Token,
        subject: Option<&str>,
        next: &Token,
    ) -> Result<Option<Resumed>, StoreError>;
    /// Marks a session of this node parked until `grace` from now, with its roster; false if
    /// it no longer belongs to this node (it resumed elsewhere).
    async fn park(&self, peer: &str, roster: &Roster, grace: Duration) -> Result<bool, StoreError>;
    /// Keeps an event for a parked session, unless it lives on a node other than
    /// `unreachable`, which is then returned so the caller sends it there.
    async fn keep(&self, peer: &str, kept: &Kept, unreachable: &str)
    -> Result<Keeping, StoreError>;
    /// Ends a session this node holds (explicit goodbye, or grace over): returns its roster
    /// if this call ended it, `None` if it was resumed elsewhere or ended already.
    async fn end(&self, peer: &str) -> Result<Option<Roster>, StoreError>;
    /// Sends an event for `peer` to `node`; whether that node was there to receive it.
    async fn forward(&self, node: &str, peer: &str, kept: &Kept) -> Result<bool, StoreError>;
    /// This node's id.
    fn node(&self) -> &str;
}

/// What [`SessionDirectory::keep`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Keeping {
    /// Kept for the session's next connection.
    Kept,
    /// Too much is kept already: the session is due to end.
    Overflow,
    /// The session lives on this node: send it there.
    LiveOn(String),
    /// No such session (ended, or never resumable).
    Gone,
}

/// A session this node holds.
struct Local {
    token: Token,
    subject: Option<String>,
    state: State,
}

enum State {
    /// Its connection is starting: events addressed to it wait until it is ready, so they
    /// follow `switchboard:session` and what was kept.
    Starting {
        connection: Arc<dyn Connection>,
        pending: Vec<Kept>,
    },
    Live {
        connection: Arc<dyn Connection>,
        /// Events its connection refused because it was closing (single process only;
        /// with Redis they are kept there): they are kept once it is parked.
        lost: Vec<Kept>,
    },
    /// Its connection is about to be cut by a drain: events are kept as if it were parked
    /// (in `lost` without Redis), so none is sent into a connection about to close.
    Leaving {
        connection: Arc<dyn Connection>,
        lost: Vec<Kept>,
    },
    /// Between connections. What is kept here is what could not go to the directory.
    Parked {
        kept: Vec<Kept>,
        bytes: usize,
        roster: Roster,
        /// Ends the grace early (too much kept).
        wake: Arc<Notify>,
    },
}

/// This node's sessions.
pub struct Sessions {
    grace: Duration,
    directory: Option<Arc<dyn SessionDirectory>>,
    local: Mutex<HashMap<String, Local>>,
}

impl Sessions {
    pub fn new(grace: Duration, directory: Option<Arc<dyn SessionDirectory>>) -> Self {
        Self {
            grace,
            directory,
            local: Mutex::new(HashMap::new()),
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    pub fn directory(&self) -> Option<&Arc<dyn SessionDirectory>> {
        self.directory.as_ref()
    }

    fn local(&self) -> MutexGuard<'_, HashMap<String, Local>> {
        // Every critical section is one map operation: a poisoned lock holds no half-write.
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a new session for `connection`, whose socket id becomes the peer id.
    pub async fn open(&self, connection: Arc<dyn Connection>, subject: Option<String>) -> Token {
        let token = Token::mint(connection.socket());
        if let Some(directory) = &self.directory
            && let Err(e) = directory.open(&token, subject.as_deref()).await
        {
            tracing::debug!(error = %e, "session recorded on this node only");
        }
        self.local().insert(
            token.peer.clone(),
            Local {
                token: token.clone(),
                subject,
                state: State::Starting {
                    connection,
                    pending: Vec::new(),
                },
            },
        );
        token
    }

    /// Continues the session `presented` names on `connection`, if it may: the token is
    /// current, the subject is the same, and the session was not ended. Returns the new
    /// token and what the session missed; `None` means the client gets a new session.
    pub async fn resume(
        &self,
        presented: &Token,
        connection: Arc<dyn Connection>,
        subject: Option<String>,
    ) -> Option<(Token, Resumed)> {
        let next = Token::mint(&presented.peer);
        let here = self.take_local(presented, subject.as_deref());
        let remote = match &self.directory {
            Some(directory) => match directory.resume(presented, subject.as_deref(), &next).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %e, "session directory unavailable");
                    None
                }
            },
            None => None,
        };
        let resumed = match (here, remote) {
            (Some((old, mut kept, roster)), remote) => {
                // Held here: what Redis kept came after what could only be kept here
                // (Redis was down then), so it goes last.
                if let Some(remote) = remote {
                    kept.extend(remote.kept);
                }
                if let Some(old) = old {
                    old.close();
                }
                Resumed {
                    kept,
                    roster,
                    from: None,
                }
            }
            (None, Some(remote)) => remote,
            (None, None) => return None,
        };
        self.local().insert(
            next.peer.clone(),
            Local {
                token: next.clone(),
                subject,
                state: State::Starting {
                    connection,
                    pending: Vec::new(),
                },
            },
        );
        Some((next, resumed))
    }

    /// Takes the session out of this node's map if `presented` may resume it: its old live
    /// connection (to close), what was kept here, and its roster.
    #[allow(clippy::type_complexity)]
    fn take_local(
        &self,
        presented: &Token,
        subject: Option<&str>,
    ) -> Option<(Option<Arc<dyn Connection>>, Vec<Kept>, Roster)> {
        let mut local = self.local();
        let entry = local.get(&presented.peer)?;
        if !entry.token.matches(&presented.secret) || entry.subject.as_deref() != subject {
            return None;
        }
        let entry = local.remove(&presented.peer)?;
        Some(match entry.state {
            State::Starting { connection, .. } | State::Live { connection, .. } => {
                (Some(connection), Vec::new(), Roster::new())
            }
            State::Leaving { connection, lost } => (Some(connection), lost, Roster::new()),
            State::Parked { kept, roster, .. } => (None, kept, roster),
        })
    }

    /// The session's connection is ready: sends what waited for it and delivers directly
    /// from now on.
    pub fn ready(&self, peer: &str) {
        let mut local = self.local();
        let Some(entry) = local.get_mut(peer) else {
            return;
        };
        let State::Starting {
            connection,
            pending,
        } = &mut entry.state
        else {
            return;
        };
        for kept in pending.drain(..) {
            connection.emit(&kept.event, &kept.payload);
        }
        entry.state = State::Live {
            connection: connection.clone(),
            lost: Vec::new(),
        };
    }

    /// Sends an event to a session this node holds, or keeps it while the session is parked.
    pub async fn deliver(&self, peer: &str, event: &str, payload: &str) -> Delivery {
        let kept = Kept {
            event: event.to_owned(),
            payload: payload.to_owned(),
        };
        // Who may still hold the session live as far as Redis knows: this node, when its
        // connection here is closing but not parked yet.
        let mut unreachable = "";
        {
            let mut local = self.local();
            let Some(entry) = local.get_mut(peer) else {
                return Delivery::NotHere;
            };
            match &mut entry.state {
                State::Live { connection, lost } => {
                    if connection.emit(event, payload) {
                        return Delivery::Done;
                    }
                    match &self.directory {
                        Some(directory) => unreachable = directory.node(),
                        None => {
                            lost.push(kept);
                            return Delivery::Done;
                        }
                    }
                }
                State::Starting { pending, .. } => {
                    pending.push(kept);
                    return Delivery::Done;
                }
                State::Leaving { lost, .. } => match &self.directory {
                    Some(directory) => unreachable = directory.node(),
                    None => {
                        lost.push(kept);
                        return Delivery::Done;
                    }
                },
                State::Parked { .. } => {}
            }
        }
        // Parked: kept in Redis when it can be (another node may resume it), else here.
        if let Some(directory) = &self.directory {
            match directory.keep(peer, &kept, unreachable).await {
                Ok(Keeping::Kept) => return Delivery::Done,
                Ok(Keeping::Overflow) => {
                    self.wake(peer);
                    return Delivery::Overflow;
                }
                // Resumed elsewhere just now, or ended: the caller routes it again.
                Ok(Keeping::LiveOn(_)) | Ok(Keeping::Gone) => return Delivery::NotHere,
                Err(e) => tracing::debug!(error = %e, "kept on this node until Redis is back"),
            }
        }
        let mut local = self.local();
        let Some(Local {
            state:
                State::Parked {
                    kept: list,
                    bytes,
                    wake,
                    ..
                },
            ..
        }) = local.get_mut(peer)
        else {
            return Delivery::NotHere;
        };
        if list.len() >= MAX_KEPT_EVENTS || *bytes + kept.size() > MAX_KEPT_BYTES {
            wake.notify_one();
            return Delivery::Overflow;
        }
        *bytes += kept.size();
        list.push(kept);
        Delivery::Done
    }

    /// The connection `socket` of session `peer` is gone without the client saying goodbye:
    /// parks the session. Returns what wakes its expiry early, or `None` if the session had
    /// moved on (another connection took it over): then nothing is to be announced or changed.
    pub async fn park(&self, peer: &str, socket: &str, roster: Roster) -> Option<Arc<Notify>> {
        let wake = Arc::new(Notify::new());
        {
            let mut local = self.local();
            let entry = local.get_mut(peer)?;
            let lost = match &mut entry.state {
                State::Live { connection, lost } | State::Leaving { connection, lost }
                    if connection.socket() == socket =>
                {
                    std::mem::take(lost)
                }
                State::Starting { connection, .. } if connection.socket() == socket => Vec::new(),
                _ => return None,
            };
            entry.state = State::Parked {
                bytes: lost.iter().map(Kept::size).sum(),
                kept: lost,
                roster: roster.clone(),
                wake: wake.clone(),
            };
        }
        if let Some(directory) = &self.directory {
            match directory.park(peer, &roster, self.grace).await {
                Ok(true) => {}
                Ok(false) => {
                    // Resumed on another node in the meantime.
                    self.local().remove(peer);
                    return None;
                }
                Err(e) => tracing::debug!(error = %e, "session parked on this node only"),
            }
        }
        Some(wake)
    }

    /// Ends the grace of a session parked here at once.
    fn wake(&self, peer: &str) {
        if let Some(Local {
            state: State::Parked { wake, .. },
            ..
        }) = self.local().get(peer)
        {
            wake.notify_one();
        }
    }

    /// A draining node is about to cut the connection `socket`: if it carries a live session,
    /// events for the session are kept from now on rather than sent into a connection about
    /// to close. Returns whether it carried one (the caller then lets the connection flush).
    pub fn leave(&self, socket: &str) -> bool {
        let mut local = self.local();
        let Some(entry) = local.values_mut().find(|e| match &e.state {
            State::Live { connection, .. } => connection.socket() == socket,
            _ => false,
        }) else {
            return false;
        };
        if let State::Live { connection, lost } = &mut entry.state {
            entry.state = State::Leaving {
                connection: connection.clone(),
                lost: std::mem::take(lost),
            };
        }
        true
    }

    /// Whether `peer`'s connection `socket` is the one carrying the session here.
    pub fn carries(&self, peer: &str, socket: &str) -> bool {
        self.local()
            .get(peer)
            .is_some_and(|entry| match &entry.state {
                State::Live { connection, .. }
                | State::Leaving { connection, .. }
                | State::Starting { connection, .. } => connection.socket() == socket,
                State::Parked { .. } => false,
            })
    }

    /// Ends the session `peer` for good on this node (an explicit goodbye, or its departure
    /// is being announced). Returns the roster it had if it was parked here.
    pub async fn end(&self, peer: &str) -> Option<Roster> {
        let entry = self.local().remove(peer)?;
        if let Some(directory) = &self.directory
            && let Err(e) = directory.end(peer).await
        {
            tracing::debug!(error = %e, "session record left to expire in Redis");
        }
        match entry.state {
            State::Parked { roster, .. } => Some(roster),
            _ => None,
        }
    }

    /// Ends a session parked here whose grace is over, unless it was resumed meanwhile
    /// (here or elsewhere; `wake` tells this parking from a later one). Returns the rooms to
    /// announce its departure to.
    pub async fn end_parked(&self, peer: &str, wake: &Arc<Notify>) -> Option<Roster> {
        let roster = {
            let local = self.local();
            match &local.get(peer)?.state {
                State::Parked {
                    roster, wake: own, ..
                } if Arc::ptr_eq(own, wake) => roster.clone(),
                _ => return None,
            }
        };
        if let Some(directory) = &self.directory {
            match directory.end(peer).await {
                Ok(Some(_)) | Err(_) => {}
                // Resumed on another node, or ended by a survivor's sweep.
                Ok(None) => {
                    self.local().remove(peer);
                    return None;
                }
            }
        }
        self.local().remove(peer);
        Some(roster)
    }

    /// A session this node held was resumed by another node: forgets it here, closing its
    /// connection if one was somehow still open. Returns whether this node held it.
    pub fn moved_away(&self, peer: &str) -> bool {
        let Some(entry) = self.local().remove(peer) else {
            return false;
        };
        if let State::Live { connection, .. }
        | State::Leaving { connection, .. }
        | State::Starting { connection, .. } = entry.state
        {
            connection.close();
        }
        true
    }

    /// Whether this node holds the session `peer` (live, starting or parked).
    pub fn holds(&self, peer: &str) -> bool {
        self.local().contains_key(peer)
    }
}

/// A roster in Redis: `{"room": ["peer", ...]}`.
#[derive(Serialize, Deserialize)]
struct RosterRecord(BTreeMap<String, Vec<String>>);

fn roster_to_json(roster: &Roster) -> String {
    let record = RosterRecord(
        roster
            .iter()
            .map(|(room, peers)| (room.as_str().to_owned(), peers.clone()))
            .collect(),
    );
    serde_json::to_string(&record).unwrap_or_default()
}

fn roster_from_json(json: &str) -> Roster {
    let Ok(RosterRecord(rooms)) = serde_json::from_str(json) else {
        return Roster::new();
    };
    rooms
        .into_iter()
        .filter_map(|(room, peers)| Some((RoomId::try_from(room).ok()?, peers)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let token = Token::mint("AbC-12_x");
        let text = token.reveal();
        assert_eq!(text.len(), "AbC-12_x".len() + 1 + 32);
        let parsed = Token::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret));
        assert!(!parsed.matches(&Token::mint("AbC-12_x").secret));
        for bad in [
            "",
            "nodot",
            ".abc",
            "a.b",
            &format!("a b.{}", token.secret),
            &"x".repeat(300),
        ] {
            assert!(Token::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(Token::mint("a").secret, Token::mint("a").secret);
    }

    #[test]
    fn kept_events_round_trip() {
        let kept = Kept {
            event: "#rtcio:message".into(),
            payload: r#"{"source":"a","data":{"sdp":"v=0\r\n"}}"#.into(),
        };
        assert_eq!(Kept::decode(&kept.encode()), Some(kept));
    }

    struct Fake {
        id: String,
        sent: Mutex<Vec<String>>,
    }

    impl Connection for Fake {
        fn emit(&self, event: &str, _payload: &str) -> bool {
            self.sent.lock().unwrap().push(event.to_owned());
            true
        }
        fn close(&self) {}
        fn socket(&self) -> &str {
            &self.id
        }
    }

    fn fake(id: &str) -> Arc<Fake> {
        Arc::new(Fake {
            id: id.into(),
            sent: Mutex::new(Vec::new()),
        })
    }

    /// Without Redis: a parked session keeps what is addressed to it, resumes once with the
    /// current token only, and delivers what was kept in order after `ready`.
    #[tokio::test]
    async fn parked_sessions_keep_and_resume_once() {
        let sessions = Sessions::new(Duration::from_secs(30), None);
        let first = fake("s1");
        let token = sessions.open(first.clone(), None).await;
        sessions.ready("s1");
        assert_eq!(sessions.deliver("s1", "a", "{}").await, Delivery::Done);
        assert!(sessions.park("s1", "s1", Roster::new()).await.is_some());
        assert_eq!(sessions.deliver("s1", "b", "{}").await, Delivery::Done);
        assert_eq!(sessions.deliver("s1", "c", "{}").await, Delivery::Done);

        let second = fake("s2");
        let wrong_subject = sessions
            .resume(&token, second.clone(), Some("x".into()))
            .await;
        assert!(wrong_subject.is_none());
        let (next, resumed) = sessions.resume(&token, second.clone(), None).await.unwrap();
        assert_eq!(next.peer, "s1");
        let kept: Vec<_> = resumed.kept.iter().map(|k| k.event.as_str()).collect();
        assert_eq!(kept, ["b", "c"]);
        assert!(
            sessions.resume(&token, fake("s3"), None).await.is_none(),
            "used token"
        );
        assert_eq!(sessions.deliver("s1", "d", "{}").await, Delivery::Done);
        sessions.ready("s1");
        assert_eq!(*second.sent.lock().unwrap(), ["d"]);
        assert_eq!(*first.sent.lock().unwrap(), ["a"]);
        // The old connection's late goodbye changes nothing.
        assert!(sessions.park("s1", "s1", Roster::new()).await.is_none());
        assert!(sessions.carries("s1", "s2"));
    }

    #[tokio::test]
    async fn kept_events_are_bounded() {
        let sessions = Sessions::new(Duration::from_secs(30), None);
        sessions.open(fake("s1"), None).await;
        assert!(sessions.park("s1", "s1", Roster::new()).await.is_some());
        for _ in 0..MAX_KEPT_EVENTS {
            assert_eq!(sessions.deliver("s1", "e", "{}").await, Delivery::Done);
        }
        assert_eq!(sessions.deliver("s1", "e", "{}").await, Delivery::Overflow);
        let big = "x".repeat(MAX_KEPT_BYTES);
        sessions.open(fake("s2"), None).await;
        assert!(sessions.park("s2", "s2", Roster::new()).await.is_some());
        assert_eq!(sessions.deliver("s2", "e", &big).await, Delivery::Overflow);
    }

    #[test]
    fn rosters_round_trip() {
        let mut roster = Roster::new();
        roster.insert(RoomId::try_from("r1".to_owned()).unwrap(), vec!["a".into()]);
        assert_eq!(roster_from_json(&roster_to_json(&roster)), roster);
        assert!(roster_from_json("junk").is_empty());
    }
}
