//! Turns the JSON reports of several rounds into the Markdown tables of `docs/benchmarks.md`.
//!
//! Reports are grouped by *case* (a scenario with its settings, e.g. `relay-paced-5k`) and by
//! *label* (the server: `switchboard`, `node`, `ceiling`). For each figure of interest the
//! table shows the median over rounds with the min–max spread, and the ratio
//! switchboard/Node of the medians. Exact tallies that must be zero are summed over rounds, so
//! a single lost message in any round shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;

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
}

#[derive(Default)]
struct Series {
    values: BTreeMap<String, (Vec<f64>, String)>,
    failures: u64,
    rounds: usize,
}

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
    let mut cases: BTreeMap<String, BTreeMap<String, Series>> = BTreeMap::new();
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
    let mut out = String::new();
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
