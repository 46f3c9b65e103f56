//! `spawn_app`: the real application on port 0, in its own thread, with its own
//! database (a temp SQLite file, or a fresh PostgreSQL database), plus typed REST and
//! WebSocket clients. Every wait has a timeout.

use actix_web::http::StatusCode;
use awc::ws::{self, Frame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use missive::config::Settings;
use missive::startup::Application;

/// The HS256 secret every test server is started with.
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a server where a fresh database is created per test.
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Option<Self> {
        std::env::var("MISSIVE_TEST_POSTGRES_URL").ok().filter(|s| !s.is_empty()).map(Backend::Postgres)
    }
}

/// Declares each listed `async fn(Backend)` as a test on SQLite and on PostgreSQL. The
/// PostgreSQL ones are ignored (reported as such, never as passed) unless
/// MISSIVE_TEST_POSTGRES_URL was set when the tests were built (see build.rs).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await } )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                #[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
                async fn $name() {
                    let backend = $crate::helpers::Backend::postgres();
                    super::$name(backend.expect("MISSIVE_TEST_POSTGRES_URL, set at build time, is unset now")).await
                }
            )*
        }
    };
}

pub struct TestApp {
    pub port: u16,
    pub client: awc::Client,
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
    pg: Option<(String, String)>,
    settings: Settings,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the app with settings adjusted by `tweak`.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        jwt_secret: Some(SECRET.into()),
        workers: Some(2),
        ..Settings::default()
    };
    let pg = match &backend {
        Backend::Sqlite => {
            settings.database_url = Some(dir.path().join("test.db").to_string_lossy().into_owned());
            None
        }
        Backend::Postgres(admin) => {
            let name = format!("missive_t_{}", uuid::Uuid::new_v4().simple());
            admin_sql(admin.clone(), format!("CREATE DATABASE {name}"));
            settings.database_url = Some(with_database(admin, &name));
            Some((admin.clone(), name))
        }
    };
    tweak(&mut settings);
    let (port, stop, server) = start_server(settings.clone());
    let client = awc::Client::builder().timeout(WAIT).finish();
    TestApp { port, client, stop, server: Some(server), pg, settings, _dir: dir }
}

/// Runs the application in its own thread and runtime, so it is stopped (sockets
/// closed with 1001) when the TestApp drops, whatever the test's runtime does.
fn start_server(settings: Settings) -> (u16, CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (tx, rx) = std_mpsc::channel();
    let token = stop.clone();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(settings).await {
                Ok(app) => {
                    tx.send(Ok(app.port())).expect("test waits for the port");
                    app.run_until_stopped(token.cancelled_owned()).await.expect("server runs");
                }
                Err(e) => tx.send(Err(e.to_string())).expect("test waits for the error"),
            }
        })
    });
    let port = rx.recv_timeout(Duration::from_secs(60)).expect("server start").expect("server builds");
    (port, stop, server)
}

impl TestApp {
    /// Stops the server and starts a new one on the same database and data directory.
    pub fn restart(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.join().expect("server thread");
        }
        let (port, stop, server) = start_server(self.settings.clone());
        (self.port, self.stop, self.server) = (port, stop, Some(server));
    }
}

