//! A `switchboard` process under test: spawned on a free loopback port, killed (SIGKILL) on
//! drop or on demand, with its log kept in a file so a failing test can show it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::free_port;

/// How long a node may take to answer `/health` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait for an answer to one HTTP request to a node.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a node's log a failing test prints when the node is dropped.
const LOG_TAIL_BYTES: usize = 8000;

/// A running `switchboard` node listening on 127.0.0.1. Killed on drop; when dropped during
/// a panic (a failing test), the end of its log is printed first.
pub struct Node {
    child: Child,
    /// Set once the process has ended and been reaped, so drop does not touch the PID again.
    exited: bool,
    port: u16,
    /// What it was started with, so [`Node::restart`] can start it again the same way.
    binary: PathBuf,
    args: Vec<String>,
    /// Environment variables set on top of the defaults (`RUST_LOG`), kept for restarts.
    env: Vec<(String, String)>,
    /// stdout and stderr of every start, one after the other.
    log: PathBuf,
}

impl Node {
    /// Starts `binary` on a free port with extra command-line `args`, and waits until its
    /// `/health` answers. Panics (failing the test) if it does not start.
    pub fn spawn(binary: impl AsRef<Path>, args: &[&str]) -> Node {
        Node::spawn_with_env(binary, args, &[])
    }

    /// Like [`Node::spawn`], with extra environment variables; they override the default
    /// `RUST_LOG=info,switchboard=debug` (e.g. to see exactly what a production node logs).
    pub fn spawn_with_env(binary: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Node {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("switchboard-test-{port}.log"));
        File::create(&log).expect("create node log file");
        let binary = binary.as_ref().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = start(&binary, &args, &env, port, &log);
        let mut node = Node {
            child,
            exited: false,
            port,
            binary,
            args,
            env,
            log,
        };
        node.wait_healthy();
        node
    }

    /// Kills the node (SIGKILL) if it runs, starts it again with the same arguments on the
    /// same port, and waits until its `/health` answers: a crash followed by an immediate
    /// restart, as a supervisor would do it.
    pub fn restart(&mut self) {
        self.kill();
        self.relaunch();
    }

    /// Starts the node again, after it exited (a graceful stop, say), with the same arguments
    /// on the same port, and waits until its `/health` answers. Kills it first if it runs.
    pub fn relaunch(&mut self) {
        self.kill();
        self.child = start(&self.binary, &self.args, &self.env, self.port, &self.log);
        self.exited = false;
        self.wait_healthy();
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `timeout` for the process to exit;
    /// returns whether it did. The node is SIGKILLed on drop either way.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        if self.exited {
            return true;
        }
        self.signal("TERM");
        self.exits_within(timeout)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's combined stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path on the node and return (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.url());
        let response = ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .call();
        status_and_body(response)
    }

    /// POST an empty body to a path on the node, with `Authorization: Bearer <bearer>` when
    /// given, and return (status, body).
    pub fn post(&self, path: &str, bearer: Option<&str>) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.url());
        let mut request = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build();
        if let Some(token) = bearer {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        status_and_body(request.send_empty())
    }

    /// Sends a signal (`TERM`, `INT`, ...) to the node's process, without waiting.
    pub fn signal(&self, name: &str) {
        if !self.exited {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &self.child.id().to_string()])
                .status();
        }
    }

    /// Whether the process exits within `timeout`; reaps it if so.
    pub fn exits_within(&mut self, timeout: Duration) -> bool {
        let exited = crate::wait_until(timeout, || !matches!(self.child.try_wait(), Ok(None)));
        if exited {
            let _ = self.child.wait();
            self.exited = true;
        }
        exited
    }

    /// Waits until `/health` reports the Redis link as `state` (`up`, `down`, `disabled`);
    /// returns whether it did within `timeout`.
    pub fn wait_redis(&self, state: &str, timeout: Duration) -> bool {
        let wanted = format!("\"redis\":\"{state}\"");
        crate::wait_until(timeout, || {
            self.get("/health").is_ok_and(|(_, body)| {
                let compact: String = body.split_whitespace().collect();
                compact.contains(&wanted)
            })
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        !self.exited && matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL (no shutdown of any kind: a crash, as far as the rest of
    /// the cluster can tell) and reaps it.
    pub fn kill(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.exited = true;
        }
    }

    /// GET a path on the node and return (status, body), failing the test on a transport
    /// error.
    pub fn get_ok(&self, path: &str) -> (u16, String) {
        self.get(path)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}\n{}", self.url(), self.log()))
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                panic!("switchboard exited during start-up:\n{}", self.log());
            }
            if matches!(self.get("/health"), Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("switchboard did not become healthy:\n{}", self.log());
    }
}

/// The status and body of an HTTP answer, or why there was none.
fn status_and_body(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, String), String> {
    let mut response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Starts the process, appending its output to `log`.
fn start(binary: &Path, args: &[String], env: &[(String, String)], port: u16, log: &Path) -> Child {
    let log_file = File::options()
        .append(true)
        .open(log)
        .expect("open node log file");
    let stderr = log_file.try_clone().expect("clone log file handle");
    Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .env("RUST_LOG", "info,switchboard=debug")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()))
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
            while !log.is_char_boundary(start) {
                start += 1;
            }
            eprintln!(
                "---- end of the log of the node on port {} ----\n{}",
                self.port,
                &log[start..]
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
