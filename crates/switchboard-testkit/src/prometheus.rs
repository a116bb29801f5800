//! A real Prometheus (Debian's `prometheus` package) scraping test nodes, configured by the
//! file operators deploy (`docker/prometheus/prometheus.yml`, with its `alerts.yml`).
//!
//! [`Prometheus::spawn`] copies both files into a directory of its own, rewrites the shipped
//! scrape targets to the test nodes' loopback addresses and the intervals to one second (so a
//! test sees rates within seconds), and starts Prometheus on a free loopback port with its
//! data in that directory. The dashboard and alert tests then ask it over its HTTP API, as
//! Grafana and an operator would.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::port::free_port;

/// How long Prometheus may take to report itself ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one answer of its HTTP API.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrape and rule evaluation interval in tests.
pub const PROMETHEUS_INTERVAL: &str = "1s";

/// A running Prometheus, killed (by PID) on drop; its log is printed if the test failed.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// `docker/prometheus/` in the workspace.
pub fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker/prometheus")
}

impl Prometheus {
    /// Starts Prometheus with `docker/prometheus/prometheus.yml` (and its rule files)
    /// scraping `targets` (`127.0.0.1:PORT`) as the shipped job, every second, and waits until
    /// it is ready. Panics if Prometheus is missing or does not start.
    pub fn spawn(targets: &[String]) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("switchboard-prometheus-{port}"));
        std::fs::create_dir_all(dir.join("data")).expect("create the Prometheus directory");
        let shipped_config = std::fs::read_to_string(shipped_dir().join("prometheus.yml"))
            .expect("read docker/prometheus/prometheus.yml");
        for entry in std::fs::read_dir(shipped_dir()).expect("read docker/prometheus") {
            let path = entry.expect("docker/prometheus entry").path();
            match path.file_name() {
                Some(name) if path.is_file() && name != "prometheus.yml" => {
                    std::fs::copy(&path, dir.join(name)).expect("copy a rule file");
                }
                _ => {}
            }
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, render(&shipped_config, targets)).expect("write the config");

        let log = File::create(dir.join("prometheus.log")).expect("create the Prometheus log");
        let stderr = log.try_clone().expect("clone the log handle");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus (./scripts/test installs it): {e}"));
        let prometheus = Prometheus { child, port, dir };
        let ready = crate::wait_until(START_TIMEOUT, || {
            matches!(prometheus.get("/-/ready", &[]), Ok((200, _)))
        });
        assert!(ready, "prometheus did not start:\n{}", prometheus.log());
        prometheus
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET `path` with query parameters; (status, body).
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, String), String> {
        let mut request = ureq::get(format!("{}{path}", self.url()))
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build();
        for (name, value) in query {
            request = request.query(*name, *value);
        }
        let mut response = request.call().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// The JSON answer of an instant query (`/api/v1/query`), whatever its status.
    pub fn query(&self, expr: &str) -> Result<String, String> {
        self.get("/api/v1/query", &[("query", expr)])
            .map(|(_, body)| body)
    }

    /// Prometheus' own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- prometheus log ----\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> &'static str {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("prometheus")
}

/// The shipped config with `targets` instead of the compose nodes and one-second intervals.
fn render(shipped: &str, targets: &[String]) -> String {
    let mut out = String::new();
    let (mut targets_written, mut intervals) = (false, 0);
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("- targets:") {
            let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
            out += &format!("{indent}- targets: [{}]\n", quoted.join(", "));
            targets_written = true;
        } else if let Some((key, _)) = trimmed
            .split_once(':')
            .filter(|(key, _)| *key == "scrape_interval" || *key == "evaluation_interval")
        {
            out += &format!("{indent}{key}: {PROMETHEUS_INTERVAL}\n");
            intervals += 1;
        } else {
            out += line;
            out += "\n";
        }
    }
    assert!(
        targets_written && intervals == 2,
        "docker/prometheus/prometheus.yml no longer has one `- targets: [...]` line and global \
         scrape_interval/evaluation_interval: update testkit's render()"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_loopback_targets_and_short_intervals() {
        let shipped = std::fs::read_to_string(shipped_dir().join("prometheus.yml")).unwrap();
        let targets = ["127.0.0.1:4001".to_string(), "127.0.0.1:4002".to_string()];
        let rendered = render(&shipped, &targets);
        assert!(rendered.contains("- targets: [\"127.0.0.1:4001\", \"127.0.0.1:4002\"]"));
        assert!(!rendered.contains("switchboard-1"));
        assert!(rendered.contains("scrape_interval: 1s"));
        assert!(rendered.contains("evaluation_interval: 1s"));
        assert!(rendered.contains("job_name: switchboard"));
        assert!(rendered.contains("- alerts.yml"));
    }
}
