//! A `switchboard` process under test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::free_port;

/// How long a node may take to answer `/health` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `switchboard` node listening on 127.0.0.1. Killed on drop.
pub struct Node {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Node {
    /// Starts `binary` on a free port with extra command-line `args`, and waits until its
    /// `/health` answers. Panics (failing the test) if it does not start.
    pub fn spawn(binary: impl AsRef<Path>, args: &[&str]) -> Node {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("switchboard-test-{port}.log"));
        let log_file = File::create(&log).expect("create node log file");
        let stderr = log_file.try_clone().expect("clone log file handle");
        let child = Command::new(binary.as_ref())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "info,switchboard=debug")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.as_ref().display()));
        let mut node = Node { child, port, log };
        node.wait_healthy();
        node
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
        let mut response = ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
