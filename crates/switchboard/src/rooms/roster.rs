//! Whether the cluster's roster in Redis is whole: the gate in front of joins.
//!
//! Redis may lose its data (restarted empty, flushed, failed over to an empty replica). Every
//! node then writes its members back ([`super::RedisRoomStore::resync`]), but not all at the
//! same instant. A join admitted in between takes its snapshot from a roster that lacks the
//! members not yet written back, and nobody would ever introduce those to the newcomer: in a
//! video call, that pair never connects. So a node admits joins only while it knows the roster
//! is whole:
//!
//! - `sb:{epoch}` names the data Redis holds now: an id created by the first node that finds
//!   none (`SET NX GET`). It vanishes with the data, so a node that finds another id (or none)
//!   than the one it wrote its members into knows they are gone.
//! - `sb:{epoch}:synced` lists the nodes that wrote their members back into this data. A node
//!   adds itself with a script that checks the epoch first, so a Redis that restarted during
//!   the write-back never lists it.
//! - The upkeep loop opens the gate once every node it expects is listed: the nodes it saw
//!   alive before the data was lost and every node heartbeating now (a node silent for a
//!   whole TTL is dead and expected no more). Until then joins, rejoins and lookups that find
//!   nobody answer `unavailable`.
//! - A join checks after its script that the epoch is still the one the gate was opened for
//!   (one `GET`); if Redis lost its data meanwhile, the join is undone and refused.
//!
//! Both keys share a hash tag, so the marking script touches one slot of a Redis Cluster.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use fred::clients::{Client, WithOptions};
use fred::interfaces::{KeysInterface, LuaInterface, SetsInterface};
use fred::types::SetOptions;

use super::StoreError;
use super::now_ms;

const EPOCH: &str = "sb:{epoch}";
const SYNCED: &str = "sb:{epoch}:synced";

/// Lists `ARGV[2]` as synced if the epoch is still `ARGV[1]`; returns 1 if so.
const MARK_SYNCED: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"#;

/// Why a join or lookup cannot be answered from the roster now.
pub(super) fn rebuilding() -> StoreError {
    StoreError::Unavailable("the room roster is being rebuilt after Redis lost its data".into())
}

#[derive(Debug, Default)]
struct State {
    /// The epoch this node's members were last written into.
    epoch: Option<String>,
    /// Whether every expected node has written its members into that epoch.
    complete: bool,
}

#[derive(Debug, Default)]
pub(super) struct Roster {
    state: Mutex<State>,
}

impl Roster {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a plain field update.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch joins are admitted in, or `unavailable` while the roster is being rebuilt.
    pub(super) fn admitting(&self) -> Result<String, StoreError> {
        let state = self.state();
        match (&state.epoch, state.complete) {
            (Some(epoch), true) => Ok(epoch.clone()),
            _ => Err(rebuilding()),
        }
    }

    /// The epoch this node's members were last written into, complete or not.
    pub(super) fn epoch(&self) -> Option<String> {
        self.state().epoch.clone()
    }

    /// Whether joins are admitted now.
    pub(super) fn is_complete(&self) -> bool {
        self.state().complete
    }

    /// Closes the gate until the upkeep loop finds the roster whole again.
    pub(super) fn close(&self) {
        self.state().complete = false;
    }

    /// Opens the gate, if `epoch` is still the one this node's members were written into.
    pub(super) fn open(&self, epoch: &str) {
        let mut state = self.state();
        if state.epoch.as_deref() == Some(epoch) {
            state.complete = true;
        }
    }

    /// Reads the current epoch, creating one if Redis has none, before a write-back. Returns
    /// it and whether it differs from the one this node's members were written into last
    /// (then the gate closes: Redis lost its data, or this node just started).
    pub(super) async fn enter(
        &self,
        redis: &WithOptions<Client>,
        node: &str,
    ) -> Result<(String, bool), StoreError> {
        let fresh = new_epoch_id(node);
        let existing: Option<String> = redis
            .set(EPOCH, fresh.as_str(), None, Some(SetOptions::NX), true)
            .await
            .map_err(StoreError::redis)?;
        let epoch = existing.unwrap_or(fresh);
        let mut state = self.state();
        let changed = state.epoch.as_deref() != Some(epoch.as_str());
        if changed {
            state.epoch = Some(epoch.clone());
            state.complete = false;
        }
        Ok((epoch, changed))
    }

    /// Lists this node as synced in `epoch`, after it wrote its members back. Fails with
    /// `unavailable` if Redis lost its data again meanwhile (the write-back must be redone).
    pub(super) async fn mark_synced(
        &self,
        redis: &WithOptions<Client>,
        epoch: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        let marked: i64 = redis
            .eval(
                MARK_SYNCED,
                vec![EPOCH, SYNCED],
                vec![epoch.to_owned(), node.to_owned()],
            )
            .await
            .map_err(StoreError::redis)?;
        if marked == 1 {
            Ok(())
        } else {
            self.close();
            Err(StoreError::Unavailable(
                "Redis lost its data during the write-back".into(),
            ))
        }
    }

    /// The nodes that wrote their members into the current epoch.
    pub(super) async fn synced(
        &self,
        redis: &WithOptions<Client>,
    ) -> Result<BTreeSet<String>, StoreError> {
        redis.smembers(SYNCED).await.map_err(StoreError::redis)
    }

    /// Whether Redis still holds the data of `epoch`; closes the gate if not. Asked after a
    /// write whose meaning depends on the roster being whole (a join's snapshot, a lookup
    /// that found nobody).
    pub(super) async fn still(
        &self,
        redis: &WithOptions<Client>,
        epoch: &str,
    ) -> Result<bool, StoreError> {
        let now: Option<String> = redis.get(EPOCH).await.map_err(StoreError::redis)?;
        let same = now.as_deref() == Some(epoch);
        if !same {
            self.close();
        }
        Ok(same)
    }
}

/// A new epoch id: never equal to an earlier one (node id, clock and a counter).
fn new_epoch_id(node: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{node}:{}:{}",
        now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_only_for_the_epoch_members_were_written_into() {
        let roster = Roster::default();
        assert!(roster.admitting().is_err(), "closed before any write-back");
        roster.state().epoch = Some("e1".into());
        roster.open("e0");
        assert!(roster.admitting().is_err(), "an older epoch opens nothing");
        roster.open("e1");
        assert_eq!(roster.admitting().ok().as_deref(), Some("e1"));
        roster.close();
        assert!(roster.admitting().is_err());
    }

    #[test]
    fn epoch_ids_never_repeat() {
        assert_ne!(new_epoch_id("n"), new_epoch_id("n"));
    }

    #[test]
    fn both_keys_share_a_hash_tag() {
        assert!(EPOCH.contains("{epoch}") && SYNCED.contains("{epoch}"));
    }
}
