//! Admission of client events, in the order they arrive.
//!
//! socketioxide calls [`Inbox::call`] synchronously from the socket's receive path, once per
//! event packet, in arrival order. Here is decided, without awaiting anything, whether an
//! event may enter the socket's queue: it must be text (no binary attachments), within
//! `--max-payload`, within the socket's rate budget, and the queue must have room. Everything
//! else (parsing, validation, state) happens in [`super::Session`], in the same order.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use quanta::Instant;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{FromMessageParts, MessageHandler, Value};
use socketioxide::socket::Socket;
use switchboard_protocol::inbound::peek_event_name;
use switchboard_protocol::{ErrorCode, ProtocolError};
use tokio::sync::{mpsc, oneshot};

use super::Limits;
use super::session::refuse;
use crate::metrics::{self, DisconnectCause};

/// Events a socket may have waiting when rate limiting is off. With a rate limit the queue
/// holds two bursts (a burst is at least one second of rate), so the limiter, not the queue,
/// decides what a client may send; either way the queue bounds the memory one client pins.
pub const UNLIMITED_QUEUE_CAPACITY: usize = 4096;

/// What a session works through, in order.
///
/// The packet is boxed to keep this enum small (32 bytes instead of ~90): tokio allocates
/// every queue's first block of 32 slots up front, so the slot size is what an idle socket
/// pays for its queue (1 KB instead of 2.9 KB).
pub enum Inbound<A: Adapter> {
    /// An admitted event: the packet's JSON text (`["name", payload]`, known to be text
    /// without binary attachments) and its ack.
    Event {
        received: Box<Received>,
        ack: AckSender<A>,
    },
    /// The connection ended, and why; the sender is told when departures have been
    /// announced (or the session parked).
    Disconnect(DisconnectCause, oneshot::Sender<()>),
}

/// An admitted packet and when it arrived, the start of the relay latency metric. The time
/// rides in the packet's box, which is allocated anyway, so queue slots stay small; it is
/// `quanta`'s clock, the cheapest there is (see `metrics`).
pub struct Received {
    pub packet: Value,
    pub at: Instant,
}

/// The socket's message handler for every event name.
pub struct Inbox<A: Adapter> {
    queue: mpsc::Sender<Inbound<A>>,
    limiter: Option<DefaultDirectRateLimiter>,
    max_payload: usize,
}

/// Marker for socketioxide's `MessageHandler` type parameter.
pub struct Admission;

impl<A: Adapter> Inbox<A> {
    pub fn new(limits: &Limits) -> (Self, mpsc::Receiver<Inbound<A>>) {
        let quota = limits.rate.and_then(|(per_second, burst)| {
            let per_second = NonZeroU32::new(per_second)?;
            let burst = NonZeroU32::new(burst).map_or(per_second, |b| b.max(per_second));
            Some(Quota::per_second(per_second).allow_burst(burst))
        });
        let capacity = quota.map_or(UNLIMITED_QUEUE_CAPACITY, |q| {
            2 * q.burst_size().get() as usize
        });
        let (queue, rx) = mpsc::channel(capacity);
        let limiter = quota.map(RateLimiter::direct);
        let inbox = Self {
            queue,
            limiter,
            max_payload: limits.max_payload,
        };
        (inbox, rx)
    }

    pub fn sender(&self) -> mpsc::Sender<Inbound<A>> {
        self.queue.clone()
    }

    /// Admits one event into the queue, or refuses it at once.
    fn admit(&self, socket: SocketRef<A>, packet: Value, ack: AckSender<A>) {
        let text = match &packet {
            Value::Str(text, None) => text.as_str(),
            binary => {
                let name = binary.as_str().map_or("", |text| peek_event_name(text));
                let error = ProtocolError::invalid("binary attachments are not supported");
                return refuse(&socket, name, &error, ack);
            }
        };
        let refusal = if text.len() > self.max_payload {
            Some(ProtocolError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "event is {} bytes; the limit is {} bytes",
                    text.len(),
                    self.max_payload
                ),
            ))
        } else if self.limiter.as_ref().is_some_and(|l| l.check().is_err()) {
            Some(ProtocolError::new(
                ErrorCode::RateLimited,
                "too many events; slow down",
            ))
        } else {
            None
        };
        if let Some(error) = refusal {
            return refuse(&socket, peek_event_name(text), &error, ack);
        }
        let received = Box::new(Received {
            packet,
            at: Instant::now(),
        });
        if let Err(mpsc::error::TrySendError::Full(Inbound::Event { received, ack })) =
            self.queue.try_send(Inbound::Event { received, ack })
        {
            let error =
                ProtocolError::new(ErrorCode::RateLimited, "too many events waiting; slow down");
            let name = received
                .packet
                .as_str()
                .map_or("", |text| peek_event_name(text));
            refuse(&socket, name, &error, ack);
        }
    }
}

impl<A: Adapter> MessageHandler<A, Admission> for Inbox<A> {
    fn call(&self, socket: Arc<Socket<A>>, mut value: Value, ack_id: Option<i64>) {
        let Ok(ack) = AckSender::from_message_parts(&socket, &mut value, &ack_id);
        self.admit(SocketRef::from(socket), value, ack);
    }
}

/// Queues the end of the connection behind the events already admitted, and waits until the
/// session has announced the departure: socketioxide removes the socket from its rooms only
/// after this returns, so the announcements still reach the whole room.
///
/// Logs `disconnected` and counts it only when the session was still running: a session the
/// node shut down has already done both (see `Session::run`), and a connection says goodbye
/// once.
pub async fn disconnect<A: Adapter>(
    queue: &mpsc::Sender<Inbound<A>>,
    socket: &SocketRef<A>,
    cause: DisconnectCause,
) {
    let (done, announced) = oneshot::channel();
    if queue.send(Inbound::Disconnect(cause, done)).await.is_err() || announced.await.is_err() {
        return;
    }
    metrics::disconnected(cause);
    tracing::info!(socket = %socket.id, reason = cause.name(), "disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_slots_stay_small() {
        // An idle socket's queue costs 32 slots of this size.
        assert!(std::mem::size_of::<Inbound<socketioxide::adapter::LocalAdapter>>() <= 32);
    }
}
