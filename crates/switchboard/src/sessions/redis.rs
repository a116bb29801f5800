//! The Redis [`SessionDirectory`]: resumable sessions shared by every node of a cluster.
//!
//! | key                        | type | content                                                   |
//! |----------------------------|------|-----------------------------------------------------------|
//! | `sb:session:{<peer>}`      | hash | `secret`, `subject`, `node`, `state` (`live`/`parked`), `parked_until` (ms), `roster` (JSON), `kept_bytes` |
//! | `sb:session:{<peer>}:kept` | list | events kept while parked, oldest first (`"<event>\n<json>"`) |
//! | `sb:parked`                | zset | peer → `parked_until`: what the sweep of every node ends  |
//!
//! A session's two keys share a hash tag, so each script below touches one slot (Redis
//! Cluster). Every change of a session is one script, so a token is used at most once, an
//! event is either kept or routed to the node that resumed the session, and a session ends
//! at most once. Records expire on their own (a day while live, the grace plus a minute
//! while parked) if every node that could end them is gone.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::SortedSetsInterface;
use fred::types::Value;
use fred::types::scripts::Script;

use super::{
    Keeping, Kept, MAX_KEPT_BYTES, MAX_KEPT_EVENTS, Resumed, Roster, SessionDirectory, Token,
    roster_from_json, roster_to_json,
};
use crate::redis::{Mail, RedisBus, RedisLink};
use crate::rooms::{RedisRoomStore, RoomStore, StoreError, now_ms};

/// How long a live session's record lives without being touched (a safety net).
const LIVE_TTL_SECS: i64 = 24 * 3600;
/// How long a parked session's record outlives its grace (the sweep ends it before).
const PARKED_EXTRA_MS: u64 = 60_000;
/// The sorted set of parked sessions by the time their grace ends.
const PARKED: &str = "sb:parked";

const OPEN: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'subject', ARGV[2], 'node', ARGV[3],
  'state', 'live', 'kept_bytes', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// Continues a session if the secret and subject match and its grace has not run out;
/// returns {previous node, roster, kept events} and empties what was kept.
const RESUME: &str = r#"
local s = redis.call('HMGET', KEYS[1], 'secret', 'subject', 'state', 'node', 'roster', 'parked_until')
if not s[1] or s[1] ~= ARGV[1] or (s[2] or '') ~= ARGV[2] then return false end
if s[3] == 'parked' and tonumber(s[6] or '0') < tonumber(ARGV[5]) then return false end
redis.call('HSET', KEYS[1], 'secret', ARGV[4], 'node', ARGV[3], 'state', 'live', 'kept_bytes', 0)
redis.call('HDEL', KEYS[1], 'parked_until', 'roster')
redis.call('EXPIRE', KEYS[1], ARGV[6])
local kept = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return {s[4] or '', s[5] or '', kept}
"#;

/// Parks a session that is live on node ARGV[1] (or already parked by it when ARGV[5] is
/// '1', the reaper's case); returns 1 if it did, 0 if it lives on another node, -1 if there
/// is no such session.
const PARK: &str = r#"
local s = redis.call('HMGET', KEYS[1], 'node', 'state')
if not s[1] then return -1 end
if s[1] ~= ARGV[1] then return 0 end
if s[2] == 'parked' then return ARGV[5] == '1' and 1 or 0 end
redis.call('HSET', KEYS[1], 'state', 'parked', 'roster', ARGV[2], 'parked_until', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// Keeps an event for a parked session (or one whose node, ARGV[3], is unreachable):
/// {'kept'}, {'overflow'} (then the session is due at once), {'live', node} or {'gone'}.
const KEEP: &str = r#"
local s = redis.call('HMGET', KEYS[1], 'state', 'node', 'kept_bytes')
if not s[1] then return {'gone'} end
if s[1] == 'live' and s[2] ~= ARGV[3] then return {'live', s[2]} end
local bytes = tonumber(s[3] or '0') + tonumber(ARGV[2])
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) or bytes > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'parked_until', 0)
  return {'overflow'}
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'kept_bytes', bytes)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {'kept'}
"#;

/// Ends a session: held by node ARGV[2] (mode 'mine'), or parked with its grace over
/// (mode 'due', ARGV[3] = now). Returns its roster, or nil if it was not ended here.
const END: &str = r#"
local s = redis.call('HMGET', KEYS[1], 'state', 'node', 'parked_until', 'roster')
if not s[1] then return false end
if ARGV[1] == 'mine' and s[2] ~= ARGV[2] then return false end
if ARGV[1] == 'due' and (s[1] ~= 'parked' or tonumber(s[3] or '0') > tonumber(ARGV[3])) then
  return false
end
redis.call('DEL', KEYS[1], KEYS[2])
return s[4] or '{}'
"#;

