//! A cluster for one test: a fresh PostgreSQL database, a private Redis on a free port,
//! and N `missive` processes sharing both.

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{SECRET, WAIT, WsClient, admin_sql, connect_ws, token, with_database};
use crate::process::{self, Server};

/// Test timings: a node's heartbeat, the gap wait, and how long a silent node lives.
pub const HEARTBEAT_MS: u64 = 250;
pub const GAP_WAIT_MS: u64 = 100;
pub const NODE_TIMEOUT_MS: u64 = 2_000;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// A `redis-server` of this test's own, keeping nothing on disk (like the shared one).
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self { port: free_port(), child: None };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: what it held is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < WAIT, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Node {
    pub server: Server,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Opens a WebSocket as `user` and reads the greeting.
    pub async fn ws(&self, user: &str) -> WsClient {
        connect_ws(&format!("ws://{}/messaging?token={}", self.server.addr, token(user))).await
    }

    pub async fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (StatusCode, Value) {
        let client = awc::Client::builder().timeout(WAIT).finish();
        let url = format!("{}{path}", self.base());
        let req = match method {
            "POST" => client.post(url),
            "DELETE" => client.delete(url),
            "PATCH" => client.patch(url),
            _ => client.get(url),
        }
        .bearer_auth(token(user));
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        (res.status(), value)
    }

    /// The sum of a counter's samples in `/metrics` (0 when it was never incremented).
    pub async fn metric(&self, name: &str) -> f64 {
        let client = awc::Client::builder().timeout(WAIT).finish();
        let mut res = client.get(format!("{}/metrics", self.base())).send().await.expect("metrics");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn create_chat(&self, creator: &str, others: &[&str]) -> String {
        let (status, body) =
            self.call("POST", "/v1/messaging/chats", creator, Some(json!({"participants": others}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("chat id").to_owned()
    }

    pub async fn send(&self, user: &str, chat: &str, content: &str) -> Value {
        let path = format!("/v1/messaging/chats/{chat}/messages");
        let (status, body) = self.call("POST", &path, user, Some(json!({"content": content}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

pub struct Cluster {
    pub redis: Redis,
    pub nodes: Vec<Node>,
    admin: String,
    db: String,
}

impl Cluster {
    /// `n` nodes; `env(i)` adds variables to node `i` (fault hooks).
    pub fn start(n: usize, env: impl Fn(usize) -> Vec<(&'static str, String)>) -> Self {
        let admin = std::env::var("MISSIVE_TEST_POSTGRES_URL").expect("MISSIVE_TEST_POSTGRES_URL");
        let db = format!("missive_c_{}", uuid::Uuid::new_v4().simple());
        admin_sql(admin.clone(), format!("CREATE DATABASE {db}"));
        let redis = Redis::start();
        let mut cluster = Self { redis, nodes: Vec::new(), admin, db };
        for i in 0..n {
            let node = cluster.node(env(i));
            cluster.nodes.push(node);
        }
        cluster
    }

    pub fn database_url(&self) -> String {
        with_database(&self.admin, &self.db)
    }

    /// Starts one more node on this cluster's database and Redis.
    pub fn node(&self, extra: Vec<(&'static str, String)>) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = process::missive(dir.path());
        cmd.env("MISSIVE_DATABASE_URL", self.database_url())
            .env("MISSIVE_REDIS_URL", self.redis.url())
            .env("MISSIVE_JWT_SECRET", SECRET)
            .env("MISSIVE_WORKERS", "2")
            .env("MISSIVE_DB_POOL_SIZE", "4")
            .env("MISSIVE_CLUSTER_HEARTBEAT_MS", HEARTBEAT_MS.to_string())
            .env("MISSIVE_CLUSTER_GAP_WAIT_MS", GAP_WAIT_MS.to_string())
            .env("MISSIVE_CLUSTER_NODE_TIMEOUT_MS", NODE_TIMEOUT_MS.to_string())
            .env("MISSIVE_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn,missive=info");
        for key in ["POST", "WS", "TYPING", "READ", "EDIT", "MEMBERSHIP"] {
            cmd.env(format!("MISSIVE_{key}_RATE_PER_SEC"), "1000000");
            cmd.env(format!("MISSIVE_{key}_RATE_BURST"), "1000000");
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let server = process::start_with(cmd);
        Node { server, _dir: dir }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        admin_sql(self.admin.clone(), format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
    }
}

/// Waits until every node's subscription delivers (its own heartbeats come back), so a
/// test's first event is not published before another node listens.
pub async fn until_ready(cluster: &Cluster) {
    for node in &cluster.nodes {
        until_broker_ok(node).await;
    }
}

pub async fn until_broker_ok(node: &Node) {
    let started = Instant::now();
    loop {
        let (status, body) = node.call("GET", "/readyz", "alice", None).await;
        if status == StatusCode::OK && body["broker"] == "ok" {
            return;
        }
        assert!(started.elapsed() < WAIT, "the broker never became ok: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins `chat`. A `chat-created` of it may come first: committed before this socket
/// opened, its envelope can reach this node after.
pub async fn join(ws: &mut WsClient, chat: &str) {
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat}})).await;
    loop {
        let event = ws.next_event().await;
        match event["event"].as_str() {
            Some("chat-joined") => return,
            Some("chat-created") if event["data"]["chat"]["id"] == chat => {}
            _ => panic!("expected chat-joined, got {event}"),
        }
    }
}

/// Waits until the node reports its broker degraded (Redis unreachable).
pub async fn until_degraded(node: &Node) {
    let started = Instant::now();
    loop {
        let (status, body) = node.call("GET", "/readyz", "alice", None).await;
        assert_eq!(status, StatusCode::OK, "a degraded node stays ready: {body}");
        if body["broker"] == "degraded" {
            return;
        }
        assert!(started.elapsed() < WAIT, "never degraded: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `new-message` frames of `chat` until `count` arrived; other events are skipped
/// (`resync` without `rejoin` among them: messages keep flowing). Returns their seqs in
/// arrival order.
pub async fn collect_seqs(ws: &mut WsClient, chat: &str, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.len() < count {
        let event = ws.next_event().await;
        if event["event"] == "new-message" && event["data"]["chatId"] == chat {
            seqs.push(event["data"]["message"]["seq"].as_i64().expect("seq"));
        }
        assert!(!(event["event"] == "resync" && event["data"]["rejoin"] == true), "unexpected rejoin: {event}");
    }
    seqs
}

/// Every event pushed before a `ping` round trip (the server sends what is queued before it
/// reads the next client frame), in order.
pub async fn pending_events(ws: &mut WsClient) -> Vec<Value> {
    ws.send_json(json!({"event": "ping", "data": {}, "ref": "barrier"})).await;
    let mut events = Vec::new();
    loop {
        let event = ws.next_event().await;
        if event["event"] == "pong" && event["ref"] == "barrier" {
            return events;
        }
        events.push(event);
    }
}

/// Asserts `seqs` is exactly `from..=to`, in order.
#[track_caller]
pub fn assert_in_order(seqs: &[i64], from: i64, to: i64) {
    let expected: Vec<i64> = (from..=to).collect();
    assert_eq!(seqs, expected.as_slice(), "gap, duplicate or disorder");
}
