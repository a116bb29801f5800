//! Relays that wait on Redis, handled beside the session instead of inside it.
//!
//! A relay to a socket on another node is published (after a lookup in Redis when this
//! node's view of the room does not know the target). When Redis hangs, that command waits
//! for the command timeout (2 s); handled inside
//! the session's ordered loop, it would hold up every later event of the socket, relays to
//! sockets on this node included, which need no Redis at all. So the session hands such
//! relays to this queue, one per socket, started on the first one: it runs them in order,
//! each answering its own ack, while the session goes on.
//!
//! Order per pair (sender, target) holds: relays to one target go either all through this
//! queue or all straight through the session, except when a target becomes a local roommate
//! while relays to it still wait here; the session then queues behind them too
//! ([`RemoteRelays::waiting_for`]). Each queued relay carries the rooms the socket was in
//! when it was sent, so a later `leave-room` does not refuse it after the fact.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use quanta::Instant;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use switchboard_protocol::{Ack, Envelope, RoomId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Signaling;
use super::relay::relay;
use super::session::{Reply, refuse};
use crate::metrics::{self, Relayed};

/// Relays one socket may have waiting on Redis; beyond that the session waits too.
const QUEUE: usize = 1024;

/// One relay waiting on Redis.
struct Queued<A: Adapter> {
    envelope: Envelope,
    rooms: BTreeSet<RoomId>,
    received: Instant,
    ack: AckSender<A>,
}

/// The queue of one socket's relays that wait on Redis. Dropping it stops the relays still
/// waiting (the socket is gone; their acks could not be delivered).
pub(super) struct RemoteRelays<A: Adapter> {
    queue: mpsc::Sender<Queued<A>>,
    /// Target → relays to it queued and not answered yet.
    waiting: Arc<Mutex<HashMap<String, usize>>>,
    task: JoinHandle<()>,
}

impl<A: Adapter> RemoteRelays<A> {
    /// Starts the queue of the socket whose relays carry `source` (its peer id).
    pub(super) fn start(socket: SocketRef<A>, source: String, signaling: Arc<Signaling>) -> Self {
        let (queue, mut queued) = mpsc::channel::<Queued<A>>(QUEUE);
        let waiting: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let answered = waiting.clone();
        let task = tokio::spawn(async move {
            while let Some(Queued {
                envelope,
                rooms,
                received,
                ack,
            }) = queued.recv().await
            {
                let target = envelope.target.clone();
                let outcome = relay(&socket, &source, &signaling, &rooms, envelope).await;
                done(&answered, &target);
                match outcome {
                    Ok(Reply::Done) => {
                        metrics::relayed(Relayed::Message, received);
                        let _ = ack.send(&Ack::done());
                    }
                    Ok(Reply::Joined { .. }) => {}
                    Err(error) => refuse(&socket, "#rtcio:message", &error, ack),
                }
            }
        });
        Self {
            queue,
            waiting,
            task,
        }
    }

    /// Whether relays to `target` are still waiting here.
    pub(super) fn waiting_for(&self, target: &str) -> bool {
        lock(&self.waiting).contains_key(target)
    }

    /// Queues a relay; waits only if the socket already has [`QUEUE`] relays waiting.
    pub(super) async fn push(
        &self,
        envelope: Envelope,
        rooms: BTreeSet<RoomId>,
        received: Instant,
        ack: AckSender<A>,
    ) {
        *lock(&self.waiting)
            .entry(envelope.target.clone())
            .or_default() += 1;
        let queued = Queued {
            envelope,
            rooms,
            received,
            ack,
        };
        // Fails only once the task ended, which happens when this is dropped.
        let _ = self.queue.send(queued).await;
    }
}

impl<A: Adapter> Drop for RemoteRelays<A> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(
    waiting: &Mutex<HashMap<String, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    // Each critical section is one map update.
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts one relay to `target` as answered.
fn done(waiting: &Mutex<HashMap<String, usize>>, target: &str) {
    let mut waiting = lock(waiting);
    if let Some(count) = waiting.get_mut(target) {
        *count -= 1;
        if *count == 0 {
            waiting.remove(target);
        }
    }
}
