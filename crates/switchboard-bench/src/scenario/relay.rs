//! `relay`: R rooms of two peers relaying envelopes to each other for D seconds.
//!
//! Peer A of room r connects to node `r % n`, peer B to node `(r + 1) % n`, so with two node
//! URLs or more every pair is across nodes and every envelope crosses the cluster (the report
//! records it: [`crate::target::Topology`]). Both join the room (acked), then all pairs start
//! together (see [`super::pair`] for the window and pacing). Server CPU is measured from the
//! start of sending to the end of the drain, and divided by the envelopes delivered; with
//! several nodes, so are the cluster counters of every node (see [`crate::scrape`]).

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pair::{self, PairOutcome, PairPlan};
use super::{Target, call, connect_all, split_failures};
use crate::client::Conn;
use crate::procstat::Snapshot;
use crate::report::{Report, latency_histogram};
use crate::wire;

#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub rooms: usize,
    pub duration: Duration,
    pub window: u64,
    /// Size of each envelope's `data`, in bytes.
    pub payload_bytes: usize,
    /// Total envelopes per second over all pairs; 0 for full speed.
    pub rate: u64,
    /// How long envelopes in flight may take to arrive after sending stops.
    pub drain: Duration,
}

/// Longest a `join-room` ack may take.
const JOIN_WAIT: Duration = Duration::from_secs(15);

/// Padding that makes the data `{"seq":…,"t":…,"pad":"…"}` about `bytes` long.
pub fn pad(bytes: usize) -> String {
    "x".repeat(bytes.saturating_sub(40))
}

/// Joins both sockets of a pair to `room`; returns why not.
pub async fn join_pair(a: &mut Conn, b: &mut Conn, room: &str) -> Result<(), String> {
    for (conn, name) in [(a, "a"), (b, "b")] {
        let (args, _) = call(
            conn,
            "join-room",
            &wire::join_payload(room, name),
            1,
            JOIN_WAIT,
        )
        .await
        .map_err(|e| e.to_string())?;
        if wire::join_ack_peers(&args).is_none() {
            return Err(format!("join refused: {args}"));
        }
    }
    Ok(())
}

pub async fn run(target: &Target, options: &RelayOptions) -> Report {
    let mut report = Report::new(
        "relay",
        &target.label,
        target.url_texts(),
        json!({
            "rooms": options.rooms,
            "duration_s": options.duration.as_secs_f64(),
            "window": options.window,
            "payload_bytes": options.payload_bytes,
            "rate": options.rate,
        }),
    );
    report.set_topology(target.topology(options.rooms, 2));
    let results = connect_all(
        target,
        options.rooms * 2,
        |i| target.node_of_member(i / 2, i % 2).clone(),
        "connect",
    )
    .await;
    let (mut conns, failed, first) = split_failures(results);
    report.failure_count("connect failures", failed);
    if let Some(e) = first {
        report.note(format!("first connect failure: {e}"));
    }
    let run_id = crate::clock::now_micros();
    let mut joins = JoinSet::new();
    let mut unpaired = 0;
    for room in 0..options.rooms {
        let (Some(mut a), Some(mut b)) = (conns[2 * room].take(), conns[2 * room + 1].take())
        else {
            unpaired += 1;
            continue;
        };
        joins.spawn(async move {
            let name = format!("relay-{run_id}-{room}");
            join_pair(&mut a, &mut b, &name).await.map(|()| (a, b))
        });
    }
    let mut pairs = Vec::new();
    let mut join_failures = 0;
    while let Some(joined) = joins.join_next().await {
        match joined {
            Ok(Ok(pair)) => pairs.push(pair),
            Ok(Err(e)) => {
                join_failures += 1;
                if join_failures == 1 {
                    report.note(format!("first join failure: {e}"));
                }
            }
            Err(_) => join_failures += 1,
        }
    }
    report.failure_count("join failures", join_failures + unpaired);

    let per_direction = if options.rate > 0 && !pairs.is_empty() {
        let per_pair_direction = options.rate as f64 / (2 * pairs.len()) as f64;
        Some(Duration::from_secs_f64(1.0 / per_pair_direction.max(1e-3)))
    } else {
        None
    };
    let start = Instant::now() + Duration::from_millis(200);
    let plan = PairPlan {
        start,
        send_until: start + options.duration,
        drain_until: start + options.duration + options.drain,
        window: options.window.max(1),
        period: per_direction,
        pad: pad(options.payload_bytes),
    };
    let bar = target.progress(options.duration.as_secs(), "relay");
    let counters_before = target.cluster_counters().await;
    let before = Snapshot::take(&target.watched);
    let mut tasks = JoinSet::new();
    for (a, b) in pairs {
        tasks.spawn(pair::run(a, b, plan.clone()));
    }
    let ticker = super::tick_each_second(&bar);
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(outcome) = done {
            outcomes.push(outcome);
        }
    }
    let after = Snapshot::take(&target.watched);
    let counters_after = target.cluster_counters().await;
    ticker.abort();
    bar.finish_and_clear();
    summarize(&mut report, &outcomes, options.duration, &before, &after);
    if let (Some(before), Some(after)) = (counters_before, counters_after) {
        let delivered = outcomes.iter().map(|o| o.received).sum();
        report.cluster_messages(&before, &after, delivered);
    }
    for outcome in outcomes {
        for conn in outcome.conns {
            drop(conn);
        }
    }
    report
}

/// Adds the figures and counts of finished pairs to `report`.
pub fn summarize(
    report: &mut Report,
    outcomes: &[PairOutcome],
    duration: Duration,
    before: &Snapshot,
    after: &Snapshot,
) {
    let mut latency = latency_histogram();
    let (mut sent, mut received, mut lost, mut wrong, mut order, mut refused, mut gone, mut stalls) =
        (0, 0, 0, 0, 0, 0, 0, 0);
    for o in outcomes {
        let _ = latency.add(&o.latency);
        sent += o.sent;
        received += o.received;
        lost += o.lost;
        wrong += o.wrong_source;
        order += o.out_of_order;
        refused += o.refused;
        gone += o.disconnected;
        stalls += o.stalls;
        if let Some(p) = &o.first_problem
            && report.notes.len() < 5
        {
            report.note(p.clone());
        }
    }
    report.figure(
        "delivered",
        received as f64 / duration.as_secs_f64(),
        "msg/s",
    );
    report.latency("latency", &latency);
    report.server_usage(before, after, Some((received, "msgs")));
    report.count("sent", sent);
    report.count("received", received);
    report.count("window stalls", stalls);
    report.failure_count("lost", lost);
    report.failure_count("wrong source", wrong);
    report.failure_count("out of order", order);
    report.failure_count("refused", refused);
    report.failure_count("disconnected", gone);
}
