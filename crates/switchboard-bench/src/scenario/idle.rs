//! `idle`: open N sockets, hold them, and measure what each costs the server.
//!
//! Each socket lives in its own small task that only answers pings, until the hold ends.
//! The server's RSS is sampled before the first connect and after every socket has been
//! connected and the server had `settle` to finish its work; the growth divided by the
//! sockets held is the memory per idle socket.
//!
//! Memory per socket is also read along the way, each time another tenth of the sockets has
//! connected (growth so far divided by sockets connected so far), and reported as the curve
//! `rss per socket` (ending with the figure after the hold): how the cost per socket changes
//! with the socket count, which the charts in `docs/benchmarks.md` show.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::Target;
use crate::client::Conn;
use crate::procstat::Snapshot;
use crate::report::{BENCH_LABEL, Report};
use crate::target::Sources;

#[derive(Debug, Clone)]
pub struct IdleOptions {
    pub sockets: usize,
    /// How long all sockets are held once connected (the RSS is read at its end).
    pub hold: Duration,
    /// Longest time the connect phase may take.
    pub connect_deadline: Duration,
}

pub async fn run(target: &Target, options: &IdleOptions) -> Report {
    let mut report = Report::new(
        "idle",
        &target.label,
        target.url_texts(),
        json!({
            "sockets": options.sockets,
            "hold_s": options.hold.as_secs_f64(),
            "concurrency": target.concurrency,
        }),
    );
    let before = Snapshot::take(&target.watched);
    let connected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let (stop, stopped) = watch::channel(false);
    let sources = Sources::for_connections(options.sockets, target.sources);
    let permits = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let bar = target.progress(options.sockets as u64, "connect");
    let started = Instant::now();
    let mut holders = JoinSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1024);
    for index in 0..options.sockets {
        let node = target.node_for(index).clone();
        let source = sources.for_index(index);
        let (permits, connected, failed, dropped) = (
            permits.clone(),
            connected.clone(),
            failed.clone(),
            dropped.clone(),
        );
        let (first_error, bar, mut stopped, done) = (
            first_error.clone(),
            bar.clone(),
            stopped.clone(),
            done_tx.clone(),
        );
        holders.spawn(async move {
            let permit = permits.acquire_owned().await;
            let conn = Conn::connect(&node, source).await;
            drop(permit);
            bar.inc(1);
            let _ = done.send(()).await;
            drop(done);
            let mut conn = match conn {
                Ok(conn) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                    conn
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = first_error.lock() {
                        first.get_or_insert_with(|| e.to_string());
                    }
                    return;
                }
            };
            loop {
                tokio::select! {
                    received = conn.recv() => if received.is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    },
                    _ = stopped.changed() => return,
                }
            }
        });
    }
    drop(done_tx);
    // Wait until every socket has either connected or failed, within the deadline.
    let deadline = tokio::time::sleep(options.connect_deadline);
    tokio::pin!(deadline);
    let mut finished = 0;
    let mut rss_curve = Vec::new();
    let checkpoint = options.sockets.div_ceil(10).max(1);
    while finished < options.sockets {
        tokio::select! {
            got = done_rx.recv() => match got {
                Some(()) => {
                    finished += 1;
                    if finished % checkpoint == 0 && finished < options.sockets {
                        let now = connected.load(Ordering::Relaxed);
                        let growth = server_growth(&before, &Snapshot::take(&target.watched));
                        if now > 0 {
                            rss_curve.push((now as f64, growth as f64 / now as f64 / 1000.0));
                        }
                    }
                }
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let connect_time = started.elapsed();
    bar.finish_and_clear();
    tokio::time::sleep(options.hold).await;
    let after = Snapshot::take(&target.watched);
    let _ = stop.send(true);
    let held = connected
        .load(Ordering::Relaxed)
        .saturating_sub(dropped.load(Ordering::Relaxed));

    report.figure(
        "connect rate",
        connected.load(Ordering::Relaxed) as f64 / connect_time.as_secs_f64(),
        "conn/s",
    );
    let deltas = after.since(&before);
    let total_growth = server_growth(&before, &after);
    if held > 0 && !deltas.is_empty() {
        let per_socket = total_growth as f64 / held as f64 / 1000.0;
        report.figure("rss per socket", per_socket, "KB");
        rss_curve.push((held as f64, per_socket));
        report.curve("rss per socket", "sockets", "KB", rss_curve);
    }
    for (label, rss_growth, cpu) in deltas {
        report.figure(
            &format!("{label} rss growth"),
            rss_growth as f64 / 1e6,
            "MB",
        );
        report.figure(&format!("{label} cpu"), cpu, "s");
        if let Some((_, s)) = after.samples.iter().find(|(l, _)| *l == label) {
            report.figure(&format!("{label} rss"), s.rss_bytes as f64 / 1e6, "MB");
        }
    }
    report.count("sockets held", held);
    report.failure_count(
        "connect failures",
        failed.load(Ordering::Relaxed) + (options.sockets as u64 - finished as u64),
    );
    report.failure_count("dropped while idle", dropped.load(Ordering::Relaxed));
    if let Ok(first) = first_error.lock()
        && let Some(e) = first.as_ref()
    {
        report.note(format!("first connect failure: {e}"));
    }
    // Let the holders end (they return on the stop signal), bounded in time.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while holders.join_next().await.is_some() {}
    })
    .await;
    holders.abort_all();
    report
}

/// RSS growth of every watched server process (all but the bench) between two snapshots.
fn server_growth(before: &Snapshot, after: &Snapshot) -> i64 {
    after
        .since(before)
        .iter()
        .filter(|(label, _, _)| label != BENCH_LABEL)
        .map(|(_, growth, _)| growth)
        .sum()
}
