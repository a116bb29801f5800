//! The outcome of one scenario run: figures for people (a table) and for scripts (JSON).
//!
//! A report keeps two kinds of numbers apart. *Figures* are measurements (rates, latencies,
//! memory, CPU) that vary from run to run. *Counts* are exact tallies of what was expected
//! and what happened (sent, received, lost, wrong source, unexpected); any loss or
//! misdelivery makes the run fail, whatever the figures say.
//!
//! For charts (see [`crate::plot`]) a report also keeps the shape behind some figures:
//! *distributions* (a latency histogram as quantile → value points, so a later step can draw
//! its CDF without the raw samples) and *curves* (a figure measured at several points of a
//! run, such as memory per socket as sockets connect).

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procstat::Snapshot;
use crate::scrape::{self, ClusterCounters};
use crate::target::Topology;

/// Label of the bench's own process among the watched ones.
pub const BENCH_LABEL: &str = "bench";

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// Quantiles at which a distribution is kept: every percent, then finer into the tail (a CDF
/// drawn from them shows both the body and the slow end), and the maximum (1.0).
pub const DISTRIBUTION_QUANTILES: &[f64] = &[
    0.001, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2,
    0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9,
    0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// A distribution of values (a latency), as (quantile, value) points in increasing order.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub name: String,
    pub unit: String,
    pub quantiles: Vec<(f64, f64)>,
}

/// A figure measured at several points of one run: (x, y) in the order measured.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub name: String,
    pub x_unit: String,
    pub y_unit: String,
    pub points: Vec<(f64, f64)>,
}

/// Everything one run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// Name of this scenario with its settings, grouping rounds in summaries.
    pub case: String,
    /// Free-form label of the server under test (`switchboard`, `node`, ...).
    pub label: String,
    pub urls: Vec<String>,
    /// The scenario's settings, as given.
    pub settings: serde_json::Value,
    pub figures: Vec<Figure>,
    /// Exact tallies, in the order they were added.
    pub counts: Vec<(String, u64)>,
    /// Names of counts that must be zero for the run to pass (lost, wrong source, ...).
    pub must_be_zero: Vec<String>,
    /// Problems worth a line each (first few of each kind).
    pub notes: Vec<String>,
    /// Latency distributions behind the percentile figures, for charts.
    pub distributions: Vec<Distribution>,
    /// Figures measured along the run, for charts.
    pub curves: Vec<Curve>,
    /// Where the pairs sat, when the system has several nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
}

impl Report {
    pub fn new(
        scenario: &str,
        label: &str,
        urls: Vec<String>,
        settings: serde_json::Value,
    ) -> Self {
        Report {
            scenario: scenario.to_string(),
            case: scenario.to_string(),
            label: label.to_string(),
            urls,
            settings,
            figures: Vec::new(),
            counts: Vec::new(),
            must_be_zero: Vec::new(),
            notes: Vec::new(),
            distributions: Vec::new(),
            curves: Vec::new(),
            topology: None,
        }
    }

    /// Records where the pairs sat, and says so in a note when some pair was on one node.
    pub fn set_topology(&mut self, topology: Option<Topology>) {
        if let Some(t) = topology
            && !t.every_pair_across()
        {
            self.note(format!(
                "{} of {} pairs across nodes ({} busy of {} nodes)",
                t.pairs_across_nodes, t.pairs, t.busy_nodes, t.nodes
            ));
        }
        self.topology = topology;
    }

