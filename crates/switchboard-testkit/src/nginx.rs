//! nginx in front of test nodes, configured by the very file operators deploy
//! (`docker/nginx.conf`, or `docker/nginx-room-affinity.conf`), so the tests check the shipped
//! configuration and not a copy.
//!
//! The files name their upstreams `switchboard-N:3001` and listen on 8080, as in
//! `docker/compose.yml`; [`Nginx::spawn_with`] renders one with the test nodes' loopback
//! ports, a free port to listen on, and its pid, logs and temporary files in a directory of
//! its own.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::port::free_port;

/// How long nginx may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx (master and workers, in a process group of their own), stopped on drop.
pub struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// `docker/nginx.conf` in the workspace: `ip_hash`, the default.
pub fn shipped_config() -> PathBuf {
    docker_file("nginx.conf")
}

/// `docker/nginx-room-affinity.conf` in the workspace: `hash` on the room in the connection
/// query.
pub fn room_affinity_config() -> PathBuf {
    docker_file("nginx-room-affinity.conf")
}

fn docker_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docker")
        .join(name)
}

impl Nginx {
    /// Starts nginx with `docker/nginx.conf` proxying to the nodes on `upstream_ports`
    /// (127.0.0.1), and waits until it answers. Panics if nginx is missing or does not start.
    pub fn spawn(upstream_ports: &[u16]) -> Nginx {
        Nginx::spawn_with(&shipped_config(), upstream_ports)
    }

    /// Like [`Nginx::spawn`], configured by the shipped file `config` (e.g.
    /// [`room_affinity_config`]).
    pub fn spawn_with(config: &Path, upstream_ports: &[u16]) -> Nginx {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("switchboard-nginx-{port}"));
        std::fs::create_dir_all(dir.join("logs")).expect("create the nginx directory");
        let shipped = std::fs::read_to_string(config)
            .unwrap_or_else(|e| panic!("read {}: {e}", config.display()));
        let rendered = render(&shipped, upstream_ports, port, &dir)
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let config = dir.join("nginx.conf");
        std::fs::write(&config, rendered).expect("write the nginx config");

        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-g")
            .arg(format!(
                "daemon off; master_process on; pid {};",
                dir.join("nginx.pid").display()
            ))
            // Its own group, so the workers are stopped with the master.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nginx (./scripts/test installs it): {e}"));
        let nginx = Nginx { child, port, dir };
        let up = crate::wait_until(START_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nginx did not start:\n{}", nginx.error_log());
        nginx
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A master killed outright would leave its workers holding the port: ask it to stop
        // (fast shutdown), then make sure.
        self.signal_group("-TERM");
        let stopped = crate::wait_until(Duration::from_secs(3), || {
            !matches!(self.child.try_wait(), Ok(None))
        });
        if !stopped || std::thread::panicking() {
            self.signal_group("-KILL");
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- nginx error log ----\n{}", self.error_log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nginx")
}

/// The shipped config with loopback upstreams, a loopback listen port and paths under `dir`.
fn render(shipped: &str, upstream_ports: &[u16], port: u16, dir: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut upstreams_written = false;
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(server) = trimmed.strip_prefix("server switchboard-") {
            // One line per test node, with the shipped line's parameters (`max_fails=0`).
            if !upstreams_written {
                let params = server.split_once(' ').map_or(";", |(_, rest)| rest);
                for upstream in upstream_ports {
                    out += &format!("{indent}server 127.0.0.1:{upstream} {params}\n");
                }
                upstreams_written = true;
            }
        } else if trimmed.starts_with("listen ") {
            out += &format!("{indent}listen 127.0.0.1:{port};\n");
        } else if trimmed.starts_with("http {") {
            out += line;
            out += "\n";
            for (directive, sub) in [
                ("client_body_temp_path", "body"),
                ("proxy_temp_path", "proxy"),
                ("fastcgi_temp_path", "fastcgi"),
                ("uwsgi_temp_path", "uwsgi"),
                ("scgi_temp_path", "scgi"),
            ] {
                out += &format!("{indent}    {directive} {};\n", dir.join(sub).display());
            }
            out += &format!(
                "{indent}    access_log {};\n",
                dir.join("logs/access.log").display()
            );
        } else {
            out += line;
            out += "\n";
        }
    }
    if !upstreams_written {
        return Err("no `server switchboard-N:PORT` upstream line".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shipped file renders with one loopback server per test node, in the upstream
    /// the file defines, and keeps its balancing method.
    #[test]
    fn renders_loopback_upstreams_and_listen_port() {
        for (config, method) in [
            (shipped_config(), "ip_hash;"),
            (
                room_affinity_config(),
                "hash $room_affinity_key consistent;",
            ),
        ] {
            let shipped = std::fs::read_to_string(&config).unwrap();
            let rendered = render(&shipped, &[4001, 4002], 5000, Path::new("/tmp/x")).unwrap();
            assert!(rendered.contains("server 127.0.0.1:4001 max_fails=0;"));
            assert!(rendered.contains("server 127.0.0.1:4002 max_fails=0;"));
            assert!(!rendered.contains("switchboard-3"));
            assert!(rendered.contains("listen 127.0.0.1:5000;"));
            assert!(rendered.contains(method), "{}", config.display());
            assert!(rendered.contains("proxy_temp_path /tmp/x/proxy;"));
        }
    }
}