/// What became of a dead node's session (see [`RedisSessionDirectory::park_orphan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    /// Parked for its grace.
    Parked,
    /// It resumed on another node, which holds it now: nothing to do.
    LivesElsewhere,
    /// No such session (ended): a plain ghost.
    Gone,
}

/// The cluster's sessions, over this node's Redis link.
pub struct RedisSessionDirectory {
    link: RedisLink,
    /// Node mail goes out here.
    bus: RedisBus,
    node: String,
    store: Arc<RedisRoomStore>,
    open: Script,
    resume: Script,
    park: Script,
    keep: Script,
    end: Script,
}

fn session_key(peer: &str) -> String {
    format!("sb:session:{{{peer}}}")
}

fn kept_key(peer: &str) -> String {
    format!("sb:session:{{{peer}}}:kept")
}

impl RedisSessionDirectory {
    pub fn new(link: RedisLink, bus: RedisBus, node: String, store: Arc<RedisRoomStore>) -> Self {
        Self {
            link,
            bus,
            node,
            store,
            open: Script::from_lua(OPEN),
            resume: Script::from_lua(RESUME),
            park: Script::from_lua(PARK),
            keep: Script::from_lua(KEEP),
            end: Script::from_lua(END),
        }
    }

    async fn run(
        &self,
        script: &Script,
        peer: &str,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        if !self.link.is_up() {
            return Err(StoreError::Unavailable("Redis is unreachable".into()));
        }
        let keys = vec![session_key(peer), kept_key(peer)];
        self.link
            .run_script(script, keys, args)
            .await
            .map_err(StoreError::redis)
    }

    /// Parks, on behalf of a node that died (or an earlier run of this one), a session it
    /// held: the same grace as if its connection had been lost just now.
    pub async fn park_orphan(
        &self,
        peer: &str,
        dead: &str,
        roster: &Roster,
        grace: Duration,
    ) -> Result<Orphan, StoreError> {
        Ok(match self.park_as(peer, dead, roster, grace, true).await? {
            Value::Integer(1) => Orphan::Parked,
            Value::Integer(0) => Orphan::LivesElsewhere,
            _ => Orphan::Gone,
        })
    }

    async fn park_as(
        &self,
        peer: &str,
        node: &str,
        roster: &Roster,
        grace: Duration,
        orphan: bool,
    ) -> Result<Value, StoreError> {
        let until = now_ms() + grace.as_millis() as u64;
        let args = vec![
            node.to_owned(),
            roster_to_json(roster),
            until.to_string(),
            (grace.as_millis() as u64 + PARKED_EXTRA_MS).to_string(),
            if orphan { "1" } else { "0" }.to_owned(),
        ];
        let reply = self.run(&self.park, peer, args).await?;
        if matches!(reply, Value::Integer(1)) {
            let _: i64 = self
                .link
                .commands()
                .zadd(PARKED, None, None, false, false, (until as f64, peer))
                .await
                .map_err(StoreError::redis)?;
        }
        Ok(reply)
    }

    /// Parked sessions whose grace ended before `before_ms`, a few at a time.
    pub async fn due(&self, before_ms: u64) -> Result<Vec<String>, StoreError> {
        if !self.link.is_up() {
            return Err(StoreError::Unavailable("Redis is unreachable".into()));
        }
        self.link
            .commands()
            .zrangebyscore(PARKED, "-inf", before_ms as f64, false, Some((0, 100)))
            .await
            .map_err(StoreError::redis)
    }

    /// Ends a parked session whose grace is over, whoever parked it. Returns its roster if
    /// this call ended it. Either way it leaves the sweep's set.
    pub async fn end_due(&self, peer: &str) -> Result<Option<Roster>, StoreError> {
        let args = vec!["due".to_owned(), String::new(), now_ms().to_string()];
        let ended = self.run(&self.end, peer, args).await?;
        let _: i64 = self
            .link
            .commands()
            .zrem(PARKED, peer)
            .await
            .map_err(StoreError::redis)?;
        Ok(ended.into_string().map(|json| roster_from_json(&json)))
    }

    /// Sends an event for `peer` to the node that holds it; whether a node was listening.
    pub async fn forward(&self, node: &str, peer: &str, kept: &Kept) -> Result<bool, StoreError> {
        self.send(
            node,
            &Mail::Deliver {
                peer: peer.to_owned(),
                event: kept.event.clone(),
                payload: kept.payload.clone(),
            },
        )
        .await
    }

    async fn send(&self, node: &str, mail: &Mail) -> Result<bool, StoreError> {
        self.bus.send_mail(node, mail).await.map_err(|e| {
            self.bus.count_failed();
            StoreError::Unavailable(e.to_string())
        })
    }
}

