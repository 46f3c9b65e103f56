//! The server under test: a `missive` child process with a fresh data directory and
//! limits lifted (a benchmark measures the server, not its rate limiter), or a running
//! server given by `--target`.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SECRET: &str = "missive-bench-secret-missive-bench-secret";

pub struct Server {
    pub base: String,
    pub secret: String,
    pub(crate) child: Option<Child>,
    _data: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
pub struct Target {
    /// A running server (e.g. http://127.0.0.1:4000) instead of starting one.
    #[arg(long)]
    pub target: Option<String>,
    /// Its HS256 secret (MISSIVE_JWT_SECRET); needed with --target.
    #[arg(long)]
    pub secret: Option<String>,
    /// Database of the started server (default: SQLite in a temp directory).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Where the started server's data directory goes (default: the system temp
    /// directory). `/dev/shm` takes the disk's flushes out of the measure, to tell the
    /// server's own latency from the disk's (`missive-bench fsync` measures the disk).
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// Nodes to start in cluster mode (needs a postgres:// --database-url). Each has its
    /// own process; with more than one, a private redis-server is started unless
    /// --redis-url names one.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Redis for cluster mode (default with --nodes > 1: a private redis-server).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Pins each started server to these CPUs (`taskset -c`, e.g. `0`), so its cost per
    /// delivery is measured on a known share of the machine; pin the load generator to
    /// the others (`taskset -c 1 missive-bench …`).
    #[arg(long)]
    pub server_cpus: Option<String>,
}

/// The servers under test: one, or the nodes of a cluster and its Redis.
pub struct Servers {
    pub nodes: Vec<Server>,
    pub redis: Option<PrivateRedis>,
}

/// A redis-server started here (keeping nothing on disk), which can be killed and started
/// again empty on the same port.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Result<Self, String> {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let mut redis = Self { port, child: None };
        redis.restart()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: what it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, empty) and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("redis-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Servers {
    pub fn start(target: &Target) -> Result<Self, String> {
        if target.nodes <= 1 && target.redis_url.is_none() {
            return Ok(Self { nodes: vec![Server::start(target, None)?], redis: None });
        }
        if !target.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
            return Err("cluster mode (--nodes, --redis-url) needs a postgres:// --database-url".into());
        }
        let (url, redis) = match &target.redis_url {
            Some(url) => (url.clone(), None),
            None => {
                let redis = PrivateRedis::start()?;
                (redis.url(), Some(redis))
            }
        };
        let mut servers = Self { nodes: Vec::new(), redis };
        for _ in 0..target.nodes.max(1) {
            servers.nodes.push(Server::start(target, Some(&url))?);
        }
        // Every node's subscription delivers before the load starts.
        std::thread::sleep(Duration::from_secs(2));
        Ok(servers)
    }

    pub fn first(&self) -> &Server {
        &self.nodes[0]
    }

    /// CPU seconds (user + system) used so far by each node, then by Redis when started here.
    pub fn cpu_seconds(&self) -> (Vec<f64>, Option<f64>) {
        let nodes = self.nodes.iter().map(|n| n.child.as_ref().and_then(|c| cpu_seconds(c.id())).unwrap_or(0.0));
        (nodes.collect(), self.redis.as_ref().and_then(PrivateRedis::pid).and_then(cpu_seconds))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.nodes.clear();
        if let Some(redis) = &mut self.redis {
            redis.kill();
        }
    }
}

/// utime + stime of a process, from /proc (Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

impl Server {
    /// One server (`redis`: as a node of a cluster).
    pub fn start(target: &Target, redis: Option<&str>) -> Result<Self, String> {
        if let Some(base) = &target.target {
            let secret = target.secret.clone().ok_or("--target needs --secret")?;
            return Ok(Self { base: base.trim_end_matches('/').to_owned(), secret, child: None, _data: None });
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.with_file_name("missive");
        if !bin.exists() {
            return Err(format!("{} not found: build it first (cargo build --release)", bin.display()));
        }
        let parent = target.data_parent.clone().unwrap_or_else(std::env::temp_dir);
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data = parent.join(format!("missive-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let mut cmd = match &target.server_cpus {
            Some(cpus) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", cpus]).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.env("MISSIVE_BIND", "127.0.0.1:0")
            .env("MISSIVE_DATA_DIR", &data)
            .env("MISSIVE_JWT_SECRET", SECRET)
            .env("MISSIVE_POST_RATE_PER_SEC", "100000000")
            .env("MISSIVE_POST_RATE_BURST", "100000000")
            .env("MISSIVE_MEMBERSHIP_RATE_PER_SEC", "100000000")
            .env("MISSIVE_MEMBERSHIP_RATE_BURST", "100000000")
            .env("MISSIVE_MAX_CONNECTIONS_PER_USER", "100000")
            .env("MISSIVE_OUTBOX_CAPACITY", "4096")
            .env("RUST_LOG", "warn,missive=info,missive::access=warn")
            .env("NO_COLOR", "1")
            .env_remove("MISSIVE_DATABASE_URL")
            .env_remove("DATABASE_URL");
        if let Some(url) = &target.database_url {
            cmd.env("MISSIVE_DATABASE_URL", url);
        }
        if let Some(url) = redis {
            cmd.env("MISSIVE_REDIS_URL", url);
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| "the server did not start".to_owned())?;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap_or_default().to_owned();
            }
        };
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Self { base: format!("http://{addr}"), secret: SECRET.to_owned(), child: Some(child), _data: Some(data) })
    }

    pub fn token(&self, user: &str) -> String {
        token(&self.secret, user)
    }

    /// The server's resident memory in bytes (only for a server we started).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/messaging", self.base.replacen("http", "ws", 1))
    }
}

pub fn token(secret: &str, user: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3 * 3600;
    let key = EncodingKey::from_secret(secret.as_bytes());
    encode(&Header::default(), &json!({"sub": user, "exp": exp}), &key).expect("HS256 signing cannot fail")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
        if let Some(data) = &self._data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

/// Creates a chat as `creator` with `others` and returns its id.
pub async fn create_chat(
    client: &awc::Client,
    server: &Server,
    creator: &str,
    others: &[String],
) -> Result<String, String> {
    let mut res = client
        .post(format!("{}/v1/messaging/chats", server.base))
        .bearer_auth(server.token(creator))
        .send_json(&json!({"participants": others}))
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = res.json().limit(16 << 20).await.map_err(|e| e.to_string())?;
    body["id"].as_str().map(str::to_owned).ok_or_else(|| format!("create chat failed: {body}"))
}
