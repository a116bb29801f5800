//! `churn`: peers keep joining and leaving rooms while the rooms' steady members relay.
//!
//! Each of R rooms holds two steady peers relaying paced envelopes to each other (the
//! [`super::pair`] task). C churners each loop: join a random room, stay a moment, then leave
//! it, every other time by `leave-room` and otherwise by dropping the connection and
//! reconnecting as a new socket. Churn runs for D seconds at `ops` joins per second in total;
//! each churner ends where its last step left it (in a room or not).
//!
//! At the end: no relay between steady peers may be lost, each steady peer's view of its room
//! (from `user-connected` / `user-disconnected`) must match who is really there, and a fresh
//! probe socket joining each room must get exactly those members in its join ack.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pair::{self, PairPlan};
use super::relay::{join_pair, pad, summarize};
use super::{Dice, Target, call, connect_all, split_failures};
use crate::client::Conn;
use crate::procstat::Snapshot;
use crate::report::Report;
use crate::target::{NodeUrl, Sources};
use crate::wire;

#[derive(Debug, Clone)]
pub struct ChurnOptions {
    pub rooms: usize,
    pub churners: usize,
    /// Churn steps (joins) per second over all churners.
    pub ops: f64,
    /// Envelopes per second over all steady pairs.
    pub rate: u64,
    pub duration: Duration,
    pub payload_bytes: usize,
}

const ACK_WAIT: Duration = Duration::from_secs(15);
/// Time for departures and arrivals to reach everyone after churn stops.
const SETTLE: Duration = Duration::from_secs(2);

/// Where a churner ended.
struct ChurnerEnd {
    conn: Option<Conn>,
    room: Option<usize>,
    steps: u64,
    failures: u64,
    first_failure: Option<String>,
}

fn room_name(run_id: u64, room: usize) -> String {
    format!("churn-{run_id}-{room}")
}

#[allow(clippy::too_many_arguments)]
async fn churner(
    mut conn: Conn,
    node: NodeUrl,
    source: Option<std::net::IpAddr>,
    rooms: usize,
    run_id: u64,
    period: Duration,
    until: Instant,
    mut dice: Dice,
) -> ChurnerEnd {
    let mut end = ChurnerEnd {
        conn: None,
        room: None,
        steps: 0,
        failures: 0,
        first_failure: None,
    };
    let fail = |end: &mut ChurnerEnd, e: String| {
        end.failures += 1;
        end.first_failure.get_or_insert(e);
    };
    // Spread the churners' first steps over one period.
    tokio::time::sleep(Duration::from_micros(
        dice.below(period.as_micros() as u64 + 1),
    ))
    .await;
    let mut next = Instant::now();
    let mut id = 1;
    while Instant::now() < until && end.steps < 1_000_000 {
        next += period;
        let room = dice.below(rooms as u64) as usize;
        id += 1;
        let joined = call(
            &mut conn,
            "join-room",
            &wire::join_payload(&room_name(run_id, room), "churner"),
            id,
            ACK_WAIT,
        )
        .await;
        match joined {
            Ok((args, _)) if wire::join_ack_peers(&args).is_some() => end.room = Some(room),
            Ok((args, _)) => fail(&mut end, format!("join refused: {args}")),
            Err(e) => {
                fail(&mut end, format!("join: {e}"));
                return end;
            }
        }
        end.steps += 1;
        // Stay for half a period, then leave (unless churn is over: then stay put).
        tokio::time::sleep(period / 2).await;
        if Instant::now() >= until {
            break;
        }
        if end.steps % 2 == 1 {
            id += 1;
            let left = call(
                &mut conn,
                "leave-room",
                &wire::leave_payload(&room_name(run_id, room)),
                id,
                ACK_WAIT,
            )
            .await;
            match left {
                Ok(_) => end.room = None,
                Err(e) => {
                    fail(&mut end, format!("leave: {e}"));
                    return end;
                }
            }
        } else {
            conn.close().await;
            end.room = None;
            conn = match Conn::connect(&node, source).await {
                Ok(c) => c,
                Err(e) => {
                    fail(&mut end, format!("reconnect: {e}"));
                    return end;
                }
            };
        }
        tokio::time::sleep_until(next.max(Instant::now())).await;
    }
    end.conn = Some(conn);
    end
}