    /// Figures from the cluster counters of every node between two scrapes, per message
    /// `delivered` in between: cluster messages received (all nodes together, and the largest
    /// and mean share of one node), published, misrouted, and the share of relays routed to
    /// another node. A counter that some node does not export is left out, with a note.
    pub fn cluster_messages(
        &mut self,
        before: &[ClusterCounters],
        after: &[ClusterCounters],
        delivered: u64,
    ) {
        let deltas: Vec<ClusterCounters> =
            after.iter().zip(before).map(|(a, b)| a.since(b)).collect();
        let every = |get: fn(&ClusterCounters) -> Option<f64>| -> Option<Vec<f64>> {
            let values: Option<Vec<f64>> = deltas.iter().map(get).collect();
            values.filter(|v| !v.is_empty())
        };
        let per = |v: f64| v / delivered.max(1) as f64;
        match every(|c| c.received) {
            Some(received) => {
                let total: f64 = received.iter().sum();
                let max = received.iter().copied().fold(0.0, f64::max);
                self.figure("cluster received per relay", per(total), "msgs");
                self.figure("cluster received per relay, max node", per(max), "msgs");
                self.figure(
                    "cluster received per relay, mean node",
                    per(total / received.len() as f64),
                    "msgs",
                );
                for (node, value) in received.iter().enumerate() {
                    self.count(&format!("cluster received, node {node}"), *value as u64);
                }
            }
            None => self.note(format!(
                "cluster counters n/a: not every node exports {}",
                scrape::RECEIVED
            )),
        }
        if let Some(published) = every(|c| c.published) {
            self.figure(
                "cluster published per relay",
                per(published.iter().sum()),
                "msgs",
            );
        }
        if let Some(misrouted) = every(|c| c.misrouted) {
            self.count("cluster misrouted", misrouted.iter().sum::<f64>() as u64);
        }
        if let (Some(local), Some(remote)) = (every(|c| c.routed_local), every(|c| c.routed_remote))
        {
            let (local, remote): (f64, f64) = (local.iter().sum(), remote.iter().sum());
            if local + remote > 0.0 {
                self.figure(
                    "relays routed remote",
                    100.0 * remote / (local + remote),
                    "%",
                );
            }
        }
    }

    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.figures.push(Figure {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        });
    }

    /// A tally that is information only.
    pub fn count(&mut self, name: &str, value: u64) {
        self.counts.push((name.to_string(), value));
    }

    /// A tally that fails the run when it is not zero.
    pub fn failure_count(&mut self, name: &str, value: u64) {
        self.count(name, value);
        self.must_be_zero.push(name.to_string());
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn curve(&mut self, name: &str, x_unit: &str, y_unit: &str, points: Vec<(f64, f64)>) {
        self.curves.push(Curve {
            name: name.to_string(),
            x_unit: x_unit.to_string(),
            y_unit: y_unit.to_string(),
            points,
        });
    }

    /// p50/p90/p99/p99.9/max of a microsecond histogram, in milliseconds, and the histogram's
    /// distribution at [`DISTRIBUTION_QUANTILES`] (named `prefix`).
    pub fn latency(&mut self, prefix: &str, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            return;
        }
        for (name, q) in [
            ("p50", 0.50),
            ("p90", 0.90),
            ("p99", 0.99),
            ("p99.9", 0.999),
        ] {
            let micros = histogram.value_at_quantile(q);
            self.figure(&format!("{prefix} {name}"), micros as f64 / 1000.0, "ms");
        }
        self.figure(
            &format!("{prefix} max"),
            histogram.max() as f64 / 1000.0,
            "ms",
        );
        let quantiles = DISTRIBUTION_QUANTILES
            .iter()
            .map(|&q| (q, histogram.value_at_quantile(q) as f64 / 1000.0))
            .collect();
        self.distributions.push(Distribution {
            name: prefix.to_string(),
            unit: "ms".to_string(),
            quantiles,
        });
    }

    /// Figures between two snapshots: CPU-seconds and RSS per process and, when `per` is given
    /// as (count, unit name), CPU milliseconds per 1,000 of them, per process and for all
    /// servers together (every watched process but the bench itself, labelled `bench`).
    pub fn server_usage(&mut self, before: &Snapshot, after: &Snapshot, per: Option<(u64, &str)>) {
        let deltas = after.since(before);
        let mut server_cpu = 0.0;
        for (label, rss_growth, cpu) in &deltas {
            if label != BENCH_LABEL {
                server_cpu += cpu;
            }
            self.figure(&format!("{label} cpu"), *cpu, "s");
            self.figure(
                &format!("{label} rss growth"),
                *rss_growth as f64 / 1e6,
                "MB",
            );
            if let Some((_, rss)) = after.samples.iter().find(|(l, _)| l == label) {
                self.figure(&format!("{label} rss"), rss.rss_bytes as f64 / 1e6, "MB");
            }
        }
        if let Some((n, unit)) = per.filter(|(n, _)| *n > 0) {
            for (label, _, cpu) in &deltas {
                self.figure(
                    &format!("{label} cpu per 1k {unit}"),
                    cpu * 1e6 / n as f64,
                    "ms",
                );
            }
            self.figure(
                &format!("server cpu per 1k {unit}"),
                server_cpu * 1e6 / n as f64,
                "ms",
            );
        }
    }

    /// The tally called `name`, if the run made one.
    pub fn count_of(&self, name: &str) -> Option<u64> {
        self.counts.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Whether every must-be-zero tally is zero.
    pub fn passed(&self) -> bool {
        self.counts
            .iter()
            .filter(|(name, _)| self.must_be_zero.contains(name))
            .all(|(_, v)| *v == 0)
    }

    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{} against {} ({})",
            self.scenario,
            self.label,
            self.urls.join(", ")
        );
        let width = self
            .figures
            .iter()
            .map(|f| f.name.len())
            .chain(self.counts.iter().map(|(n, _)| n.len()))
            .max()
            .unwrap_or(10);
        for f in &self.figures {
            let _ = writeln!(out, "  {:<width$}  {:>14.3} {}", f.name, f.value, f.unit);
        }
        for (name, value) in &self.counts {
            let flag = if self.must_be_zero.contains(name) && *value > 0 {
                "  <-- FAIL"
            } else {
                ""
            };
            let _ = writeln!(out, "  {name:<width$}  {value:>14}{flag}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let _ = writeln!(
            out,
            "  result: {}",
            if self.passed() {
                "PASS"
            } else {
                "FAIL (something was lost or misdelivered)"
            }
        );
        out
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}

