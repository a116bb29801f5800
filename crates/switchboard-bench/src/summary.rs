//! Turns the JSON reports of several rounds into the Markdown tables of `docs/benchmarks.md`.
//!
//! Reports are grouped by *case* (a scenario with its settings, e.g. `relay-paced-5k`) and by
//! *label* (the server: `switchboard`, `node`, `ceiling`). For each figure of interest the
//! table shows the median over rounds with the min–max spread, and the ratio
//! switchboard/Node of the medians. Exact tallies that must be zero are summed over rounds, so
//! a single lost message in any round shows.
//!
//! Cases run on several nodes (reports that carry a [`Topology`]) get a section of their own
//! first, set against the budgets of issue #12: per-relay CPU of all nodes and Redis and p99
//! against Node's, per-relay CPU at 4 and 8 nodes against the 2-node figure, cluster messages
//! received per relay, and how many pairs were across nodes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;

use crate::target::Topology;

/// The figures worth a row, in display order (others stay in the JSON files).
const FIGURES: &[&str] = &[
    "rss per socket",
    "connect rate",
    "delivered",
    "server cpu per 1k msgs",
    "bench cpu per 1k msgs",
    "latency p50",
    "latency p90",
    "latency p99",
    "latency p99.9",
    "latency max",
    "all delivered after",
    "join->last message p50",
    "join->last message p99",
    "join ack p50",
    "join ack p99",
];

#[derive(Deserialize)]
struct Figure {
    name: String,
    value: f64,
    unit: String,
}

#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    case: Option<String>,
    scenario: String,
    label: String,
    figures: Vec<Figure>,
    counts: Vec<(String, u64)>,
    must_be_zero: Vec<String>,
    #[serde(default)]
    settings: serde_json::Value,
    #[serde(default)]
    topology: Option<Topology>,
}

#[derive(Default)]
struct Series {
    scenario: String,
    settings: serde_json::Value,
    topology: Option<Topology>,
    values: BTreeMap<String, (Vec<f64>, String)>,
    counts: BTreeMap<String, u64>,
    failures: u64,
    rounds: usize,
}

impl Series {
    /// The median over rounds of `figure`, if any round measured it.
    fn median_of(&self, figure: &str) -> Option<f64> {
        let (values, _) = self.values.get(figure)?;
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        Some(median(&sorted))
    }
}

/// Reports grouped by case, then by label.
type Cases = BTreeMap<String, BTreeMap<String, Series>>;

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Markdown for the reports in `files`; unreadable files are listed at the end.
pub fn markdown(files: &[PathBuf], numerator: &str, denominator: &str) -> String {
    let mut cases: Cases = BTreeMap::new();
    let mut unreadable = Vec::new();
    for file in files {
        let stored = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| serde_json::from_str::<Stored>(&t).ok());
        let Some(stored) = stored else {
            unreadable.push(file.display().to_string());
            continue;
        };
        let case = stored.case.clone().unwrap_or(stored.scenario.clone());
        let series = cases
            .entry(case)
            .or_default()
            .entry(stored.label.clone())
            .or_default();
        series.rounds += 1;
        series.scenario = stored.scenario.clone();
        series.settings = stored.settings.clone();
        series.topology = series.topology.or(stored.topology);
        for (name, value) in &stored.counts {
            *series.counts.entry(name.clone()).or_default() += value;
        }
        for f in stored.figures {
            let entry = series.values.entry(f.name).or_insert((Vec::new(), f.unit));
            entry.0.push(f.value);
        }
        series.failures += stored
            .counts
            .iter()
            .filter(|(n, _)| stored.must_be_zero.contains(n))
            .map(|(_, v)| v)
            .sum::<u64>();
    }
    let mut out = cluster_section(&cases, numerator, denominator);
    for (case, labels) in &cases {
        let _ = writeln!(out, "\n### {case}\n");
        // The compared pair first, then the rest (ceilings) in name order.
        let mut names: Vec<&String> = labels.keys().collect();
        names.sort_by_key(|l| (*l != numerator, *l != denominator, (*l).clone()));
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for label in &names {
            let _ = write!(header, " {label} median (min–max) |");
            rule.push_str("---|");
        }
        let has_ratio = labels.contains_key(numerator) && labels.contains_key(denominator);
        if has_ratio {
            let _ = write!(header, " {numerator}/{denominator} |");
            rule.push_str("---|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for figure in FIGURES {
            let mut row = format!("| {figure} |");
            let mut medians = BTreeMap::new();
            let mut any = false;
            for label in &names {
                match labels[*label].values.get(*figure) {
                    Some((values, unit)) if !values.is_empty() => {
                        let mut sorted = values.clone();
                        sorted.sort_by(f64::total_cmp);
                        let m = median(&sorted);
                        medians.insert(label.as_str(), m);
                        any = true;
                        let _ = write!(
                            row,
                            " {} {unit} ({}–{}) |",
                            fmt_value(m),
                            fmt_value(sorted[0]),
                            fmt_value(sorted[sorted.len() - 1])
                        );
                    }
                    _ => row.push_str(" – |"),
                }
            }
            if !any {
                continue;
            }
            if has_ratio {
                match (medians.get(numerator), medians.get(denominator)) {
                    (Some(a), Some(b)) if *b != 0.0 => {
                        let _ = write!(row, " {:.2}× |", a / b);
                    }
                    _ => row.push_str(" – |"),
                }
            }
            let _ = writeln!(out, "{row}");
        }
        let mut row = String::from("| rounds; lost/misdelivered (sum) |");
        for label in &names {
            let s = &labels[*label];
            let _ = write!(row, " {}; **{}** |", s.rounds, s.failures);
        }
        if has_ratio {
            row.push_str(" |");
        }
        let _ = writeln!(out, "{row}");
    }
    if !unreadable.is_empty() {
        let _ = writeln!(out, "\nUnreadable reports: {}", unreadable.join(", "));
    }
    out
}