pub async fn run(target: &Target, options: &ChurnOptions) -> Report {
    let mut report = Report::new(
        "churn",
        &target.label,
        target.url_texts(),
        json!({
            "rooms": options.rooms,
            "churners": options.churners,
            "ops": options.ops,
            "rate": options.rate,
            "duration_s": options.duration.as_secs_f64(),
        }),
    );
    let n = target.urls.len();
    let steady = options.rooms * 2;
    let total = steady + options.churners;
    let node_of = |i: usize| {
        if i < steady {
            target.urls[(i / 2 + i % 2) % n].clone()
        } else {
            target.urls[i % n].clone()
        }
    };
    let results = connect_all(target, total, node_of, "connect").await;
    let (mut conns, failed, first) = split_failures(results);
    report.failure_count("connect failures", failed);
    if let Some(e) = first {
        report.note(format!("first connect failure: {e}"));
    }
    let run_id = crate::clock::now_micros();
    let mut pairs = Vec::new();
    let mut join_failures = 0;
    for room in 0..options.rooms {
        let (Some(mut a), Some(mut b)) = (conns[2 * room].take(), conns[2 * room + 1].take())
        else {
            join_failures += 1;
            continue;
        };
        match join_pair(&mut a, &mut b, &room_name(run_id, room)).await {
            Ok(()) => pairs.push((room, a, b)),
            Err(e) => {
                join_failures += 1;
                report.note(format!("steady join failed: {e}"));
            }
        }
    }
    report.failure_count("steady join failures", join_failures);

    let start = Instant::now() + Duration::from_millis(200);
    let churn_until = start + options.duration;
    let plan = PairPlan {
        start,
        send_until: churn_until + SETTLE,
        drain_until: churn_until + SETTLE * 2,
        window: 64,
        period: (options.rate > 0 && !pairs.is_empty())
            .then(|| Duration::from_secs_f64((2 * pairs.len()) as f64 / options.rate as f64)),
        pad: pad(options.payload_bytes),
    };
    let before = Snapshot::take(&target.watched);
    let mut pair_tasks = JoinSet::new();
    for (room, a, b) in pairs {
        let plan = plan.clone();
        pair_tasks.spawn(async move { (room, pair::run(a, b, plan).await) });
    }
    let sources = Sources::for_connections(total, target.sources);
    let period = Duration::from_secs_f64(options.churners as f64 / options.ops.max(0.001));
    let mut churn_tasks = JoinSet::new();
    for (k, i) in (steady..total).enumerate() {
        let Some(conn) = conns[i].take() else {
            continue;
        };
        let dice = Dice::new(0x9e37_79b9 ^ ((k as u64 + 1) * 0x1000_0001));
        churn_tasks.spawn(churner(
            conn,
            node_of(i),
            sources.for_index(i),
            options.rooms.max(1),
            run_id,
            period,
            churn_until,
            dice,
        ));
    }
    let bar = target.progress(options.duration.as_secs() + 4, "churn");
    let ticker = super::tick_each_second(&bar);
    let mut ends = Vec::new();
    while let Some(done) = churn_tasks.join_next().await {
        if let Ok(end) = done {
            ends.push(end);
        }
    }
    let mut outcomes = Vec::new();
    while let Some(done) = pair_tasks.join_next().await {
        if let Ok(outcome) = done {
            outcomes.push(outcome);
        }
    }
    let after = Snapshot::take(&target.watched);
    ticker.abort();
    bar.finish_and_clear();

    // Who is really in each room now.
    let mut truth: HashMap<usize, BTreeSet<String>> = HashMap::new();
    for (room, outcome) in &outcomes {
        let members = truth.entry(*room).or_default();
        for (sid, _) in &outcome.views {
            members.insert(sid.clone());
        }
    }
    for end in &ends {
        if let (Some(room), Some(conn)) = (end.room, &end.conn) {
            truth.entry(room).or_default().insert(conn.sid.clone());
        }
    }
    let mut view_mismatches = 0;
    for (room, outcome) in &outcomes {
        let Some(members) = truth.get(room) else {
            continue;
        };
        for (sid, view) in &outcome.views {
            let mut expected = members.clone();
            expected.remove(sid);
            if *view != expected {
                view_mismatches += 1;
                if report.notes.len() < 5 {
                    report.note(format!(
                        "room {room}: {sid} sees {} members, {} are there",
                        view.len(),
                        expected.len()
                    ));
                }
            }
        }
    }
    // A fresh socket joining each room must be told exactly who is there.
    let mut probe_mismatches = 0;
    let probe_source = Sources::for_connections(total + 1, target.sources).for_index(total);
    for (room, members) in &truth {
        let node = target.urls[room % n].clone();
        let outcome = async {
            let mut probe = Conn::connect(&node, probe_source).await.ok()?;
            let (args, _) = call(
                &mut probe,
                "join-room",
                &wire::join_payload(&room_name(run_id, *room), "probe"),
                1,
                ACK_WAIT,
            )
            .await
            .ok()?;
            probe.close().await;
            wire::join_ack_peers(&args)
        }
        .await;
        match outcome {
            Some(peers) if peers.iter().cloned().collect::<BTreeSet<_>>() == *members => {}
            other => {
                probe_mismatches += 1;
                if report.notes.len() < 8 {
                    report.note(format!(
                        "room {room}: probe was told {:?} members, {} are there",
                        other.map(|p| p.len()),
                        members.len()
                    ));
                }
            }
        }
    }

    let outcomes: Vec<_> = outcomes.into_iter().map(|(_, o)| o).collect();
    summarize(&mut report, &outcomes, options.duration, &before, &after);
    report.count("churn steps", ends.iter().map(|e| e.steps).sum());
    report.failure_count("churn failures", ends.iter().map(|e| e.failures).sum());
    if let Some(e) = ends.iter().find_map(|e| e.first_failure.clone()) {
        report.note(format!("first churn failure: {e}"));
    }
    report.failure_count("presence view mismatches", view_mismatches);
    report.failure_count("probe join mismatches", probe_mismatches);
    report
}
