//! The `switchboard-bench` command: parse flags, run one scenario, print a table, write JSON,
//! and exit non-zero when anything was lost or misdelivered.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchboard_bench::plot;
use switchboard_bench::procstat::Watched;
use switchboard_bench::report::BENCH_LABEL;
use switchboard_bench::scenario::Target;
use switchboard_bench::scenario::churn::{self, ChurnOptions};
use switchboard_bench::scenario::idle::{self, IdleOptions};
use switchboard_bench::scenario::relay::{self, RelayOptions};
use switchboard_bench::scenario::storm::{self, StormOptions};
use switchboard_bench::summary;
use switchboard_bench::target::NodeUrl;

/// Load generator for rtc.io signaling servers (socket.io v5 over WebSocket).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args)]
struct Common {
    /// Node URL, or several separated by commas (http://127.0.0.1:3001,...). Loopback only.
    #[arg(long, global = true, default_value = "http://127.0.0.1:3001")]
    url: String,
    /// Connect the load to the first K node URLs only; the others stay idle in the cluster
    /// (their counters are still scraped; give their PIDs with --pid). Default: all.
    #[arg(long, global = true)]
    busy_nodes: Option<usize>,
    /// Server process to watch, as PID or label=PID; repeat for several (nodes, redis).
    #[arg(long = "pid", global = true)]
    pids: Vec<String>,
    /// Name of the server under test in the report.
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Write the report as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Loopback source addresses to connect from (default: one per 20,000 sockets).
    #[arg(long, global = true)]
    sources: Option<usize>,
    /// Connections being set up at once.
    #[arg(long, global = true, default_value_t = 128)]
    concurrency: usize,
    /// Do not draw a progress bar.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Name of this case in the report (default: the scenario's name).
    #[arg(long, global = true)]
    case: Option<String>,
    /// Worker threads of the bench (default: 1, so the server keeps the other cores).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Scenario {
    /// Print Markdown tables (median, min–max, ratio) from JSON reports of earlier runs.
    Summarize {
        /// Label whose figures are divided...
        #[arg(long, default_value = "switchboard")]
        numerator: String,
        /// ...by this label's.
        #[arg(long, default_value = "node")]
        denominator: String,
        files: Vec<PathBuf>,
    },
    /// Draw SVG charts (latency CDFs, memory per socket) from JSON reports of earlier runs.
    Plot {
        /// Directory to write `latency-cdf.svg` and `memory-per-socket.svg` into.
        #[arg(long)]
        out: PathBuf,
        /// Server drawn and listed first...
        #[arg(long, default_value = "switchboard")]
        first: String,
        /// ...and second; others follow by name.
        #[arg(long, default_value = "node")]
        second: String,
        files: Vec<PathBuf>,
    },
    /// Open N sockets and hold them: connect rate, failures, server RSS per socket.
    Idle {
        #[arg(long, default_value_t = 5000)]
        sockets: usize,
        /// Seconds to hold every socket before reading the server's RSS.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
        /// Longest the connect phase may take, in seconds.
        #[arg(long, default_value_t = 300.0)]
        connect_deadline: f64,
    },
    /// Rooms of two peers relaying #rtcio:message envelopes to each other.
    Relay {
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Envelopes one peer may have in flight.
        #[arg(long, default_value_t = 8)]
        window: u64,
        /// Size of each envelope's data, in bytes.
        #[arg(long, alias = "payload-bytes", default_value_t = 1024)]
        payload: usize,
        /// Envelopes per second over all pairs; 0 = as fast as the server delivers.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to wait for envelopes in flight after sending stops.
        #[arg(long, default_value_t = 5.0)]
        drain: f64,
    },
    /// Peers joining rooms at a fixed rate and negotiating (offer, answer, candidates).
    Storm {
        #[arg(long, default_value_t = 2000)]
        peers: usize,
        #[arg(long, default_value_t = 4)]
        room_size: usize,
        /// Joins per second over all nodes.
        #[arg(long, default_value_t = 500.0)]
        join_rate: f64,
        /// Bytes of SDP in each offer and answer.
        #[arg(long, default_value_t = 5120)]
        sdp: usize,
        #[arg(long, default_value_t = 8)]
        candidates: usize,
        /// Seconds after the last join within which everything must have arrived.
        #[arg(long, default_value_t = 60.0)]
        deadline: f64,
    },
    /// Peers joining and leaving rooms while steady pairs relay.
    Churn {
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        churners: usize,
        /// Joins per second over all churners.
        #[arg(long, default_value_t = 200.0)]
        ops: f64,
        /// Envelopes per second over all steady pairs.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 1024)]
        payload: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let common = cli.common;
    if let Scenario::Summarize {
        numerator,
        denominator,
        files,
    } = &cli.scenario
    {
        print!("{}", summary::markdown(files, numerator, denominator));
        return ExitCode::SUCCESS;
    }
    if let Scenario::Plot {
        out,
        first,
        second,
        files,
    } = &cli.scenario
    {
        return match plot::render(files, out, first, second) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let urls = match NodeUrl::parse_list(&common.url) {
        Ok(urls) if !urls.is_empty() => urls,
        Ok(_) => {
            eprintln!("no node URL given");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let busy = common.busy_nodes.unwrap_or(urls.len());
    if busy == 0 || busy > urls.len() {
        eprintln!(
            "--busy-nodes {busy}: expected 1 to {} (the node URLs given)",
            urls.len()
        );
        return ExitCode::from(2);
    }
    let mut watched = Vec::new();
    for pid in &common.pids {
        match Watched::parse(pid) {
            Ok(w) => watched.push(w),
            Err(e) => {
                eprintln!("--pid {e}");
                return ExitCode::from(2);
            }
        }
    }
    watched.push(Watched {
        label: BENCH_LABEL.to_string(),
        pid: std::process::id(),
    });
    let target = Target {
        urls: urls[..busy].to_vec(),
        cluster: urls,
        watched,
        label: common.label.clone(),
        sources: common.sources,
        concurrency: common.concurrency,
        progress: !common.no_progress,
    };
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let mut report = match cli.scenario {
        Scenario::Summarize { .. } | Scenario::Plot { .. } => return ExitCode::SUCCESS,
        Scenario::Idle {
            sockets,
            hold,
            connect_deadline,
        } => {
            let options = IdleOptions {
                sockets,
                hold: secs(hold),
                connect_deadline: secs(connect_deadline),
            };
            idle::run(&target, &options).await
        }
        Scenario::Relay {
            rooms,
            duration,
            window,
            payload,
            rate,
            drain,
        } => {
            let options = RelayOptions {
                rooms,
                duration: secs(duration),
                window,
                payload_bytes: payload,
                rate,
                drain: secs(drain),
            };
            relay::run(&target, &options).await
        }
        Scenario::Storm {
            peers,
            room_size,
            join_rate,
            sdp,
            candidates,
            deadline,
        } => {
            let options = StormOptions {
                peers,
                room_size,
                join_rate,
                sdp_bytes: sdp,
                candidates,
                deadline: secs(deadline),
            };
            storm::run(&target, &options).await
        }
        Scenario::Churn {
            rooms,
            churners,
            ops,
            rate,
            duration,
            payload,
        } => {
            let options = ChurnOptions {
                rooms,
                churners,
                ops,
                rate,
                duration: secs(duration),
                payload_bytes: payload,
            };
            churn::run(&target, &options).await
        }
    };
    if let Some(case) = common.case {
        report.case = case;
    }
    print!("{}", report.table());
    if let Some(path) = &common.json
        && let Err(e) = report.write_json(path)
    {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
