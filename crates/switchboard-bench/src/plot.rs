//! Charts of a bench run, drawn as SVG files from its JSON reports (no browser, no fonts).
//!
//! People compare distributions faster than tables of percentiles, so `scripts/bench` draws
//! two charts next to the tables of `docs/benchmarks.md`:
//!
//! - `latency-cdf.svg`: one panel per case and latency (relay latency, storm join times), each
//!   with a cumulative distribution per server (switchboard, Node, the bare ceiling) on a log
//!   time axis. Rounds are combined as the tables combine them: at each quantile, the median
//!   of the rounds' values.
//! - `memory-per-socket.svg`: server memory per connected socket against the number of
//!   sockets connected, one line per idle round, coloured by server.
//!
//! Everything is read from the reports' `distributions` and `curves` (see [`crate::report`]),
//! so a later run redraws the charts without measuring anything again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no report in the given files has {0}")]
    NoData(&'static str),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot draw {path}: {reason}")]
    Draw { path: String, reason: String },
}

#[derive(Deserialize)]
struct StoredDistribution {
    name: String,
    unit: String,
    quantiles: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct StoredCurve {
    name: String,
    x_unit: String,
    y_unit: String,
    points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    case: Option<String>,
    scenario: String,
    label: String,
    #[serde(default)]
    distributions: Vec<StoredDistribution>,
    #[serde(default)]
    curves: Vec<StoredCurve>,
}

/// Width and height of one latency panel, in pixels.
const PANEL: (u32, u32) = (620, 380);
const TITLE_HEIGHT: u32 = 50;

/// The colour of a server's lines: the same in every chart.
fn colour(label: &str) -> RGBColor {
    match label {
        "switchboard" => RGBColor(31, 100, 180),
        "node" => RGBColor(214, 96, 26),
        "ceiling" => RGBColor(120, 120, 120),
        _ => RGBColor(60, 150, 60),
    }
}

/// Draws every chart the reports in `files` have data for into `out_dir` and returns the
/// files written. `first` and `second` are the compared servers (drawn and listed first).
pub fn render(
    files: &[PathBuf],
    out_dir: &Path,
    first: &str,
    second: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let reports = load(files)?;
    std::fs::create_dir_all(out_dir).map_err(|e| PlotError::Read {
        path: out_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let order = |label: &str| (label != first, label != second, label.to_owned());
    let mut written = Vec::new();

    let panels = latency_panels(&reports, &order);
    if !panels.is_empty() {
        let path = out_dir.join("latency-cdf.svg");
        draw_latency(&path, &panels).map_err(|reason| PlotError::Draw {
            path: path.display().to_string(),
            reason,
        })?;
        written.push(path);
    }
    let memory = memory_lines(&reports, &order);
    if !memory.is_empty() {
        let path = out_dir.join("memory-per-socket.svg");
        draw_memory(&path, &memory).map_err(|reason| PlotError::Draw {
            path: path.display().to_string(),
            reason,
        })?;
        written.push(path);
    }
    if written.is_empty() {
        return Err(PlotError::NoData(
            "a latency distribution or a memory curve",
        ));
    }
    Ok(written)
}

fn load(files: &[PathBuf]) -> Result<Vec<Stored>, PlotError> {
    files
        .iter()
        .map(|file| {
            let fail = |reason: String| PlotError::Read {
                path: file.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
        })
        .collect()
}

/// One latency panel: a case's distribution, one combined curve per server.
struct LatencyPanel {
    title: String,
    unit: String,
    /// Servers in display order.
    lines: Vec<ServerLine>,
}

/// One server's curve in a latency panel.
struct ServerLine {
    server: String,
    /// How many rounds were combined.
    rounds: usize,
    /// (value, quantile) points.
    points: Vec<(f64, f64)>,
}

fn latency_panels<K: Ord>(reports: &[Stored], order: &impl Fn(&str) -> K) -> Vec<LatencyPanel> {
    // (case, distribution) -> server -> rounds' quantile lists
    type Rounds<'a> = BTreeMap<&'a str, Vec<&'a [(f64, f64)]>>;
    let mut grouped: BTreeMap<(String, &str), (&str, Rounds)> = BTreeMap::new();
    for report in reports {
        let case = report.case.clone().unwrap_or(report.scenario.clone());
        for d in &report.distributions {
            let (_, servers) = grouped
                .entry((case.clone(), d.name.as_str()))
                .or_insert((d.unit.as_str(), BTreeMap::new()));
            servers
                .entry(report.label.as_str())
                .or_default()
                .push(&d.quantiles);
        }
    }
    grouped
        .into_iter()
        .map(|((case, name), (unit, servers))| {
            let mut lines: Vec<ServerLine> = servers
                .into_iter()
                .map(|(server, rounds)| ServerLine {
                    server: server.to_owned(),
                    rounds: rounds.len(),
                    points: combine(&rounds),
                })
                .filter(|line| !line.points.is_empty())
                .collect();
            lines.sort_by_key(|line| order(&line.server));
            let title = if name == "latency" {
                case
            } else {
                format!("{case}: {name}")
            };
            LatencyPanel {
                title,
                unit: unit.to_owned(),
                lines,
            }
        })
        .filter(|panel| !panel.lines.is_empty())
        .collect()
}

/// The rounds of one server combined: at each quantile all rounds have, the median value.
/// Returned as (value, quantile), the order a CDF is drawn in; values are kept positive for
/// the log axis.
fn combine(rounds: &[&[(f64, f64)]]) -> Vec<(f64, f64)> {
    let Some(shortest) = rounds.iter().map(|r| r.len()).min() else {
        return Vec::new();
    };
    (0..shortest)
        .map(|i| {
            let mut values: Vec<f64> = rounds.iter().map(|r| r[i].1).collect();
            values.sort_by(f64::total_cmp);
            let n = values.len();
            let median = if n % 2 == 1 {
                values[n / 2]
            } else {
                (values[n / 2 - 1] + values[n / 2]) / 2.0
            };
            (median.max(1e-3), rounds[0][i].0)
        })
        .collect()
}

/// One line of the memory chart: a server's readings in one idle round.
struct MemoryLine {
    server: String,
    case: String,
    x_unit: String,
    y_unit: String,
    points: Vec<(f64, f64)>,
}

fn memory_lines<K: Ord>(reports: &[Stored], order: &impl Fn(&str) -> K) -> Vec<MemoryLine> {
    let mut lines: Vec<MemoryLine> = reports
        .iter()
        .flat_map(|report| {
            let case = report.case.clone().unwrap_or(report.scenario.clone());
            report
                .curves
                .iter()
                .filter(|c| c.name == "rss per socket" && !c.points.is_empty())
                .map(move |c| MemoryLine {
                    server: report.label.clone(),
                    case: case.clone(),
                    x_unit: c.x_unit.clone(),
                    y_unit: c.y_unit.clone(),
                    points: c.points.clone(),
                })
        })
        .collect();
    lines.sort_by_key(|l| (order(&l.server), l.case.clone()));
    lines
}

fn draw_latency(path: &Path, panels: &[LatencyPanel]) -> Result<(), String> {
    let columns = panels.len().min(2);
    let rows = panels.len().div_ceil(columns);
    let size = (
        PANEL.0 * columns as u32,
        PANEL.1 * rows as u32 + TITLE_HEIGHT,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = root
        .titled(
            "Latency distribution per case (cumulative; log time axis; median of rounds)",
            ("sans-serif", 22),
        )
        .map_err(|e| e.to_string())?;
    let areas = body.split_evenly((rows, columns));
    for (area, panel) in areas.iter().zip(panels) {
        draw_latency_panel(area, panel)?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_latency_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &LatencyPanel,
) -> Result<(), String> {
    let values = panel
        .lines
        .iter()
        .flat_map(|line| line.points.iter().map(|v| v.0));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo * 0.8, (hi * 1.25).max(lo * 2.0));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(format!("{} (log scale)", panel.unit))
        .y_desc("fraction at or below")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_label_formatter(&|v| short_number(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    for ServerLine {
        server,
        rounds,
        points,
    } in &panel.lines
    {
        let colour = colour(server);
        let label = format!(
            "{server} ({rounds} round{})",
            if *rounds == 1 { "" } else { "s" }
        );
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_memory(path: &Path, lines: &[MemoryLine]) -> Result<(), String> {
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (x_max, y_max) = points.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_unit = lines.first().map_or("sockets", |l| l.x_unit.as_str());
    let y_unit = lines.first().map_or("KB", |l| l.y_unit.as_str());
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Server memory per connected socket (RSS growth / sockets, idle WebSockets)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.15)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(format!("{x_unit} connected"))
        .y_desc(format!("{y_unit} per socket"))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_label_formatter(&|v| short_number(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    let mut labelled = Vec::new();
    for line in lines {
        let colour = colour(&line.server);
        let series = chart
            .draw_series(LineSeries::new(line.points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        if !labelled.contains(&line.server) {
            labelled.push(line.server.clone());
            series.label(line.server.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|p| Circle::new(*p, 3, colour.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// 0.05, 2, 150, 20k: axis labels that stay short on a log or a large axis.
fn short_number(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(case: &str, label: &str, scale: f64, sockets: f64) -> String {
        let quantiles: Vec<(f64, f64)> = crate::report::DISTRIBUTION_QUANTILES
            .iter()
            .map(|&q| (q, scale * (1.0 + 10.0 * q)))
            .collect();
        serde_json::json!({
            "scenario": "relay", "case": case, "label": label, "urls": [], "settings": {},
            "figures": [], "counts": [], "must_be_zero": [], "notes": [],
            "distributions": [{"name": "latency", "unit": "ms", "quantiles": quantiles}],
            "curves": [{"name": "rss per socket", "x_unit": "sockets", "y_unit": "KB",
                        "points": [[sockets / 2.0, 30.0 * scale], [sockets, 20.0 * scale]]}],
        })
        .to_string()
    }

    fn write_reports(dir: &Path, reports: &[(&str, String)]) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        reports
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn draws_a_panel_per_case_and_a_line_per_server() {
        let dir = std::env::temp_dir().join(format!("bench-plot-{}", std::process::id()));
        let files = write_reports(
            &dir.join("in"),
            &[
                ("a.json", report("relay-full", "switchboard", 1.0, 5000.0)),
                ("b.json", report("relay-full", "switchboard", 3.0, 5000.0)),
                ("c.json", report("relay-full", "node", 4.0, 5000.0)),
                ("d.json", report("churn", "node", 2.0, 20000.0)),
            ],
        );
        let written = render(&files, &dir.join("out"), "switchboard", "node").unwrap();
        assert_eq!(
            written,
            vec![
                dir.join("out/latency-cdf.svg"),
                dir.join("out/memory-per-socket.svg")
            ]
        );
        let cdf = std::fs::read_to_string(&written[0]).unwrap();
        assert!(cdf.starts_with("<svg"), "{}", &cdf[..80]);
        let texts = svg_texts(&cdf);
        for text in [
            "relay-full",
            "churn",
            "switchboard (2 rounds)",
            "node (1 round)",
        ] {
            assert!(texts.contains(&text), "no {text:?} in {texts:?}");
        }
        let memory = std::fs::read_to_string(&written[1]).unwrap();
        let texts = svg_texts(&memory);
        for text in ["switchboard", "node", "20k"] {
            assert!(texts.contains(&text), "no {text:?} in {texts:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The texts of an SVG file (plotters writes each on a line of its own).
    fn svg_texts(svg: &str) -> Vec<&str> {
        svg.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('<'))
            .collect()
    }

    #[test]
    fn rounds_combine_to_the_median_at_each_quantile() {
        let a = [(0.5, 1.0), (1.0, 9.0)];
        let b = [(0.5, 3.0), (1.0, 5.0)];
        let c = [(0.5, 2.0), (1.0, 7.0)];
        assert_eq!(combine(&[&a, &b, &c]), vec![(2.0, 0.5), (7.0, 1.0)]);
        assert_eq!(combine(&[&a, &b]), vec![(2.0, 0.5), (7.0, 1.0)]);
    }

    #[test]
    fn reports_without_chart_data_are_an_error_not_an_empty_chart() {
        let dir = std::env::temp_dir().join(format!("bench-plot-empty-{}", std::process::id()));
        let old =
            r#"{"scenario":"idle","label":"node","figures":[],"counts":[],"must_be_zero":[]}"#;
        let files = write_reports(&dir, &[("old.json", old.to_string())]);
        let result = render(&files, &dir.join("out"), "switchboard", "node");
        assert!(matches!(result, Err(PlotError::NoData(_))), "{result:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