#[async_trait]
impl SessionDirectory for RedisSessionDirectory {
    async fn open(&self, token: &Token, subject: Option<&str>) -> Result<(), StoreError> {
        let args = vec![
            token.secret.clone(),
            subject.unwrap_or_default().to_owned(),
            self.node.clone(),
            LIVE_TTL_SECS.to_string(),
        ];
        self.run(&self.open, &token.peer, args).await.map(|_| ())
    }

    async fn resume(
        &self,
        token: &Token,
        subject: Option<&str>,
        next: &Token,
    ) -> Result<Option<Resumed>, StoreError> {
        let args = vec![
            token.secret.clone(),
            subject.unwrap_or_default().to_owned(),
            self.node.clone(),
            next.secret.clone(),
            now_ms().to_string(),
            LIVE_TTL_SECS.to_string(),
        ];
        let Value::Array(mut parts) = self.run(&self.resume, &token.peer, args).await? else {
            return Ok(None);
        };
        let kept: Vec<Kept> = match parts.pop() {
            Some(Value::Array(lines)) => lines
                .into_iter()
                .filter_map(|l| l.into_string())
                .filter_map(|l| Kept::decode(&l))
                .collect(),
            _ => Vec::new(),
        };
        let mut roster = parts
            .pop()
            .and_then(Value::into_string)
            .map(|json| roster_from_json(&json))
            .unwrap_or_default();
        let from = parts.pop().and_then(Value::into_string).unwrap_or_default();
        if roster.is_empty() {
            // It was live (its node died, or its old connection is still open there): its
            // rooms are in that node's index, and nobody left them while it was away.
            for room in self.store.indexed_rooms(&from, &token.peer).await? {
                let peers = self.store.peers(&room).await?;
                roster.insert(room, peers.into_iter().map(|p| p.member.id).collect());
            }
        }
        let _: Result<i64, _> = self.link.commands().zrem(PARKED, &token.peer).await;
        if from == self.node && self.store.holds(&token.peer) {
            return Ok(Some(Resumed {
                kept,
                roster,
                from: None,
            }));
        }
        // Its memberships become this node's, then the old node (if alive) forgets it.
        let mut adopted = Roster::new();
        for (room, peers) in roster {
            match self.store.adopt(&room, &token.peer, &from).await {
                Ok(true) => {
                    adopted.insert(room, peers);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%room, error = %e, "resumed session lost a room");
                }
            }
        }
        if from == self.node {
            // An earlier run of this node held it.
            return Ok(Some(Resumed {
                kept,
                roster: adopted,
                from: None,
            }));
        }
        let moved = Mail::Moved {
            peer: token.peer.clone(),
        };
        if let Err(e) = self.send(&from, &moved).await {
            tracing::debug!(node = %from, error = %e, "previous node not told of the resume");
        }
        Ok(Some(Resumed {
            kept,
            roster: adopted,
            from: Some(from),
        }))
    }

    async fn park(&self, peer: &str, roster: &Roster, grace: Duration) -> Result<bool, StoreError> {
        let reply = self.park_as(peer, &self.node, roster, grace, false).await?;
        Ok(matches!(reply, Value::Integer(1)))
    }

    async fn keep(
        &self,
        peer: &str,
        kept: &Kept,
        unreachable: &str,
    ) -> Result<Keeping, StoreError> {
        let args = vec![
            kept.encode(),
            kept.size().to_string(),
            unreachable.to_owned(),
            MAX_KEPT_EVENTS.to_string(),
            MAX_KEPT_BYTES.to_string(),
        ];
        let reply = self.run(&self.keep, peer, args).await?;
        let mut parts = match reply {
            Value::Array(parts) => parts.into_iter().filter_map(Value::into_string),
            _ => return Ok(Keeping::Gone),
        };
        Ok(match parts.next().as_deref() {
            Some("kept") => Keeping::Kept,
            Some("overflow") => Keeping::Overflow,
            Some("live") => Keeping::LiveOn(parts.next().unwrap_or_default()),
            _ => Keeping::Gone,
        })
    }

    async fn end(&self, peer: &str) -> Result<Option<Roster>, StoreError> {
        let args = vec!["mine".to_owned(), self.node.clone(), now_ms().to_string()];
        let ended = self.run(&self.end, peer, args).await?;
        let _: Result<i64, _> = self.link.commands().zrem(PARKED, peer).await;
        Ok(ended.into_string().map(|json| roster_from_json(&json)))
    }

    async fn forward(&self, node: &str, peer: &str, kept: &Kept) -> Result<bool, StoreError> {
        RedisSessionDirectory::forward(self, node, peer, kept).await
    }

    fn node(&self) -> &str {
        &self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_session_share_a_hash_tag() {
        assert_eq!(session_key("abc"), "sb:session:{abc}");
        assert_eq!(kept_key("abc"), "sb:session:{abc}:kept");
    }
}