/// A latency histogram in microseconds, 1 µs to 5 minutes, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 300_000_000, 3).expect("constant bounds are valid")
}

/// Records `micros` into `histogram`, clamped to its range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    let _ = histogram.record(micros.clamp(1, 300_000_000));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(received: f64, local: f64, remote: f64) -> ClusterCounters {
        ClusterCounters {
            published: Some(remote),
            received: Some(received),
            misrouted: Some(0.0),
            routed_local: Some(local),
            routed_remote: Some(remote),
        }
    }

    fn figure(report: &Report, name: &str) -> Option<f64> {
        report
            .figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// Received messages per relay: all nodes together, the busiest node and the mean node.
    #[test]
    fn cluster_messages_per_relay() {
        let mut r = Report::new("relay", "switchboard", Vec::new(), serde_json::json!({}));
        let before = [counters(10.0, 0.0, 0.0), counters(0.0, 0.0, 0.0)];
        let after = [counters(110.0, 0.0, 100.0), counters(100.0, 0.0, 100.0)];
        r.cluster_messages(&before, &after, 200);
        assert_eq!(figure(&r, "cluster received per relay"), Some(1.0));
        assert_eq!(
            figure(&r, "cluster received per relay, max node"),
            Some(0.5)
        );
        assert_eq!(
            figure(&r, "cluster received per relay, mean node"),
            Some(0.5)
        );
        assert_eq!(figure(&r, "relays routed remote"), Some(100.0));
        assert_eq!(r.count_of("cluster misrouted"), Some(0));
        assert!(r.passed());
    }

    /// A node without the counters makes them n/a (a note), not a failure.
    #[test]
    fn missing_cluster_counters_are_a_note() {
        let mut r = Report::new("relay", "node", Vec::new(), serde_json::json!({}));
        let none = ClusterCounters::default();
        r.cluster_messages(
            &[none, counters(0.0, 0.0, 0.0)],
            &[none, counters(5.0, 0.0, 5.0)],
            5,
        );
        assert_eq!(figure(&r, "cluster received per relay"), None);
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("cluster counters n/a"))
        );
        assert!(r.passed());
    }
}