/// Issue #12's budgets for a cross-node relay paced below saturation: per-relay CPU and p99
/// of switchboard at most these fractions of Node's.
const CPU_RATIO_BUDGET: f64 = 0.4;
const P99_RATIO_BUDGET: f64 = 0.33;
/// Per-relay CPU at 4 and 8 nodes at most this much above the 2-node figure.
const NODE_COUNT_CPU_BUDGET: f64 = 0.15;

/// The topology of a case (the first report that recorded one), when it ran on several nodes.
fn topology_of(labels: &BTreeMap<String, Series>) -> Option<(Topology, &Series)> {
    labels
        .values()
        .find_map(|s| s.topology.filter(|t| t.nodes > 1).map(|t| (t, s)))
}

/// The 2-node case (both nodes busy) with the same scenario and settings as `series`.
fn two_node_case<'a>(cases: &'a Cases, series: &Series) -> Option<&'a BTreeMap<String, Series>> {
    cases.values().find(|labels| {
        topology_of(labels).is_some_and(|(t, s)| {
            t.nodes == 2
                && t.busy_nodes == 2
                && s.scenario == series.scenario
                && s.settings == series.settings
        })
    })
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// `a / b` of two medians as `0.31×`, with a budget mark when `budget` is given.
fn ratio_cell(a: Option<f64>, b: Option<f64>, budget: Option<(f64, bool)>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => {
            let r = a / b;
            match budget {
                // (limit, true): at most the limit; (limit, false): above it.
                Some((limit, true)) => format!("{r:.2}× {}", mark(r <= limit)),
                Some((limit, false)) => format!("{r:.2}× {}", mark(r > limit)),
                None => format!("{r:.2}×"),
            }
        }
        _ => "n/a".to_string(),
    }
}

fn value_cell(v: Option<f64>) -> String {
    v.map(fmt_value).unwrap_or_else(|| "n/a".to_string())
}

