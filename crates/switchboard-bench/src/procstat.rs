//! Resident memory and CPU time of the processes under test, read from `/proc/PID`.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat`: it counts every thread the process ever
//! ran, including ones that have exited, in clock ticks (`getconf CLK_TCK`, 100 on Linux).
//! Ticks are 10 ms, which is why scenarios measure over several seconds. RSS is `VmRSS` from
//! `/proc/PID/status`. CPU-seconds rather than wall-clock keep the figures meaningful on a
//! machine shared with other work.

use std::sync::OnceLock;

use crate::BenchError;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// A named process to watch (`switchboard`, `node`, `redis`).
#[derive(Debug, Clone)]
pub struct Watched {
    pub label: String,
    pub pid: u32,
}

impl Watched {
    /// Reads `label=PID` or a bare `PID` (labelled `pidN`).
    pub fn parse(text: &str) -> Result<Watched, String> {
        let (label, pid) = match text.split_once('=') {
            Some((label, pid)) => (label.to_string(), pid),
            None => (format!("pid{text}"), text),
        };
        let pid = pid
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not PID or label=PID"))?;
        Ok(Watched { label, pid })
    }

    pub fn sample(&self) -> Result<Sample, BenchError> {
        sample(self.pid)
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads RSS and CPU time of `pid`.
pub fn sample(pid: u32) -> Result<Sample, BenchError> {
    let fail = |reason: String| BenchError::Proc { pid, reason };
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| fail(e.to_string()))?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| fail(e.to_string()))?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| fail("unreadable stat".into()))?;
    let rss_kib = vm_rss_kib(&status).ok_or_else(|| fail("no VmRSS".into()))?;
    Ok(Sample {
        rss_bytes: rss_kib * 1024,
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
    })
}

/// `utime + stime` from the text of `/proc/PID/stat` (fields 14 and 15; the command name in
/// field 2 may hold spaces, so counting starts after its closing parenthesis).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Readings of several processes taken together.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub samples: Vec<(String, Sample)>,
}

impl Snapshot {
    /// Samples every watched process; one that cannot be read is left out and reported.
    pub fn take(watched: &[Watched]) -> Snapshot {
        let samples = watched
            .iter()
            .filter_map(|w| match w.sample() {
                Ok(s) => Some((w.label.clone(), s)),
                Err(e) => {
                    eprintln!("warning: {e}");
                    None
                }
            })
            .collect();
        Snapshot { samples }
    }

    /// Per process: (label, RSS growth in bytes, CPU-seconds) from `earlier` to `self`.
    pub fn since(&self, earlier: &Snapshot) -> Vec<(String, i64, f64)> {
        self.samples
            .iter()
            .filter_map(|(label, now)| {
                let (_, then) = earlier.samples.iter().find(|(l, _)| l == label)?;
                Some((
                    label.clone(),
                    now.rss_bytes as i64 - then.rss_bytes as i64,
                    now.cpu_seconds - then.cpu_seconds,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU ticks are found after the command name, even one with spaces and parentheses.
    #[test]
    fn stat_fields() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    /// VmRSS is read in KiB.
    #[test]
    fn status_rss() {
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
    }

    /// This very process can be sampled.
    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
    }

    /// Watched processes are given as PID or label=PID.
    #[test]
    fn watched_parse() {
        assert_eq!(Watched::parse("node=12").unwrap().pid, 12);
        assert_eq!(Watched::parse("7").unwrap().label, "pid7");
        assert!(Watched::parse("x=y").is_err());
    }
}
