//! The `missive` binary as a process, for tests that need one: started as a user starts
//! it (every MISSIVE_* variable of the caller removed), its address read from its log.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_missive");

/// A `missive` process with every MISSIVE_* variable of the caller removed.
pub fn missive(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("MISSIVE_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("MISSIVE_DATA_DIR", data_dir).env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd
}

pub struct Server {
    pub pid: u32,
    pub addr: String,
    /// Log lines up to and including the "listening on" line.
    pub startup_log: Vec<String>,
    exited: mpsc::Receiver<std::process::ExitStatus>,
    reaped: std::cell::Cell<bool>,
    /// Log lines after startup, as they arrive (read with `next_log_line`).
    later_log: std::sync::Mutex<mpsc::Receiver<String>>,
}

/// Starts `missive` (serve) on an ephemeral port and waits for its "listening" line.
pub fn start(data_dir: &Path) -> Server {
    start_with(missive(data_dir))
}

/// Starts a prepared `missive` command (serve) on an ephemeral port.
pub fn start_with(mut cmd: Command) -> Server {
    let mut child: Child = cmd
        .env("MISSIVE_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start missive");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut startup_log = Vec::new();
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("a log line while starting");
        startup_log.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    // The reader thread keeps draining stderr, so the server never blocks on a full pipe.
    let later_log = std::sync::Mutex::new(lines);
    let pid = child.id();
    let (exit_tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait().expect("wait for missive"));
    });
    Server { pid, addr, startup_log, exited, reaped: false.into(), later_log }
}

impl Server {
    pub fn sigterm_and_wait(&self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().expect("kill");
        assert!(sent.success());
        let exit = self.exited.recv_timeout(limit).expect("missive exits in time after SIGTERM");
        self.reaped.set(true);
        (exit, started.elapsed())
    }
}

impl Server {
    /// The next log line, waiting at most `limit`.
    pub fn next_log_line(&self, limit: Duration) -> Option<String> {
        self.later_log.lock().expect("log receiver").recv_timeout(limit).ok()
    }

    /// Kills the process outright (no shutdown at all) and waits for it to be gone.
    pub fn sigkill(&self) {
        let sent = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status().expect("kill");
        assert!(sent.success());
        self.exited.recv_timeout(Duration::from_secs(10)).expect("missive is gone after SIGKILL");
        self.reaped.set(true);
    }

    /// Freezes the process (SIGSTOP) or thaws it (SIGCONT): alive, but silent meanwhile.
    #[allow(dead_code)] // the cluster suite's
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let sent = Command::new("kill").args([signal, &self.pid.to_string()]).status().expect("kill");
        assert!(sent.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave a server running.
        if !self.reaped.get() && self.exited.try_recv().is_err() {
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
    }
}

pub fn token_for(data_dir: &Path, user: &str) -> String {
    let out = missive(data_dir).args(["token", user]).output().expect("missive token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}