impl TestApp {
    /// Runs SQL on this test's own database, beside the server: for faults no request can
    /// cause (a trigger that makes the database refuse a write, say).
    pub fn sql(&self, sqlite: &str, postgres: &str) {
        match &self.pg {
            Some((admin, name)) => admin_sql(with_database(admin, name), postgres.to_owned()),
            None => {
                use diesel::{Connection, connection::SimpleConnection};
                let path = self.settings.database_url.clone().expect("a SQLite path");
                let mut conn = diesel::SqliteConnection::establish(&path).expect("open the test database");
                conn.batch_execute(sqlite).unwrap_or_else(|e| panic!("{sqlite}: {e}"));
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        if let Some((admin, name)) = self.pg.take() {
            admin_sql(admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs one statement on the PostgreSQL admin database, from a thread of its own
/// (callable from Drop and from inside a runtime).
pub fn admin_sql(admin: String, sql: String) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&admin).await.expect("connect to MISSIVE_TEST_POSTGRES_URL");
            conn.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .expect("admin statement");
}

pub fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Lifts every per-user and per-connection rate limit, for tests that post, send or act
/// a lot and are not about rates.
pub fn lift_rate_limits(s: &mut Settings) {
    const UNLIMITED: (u32, u32) = (1_000_000, 1_000_000);
    (s.post_rate_per_sec, s.post_rate_burst) = UNLIMITED;
    (s.ws_rate_per_sec, s.ws_rate_burst) = UNLIMITED;
    (s.typing_rate_per_sec, s.typing_rate_burst) = UNLIMITED;
    (s.read_rate_per_sec, s.read_rate_burst) = UNLIMITED;
    (s.edit_rate_per_sec, s.edit_rate_burst) = UNLIMITED;
    (s.membership_rate_per_sec, s.membership_rate_burst) = UNLIMITED;
}

/// The messages resource of a chat.
pub fn messages_path(chat: &str) -> String {
    format!("/v1/messaging/chats/{chat}/messages")
}

/// A token for `user` signed with the test secret, valid for an hour.
pub fn token(user: &str) -> String {
    token_with(json!({"sub": user, "exp": now_secs() + 3600}))
}

pub fn token_with(claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
}

pub fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/messaging{query}", self.port)
    }

    /// Sends a request as `user` (None: anonymous) and returns status and JSON body
    /// (`Value::Null` when the body is empty).
    pub async fn call(&self, method: &str, path: &str, user: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, body) = self.call_with_headers(method, path, user, body).await;
        (status, body)
    }

    /// Like `call`, with the response headers.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(user) = user {
            req = req.bearer_auth(token(user));
        }
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request completes");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        (res.status(), res.headers().clone(), json)
    }

    /// The stored messages of `chat` as `user` sees them (up to 200), ascending.
    pub async fn history(&self, user: &str, chat: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("{}?limit=200", messages_path(chat)), user).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["messages"].as_array().expect("messages array").clone()
    }

    pub async fn get(&self, path: &str, user: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(user), None).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(user), Some(body)).await
    }

    /// Creates a chat as `creator` and returns its id.
    pub async fn create_chat(&self, creator: &str, others: &[&str]) -> String {
        let (status, body) =
            self.post("/v1/messaging/chats", creator, json!({"participants": others, "name": "test"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("chat id").to_owned()
    }

    /// Posts `content` as `user` and returns the message.
    pub async fn send(&self, user: &str, chat: &str, content: &str) -> Value {
        let (status, body) =
            self.post(&format!("/v1/messaging/chats/{chat}/messages"), user, json!({"content": content})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Opens a WebSocket as `user` (token in the query) and reads the greeting.
    pub async fn ws(&self, user: &str) -> WsClient {
        let mut ws = self.ws_raw(&format!("?token={}", token(user))).await.expect("upgrade");
        let hello = ws.expect("connected").await;
        assert_eq!(hello["data"]["userId"], user);
        ws
    }

    /// Opens a WebSocket with the given query string; the error is the refused status.
    pub async fn ws_raw(&self, query: &str) -> Result<WsClient, awc::error::WsClientError> {
        self.ws_request(self.client.ws(self.ws_url(query))).await
    }

    pub async fn ws_request(&self, req: awc::ws::WebsocketsRequest) -> Result<WsClient, awc::error::WsClientError> {
        let (_res, framed) = tokio::time::timeout(WAIT, req.connect()).await.expect("upgrade in time")?;
        Ok(WsClient { framed, skip_presence: true })
    }
}

pub struct WsClient {
    framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    /// Presence events arrive whenever a contact connects; tests about other things
    /// skip them. Presence tests call `with_presence`.
    skip_presence: bool,
}

/// What the next frame was, control frames (pings) aside.
#[derive(Debug)]
pub enum Incoming {
    Event(Value),
    Closed(Option<ws::CloseReason>),
}

impl WsClient {
    /// Keeps `user-online` / `user-offline` events in the stream.
    pub fn with_presence(mut self) -> Self {
        self.skip_presence = false;
        self
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed.send(ws::Message::Text(text.to_owned().into())).await.expect("send frame");
    }

    pub async fn send_message(&mut self, msg: ws::Message) {
        self.framed.send(msg).await.expect("send frame");
    }

    /// The next text frame or close, answering pings on the way.
    pub async fn next_incoming(&mut self) -> Incoming {
        // One deadline for the whole wait: the server's pings must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .expect("an event or a close within the wait");
            match frame {
                None => return Incoming::Closed(None),
                Some(Err(e)) => panic!("websocket protocol error: {e}"),
                Some(Ok(Frame::Text(bytes))) => {
                    let event: Value = serde_json::from_slice(&bytes).expect("JSON frame");
                    let presence = matches!(event["event"].as_str(), Some("user-online" | "user-offline"));
                    if !(presence && self.skip_presence) {
                        return Incoming::Event(event);
                    }
                }
                Some(Ok(Frame::Ping(p))) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                // Answers to this client's own pings.
                Some(Ok(Frame::Pong(_))) => {}
                Some(Ok(Frame::Close(reason))) => return Incoming::Closed(reason),
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next event; panics on close.
    pub async fn next_event(&mut self) -> Value {
        match self.next_incoming().await {
            Incoming::Event(v) => v,
            Incoming::Closed(r) => panic!("connection closed: {r:?}"),
        }
    }

    /// The next event, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> Value {
        let event = self.next_event().await;
        assert_eq!(event["event"], name, "expected {name}, got {event}");
        event
    }

    /// Waits for the close frame and returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_incoming().await {
                Incoming::Closed(reason) => return reason.map(|r| u16::from(r.code)),
                Incoming::Event(_) => continue,
            }
        }
    }

    /// Asserts nothing was pushed: a `ping` round trip is a barrier, because the server
    /// sends queued events before it reads the next client frame.
    pub async fn expect_nothing_pending(&mut self) {
        self.send_json(json!({"event": "ping", "data": {}, "ref": "barrier"})).await;
        let event = self.next_event().await;
        assert_eq!(event["event"], "pong", "expected no event before the pong, got {event}");
        assert_eq!(event["ref"], "barrier");
    }

    pub async fn join(&mut self, chat: &str) -> Value {
        self.send_json(json!({"event": "join-chat", "data": {"chatId": chat}})).await;
        self.expect("chat-joined").await
    }

    pub async fn listen_all(&mut self) {
        self.send_json(json!({"event": "listen-all-chats", "data": {}})).await;
        self.expect("listening-all-chats").await;
    }
}

/// Opens a WebSocket to any URL (for servers not started by `spawn_app`) and reads the greeting.
pub async fn connect_ws(url: &str) -> WsClient {
    let client = awc::Client::builder().timeout(WAIT).finish();
    let (_res, framed) =
        tokio::time::timeout(WAIT, client.ws(url).connect()).await.expect("upgrade in time").expect("upgrade");
    let mut ws = WsClient { framed, skip_presence: true };
    ws.expect("connected").await;
    ws
}

/// Opens a WebSocket to any URL without reading the greeting (for refused connections).
#[allow(dead_code)] // the cluster suite's
pub async fn connect_ws_raw(url: &str) -> WsClient {
    let client = awc::Client::builder().timeout(WAIT).finish();
    let (_res, framed) =
        tokio::time::timeout(WAIT, client.ws(url).connect()).await.expect("upgrade in time").expect("upgrade");
    WsClient { framed, skip_presence: true }
}

/// Asserts an error response: exact status, exact code, a non-empty message, nothing else.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "only error and message: {body}");
}

/// Asserts `v` is `2026-11-22T10:00:00.123Z`: RFC 3339, UTC, with milliseconds.
#[track_caller]
pub fn assert_timestamp(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let shape: String = s.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{s}");
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"));
}

// ---- resume: joins with lastSeq and the history that backs them ----------------------

/// Sends `join-chat`, with `lastSeq` when given.
pub async fn send_join(ws: &mut WsClient, chat: &str, last_seq: Option<i64>) {
    let data = match last_seq {
        Some(seq) => json!({"chatId": chat, "lastSeq": seq}),
        None => json!({"chatId": chat}),
    };
    ws.send_json(json!({"event": "join-chat", "data": data})).await;
}

/// The messages after `after`, paged forward with `after=` until `hasMore` is false.
pub async fn history_after(app: &TestApp, chat: &str, user: &str, after: i64) -> Vec<Value> {
    let mut history: Vec<Value> = Vec::new();
    let mut after = after;
    loop {
        let path = format!("/v1/messaging/chats/{chat}/messages?after={after}&limit=200");
        let (status, page) = app.get(&path, user).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let messages = page["messages"].as_array().expect("messages array");
        history.extend(messages.iter().cloned());
        if !page["hasMore"].as_bool().expect("hasMore") {
            return history;
        }
        assert!(!messages.is_empty(), "hasMore with an empty page after {after}");
        after = seq_of(messages.last().unwrap());
    }
}

/// The chat's `lastSeq` as REST reports it.
pub async fn last_seq_of(app: &TestApp, chat: &str, user: &str) -> i64 {
    let (status, body) = app.get(&format!("/v1/messaging/chats/{chat}"), user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["lastSeq"].as_i64().expect("lastSeq")
}

pub fn seq_of(message: &Value) -> i64 {
    message["seq"].as_i64().unwrap_or_else(|| panic!("a message with a seq: {message}"))
}