/// The "Cluster path" section: one row per case run on several nodes (empty when none was).
fn cluster_section(cases: &Cases, numerator: &str, denominator: &str) -> String {
    let mut rows: Vec<(&String, Topology, &BTreeMap<String, Series>)> = cases
        .iter()
        .filter_map(|(case, labels)| topology_of(labels).map(|(t, _)| (case, t, labels)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    // Grouped by scenario and settings, then by node count: each 2-node row above its 4 and
    // 8-node variants.
    rows.sort_by_key(|(case, t, labels)| {
        let (_, s) = topology_of(labels).expect("filtered on a topology");
        (
            s.scenario.clone(),
            s.settings.to_string(),
            t.nodes,
            t.busy_nodes,
            (*case).clone(),
        )
    });
    let (a, b) = (numerator, denominator);
    let mut out = String::new();
    let _ = writeln!(out, "\n### Cluster path (issue #12 budgets)\n");
    let _ = writeln!(
        out,
        "Every node of a case and its Redis are counted: CPU is the CPU-seconds of all node \
         processes and of Redis over the measured phase, per 1,000 relays delivered. \
         *nodes (busy)*: the nodes connected to the case's Redis, and of those the ones the \
         load connects to (the others idle). Budgets of the paced relay: CPU ≤ \
         {CPU_RATIO_BUDGET}× Node's, p99 ≤ {P99_RATIO_BUDGET}× Node's, and at 4 and 8 \
         nodes per-relay CPU within {:.0}% of the 2-node figure; at full speed, nothing lost \
         and a higher rate than Node's. Medians over rounds.\n",
        NODE_COUNT_CPU_BUDGET * 100.0
    );
    let _ = writeln!(
        out,
        "| case | nodes (busy) | pairs across nodes | delivered msg/s {a} / {b} | \
         CPU per 1k relays {a} / {b} | CPU {a}/{b} | CPU vs 2 nodes {a} / {b} | \
         p99 {a} / {b} | p99 {a}/{b} | lost {a} / {b} |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (case, topology, labels) in &rows {
        let (_, first) = topology_of(labels).expect("filtered on a topology");
        let paced = first.settings.get("rate").and_then(|r| r.as_u64()) != Some(0);
        let relay = first.scenario == "relay";
        let budgets = relay && paced;
        let get = |label: &str, figure: &str| labels.get(label).and_then(|s| s.median_of(figure));
        let pair = |figure: &str, unit: &str| match (get(a, figure), get(b, figure)) {
            (None, None) => "n/a".to_string(),
            (x, y) => format!("{} / {}{unit}", value_cell(x), value_cell(y)),
        };
        let cpu = "server cpu per 1k msgs";
        let versus_two = |label: &str| -> String {
            let base = two_node_case(cases, first).and_then(|l| l.get(label)?.median_of(cpu));
            match (get(label, cpu), base) {
                _ if topology.nodes == 2 && topology.busy_nodes == 2 => "–".to_string(),
                (Some(v), Some(base)) if base > 0.0 => {
                    let change = v / base - 1.0;
                    let verdict = if label == a && budgets {
                        format!(" {}", mark(change <= NODE_COUNT_CPU_BUDGET))
                    } else {
                        String::new()
                    };
                    format!("{:+.0}%{verdict}", change * 100.0)
                }
                _ => "n/a".to_string(),
            }
        };
        let lost = |label: &str| {
            labels
                .get(label)
                .map(|s| format!("**{}**", s.failures))
                .unwrap_or_else(|| "n/a".to_string())
        };
        let delivered_ratio = if relay && !paced {
            format!(
                " ({})",
                ratio_cell(get(a, "delivered"), get(b, "delivered"), Some((1.0, false)))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {case} | {} ({}) | {} of {} | {}{delivered_ratio} | {} | {} | {} / {} | {} | {} | {} / {} |",
            topology.nodes,
            topology.busy_nodes,
            topology.pairs_across_nodes,
            topology.pairs,
            pair("delivered", ""),
            pair(cpu, " ms"),
            ratio_cell(
                get(a, cpu),
                get(b, cpu),
                budgets.then_some((CPU_RATIO_BUDGET, true))
            ),
            versus_two(a),
            versus_two(b),
            pair("latency p99", " ms"),
            ratio_cell(
                get(a, "latency p99"),
                get(b, "latency p99"),
                budgets.then_some((P99_RATIO_BUDGET, true))
            ),
            lost(a),
            lost(b),
        );
    }
    let across: Vec<String> = rows
        .iter()
        .filter(|(_, t, _)| !t.every_pair_across())
        .map(|(case, t, _)| format!("{case} ({} of {} pairs)", t.pairs_across_nodes, t.pairs))
        .collect();
    if across.is_empty() {
        let _ = writeln!(
            out,
            "\n**Every pair is across nodes** in every case of this table: the two sockets of \
             each pair of roommates connect to two different nodes (counted from where the load \
             tool connected each socket, recorded in each report's `topology`)."
        );
    } else {
        let _ = writeln!(
            out,
            "\nIn the relay cases every pair is across nodes. Not every pair was across nodes \
             in: {} (rooms with more members than busy nodes).",
            across.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\nCluster messages, from the counters each {a} node exports at `/metrics`, scraped \
         before and after the measured phase (n/a: not exported by this build; Node has no such \
         counters). *received per relay*: cluster messages received by all nodes together per \
         relay delivered; 1.0 means each relay reached exactly one other node. *max node* and \
         *mean node*: one node's received messages per relay delivered in the whole case.\n"
    );
    let _ = writeln!(
        out,
        "| case | nodes (busy) | received per relay | max node | mean node | \
         published per relay | misrouted (sum) | relays routed remote |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (case, topology, labels) in &rows {
        let series = labels.get(a);
        let get = |figure: &str| series.and_then(|s| s.median_of(figure));
        let misrouted = series
            .and_then(|s| s.counts.get("cluster misrouted"))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "n/a".to_string());
        let remote = get("relays routed remote")
            .map(|v| format!("{v:.1}%"))
            .unwrap_or_else(|| "n/a".to_string());
        let _ = writeln!(
            out,
            "| {case} | {} ({}) | {} | {} | {} | {} | {misrouted} | {remote} |",
            topology.nodes,
            topology.busy_nodes,
            value_cell(get("cluster received per relay")),
            value_cell(get("cluster received per relay, max node")),
            value_cell(get("cluster received per relay, mean node")),
            value_cell(get("cluster published per relay")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    /// A relay report of `label` on `nodes` nodes (`busy` of them loaded) with the given
    /// per-1k CPU and p99.
    fn relay_report(case: &str, label: &str, nodes: usize, busy: usize, cpu: f64) -> Report {
        let mut r = Report::new(
            "relay",
            label,
            Vec::new(),
            serde_json::json!({"rooms": 10, "rate": 3000, "payload_bytes": 1024}),
        );
        r.case = case.to_string();
        r.set_topology(Some(Topology::of_rooms(10, 2, busy, nodes)));
        r.figure("delivered", 3000.0, "msg/s");
        r.figure("server cpu per 1k msgs", cpu, "ms");
        r.figure("latency p99", cpu, "ms");
        r.failure_count("lost", 0);
        if label == "switchboard" {
            r.figure("cluster received per relay", 1.0, "msgs");
            r.count("cluster misrouted", 0);
        }
        r
    }

    /// The cluster section compares with Node, with the 2-node figure, and states that every
    /// pair was across nodes.
    #[test]
    fn cluster_section_against_budgets() {
        let dir = std::env::temp_dir().join(format!("sb-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let reports = [
            relay_report("cluster-2n", "switchboard", 2, 2, 100.0),
            relay_report("cluster-2n", "node", 2, 2, 400.0),
            relay_report("cluster-8n", "switchboard", 8, 8, 110.0),
            relay_report("cluster-8n", "node", 8, 8, 800.0),
        ];
        let mut files = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            let path = dir.join(format!("{i}.json"));
            r.write_json(&path).unwrap();
            files.push(path);
        }
        let text = markdown(&files, "switchboard", "node");
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            text.contains("### Cluster path (issue #12 budgets)"),
            "{text}"
        );
        assert!(text.contains("Every pair is across nodes"), "{text}");
        assert!(text.contains("| cluster-8n | 8 (8) | 10 of 10 |"), "{text}");
        assert!(text.contains("0.25× ✓"), "{text}");
        assert!(text.contains("+10% ✓"), "{text}");
        assert!(
            text.contains("| 1.00 | n/a | n/a | n/a | 0 | n/a |"),
            "{text}"
        );
        // The per-case tables stay.
        assert!(text.contains("### cluster-2n"), "{text}");
    }
}
