//! Slow consumers (PROTOCOL.md §4 close codes, §6): a client that completes the upgrade
//! and then stops reading is closed with 4009 once its bounded outbox is full, within a
//! bounded time; the other clients' deliveries go on meanwhile; what the server ever holds
//! for it stays bounded; and it resumes with `lastSeq` losing nothing.
//!
//! The slow client is a raw TCP socket speaking just enough WebSocket (a masked text frame
//! out, unmasked frames in), so nothing reads on its behalf.

use actix_web::http::StatusCode;
use futures_util::future::{join, join_all, join3};
use serde_json::{Value, json};
use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::lift_rate_limits;
use crate::helpers::{Backend, TestApp, WAIT, WsClient, spawn_app_with, token};
use crate::helpers::{send_join, seq_of};
use crate::process::{Server, missive, start_with, token_for};
use crate::raw_ws::{RawWs, memory_kib};

crate::both_backends!(
    a_client_that_stops_reading_is_closed_with_4009_while_others_get_everything_and_its_backlog_stays_bounded,
);

/// Frames queued per connection before it counts as a slow consumer.
const OUTBOX: usize = 16;
/// actix-ws queues this many frames between the session and the HTTP dispatcher.
const ACTIX_WS_CHANNEL: usize = 32;
/// actix-http stops pulling the body once its write buffer holds this much (32 KiB default).
const H1_WRITE_BUFFER: usize = 32 * 1024;
/// A generous cap on the wait for the kill (a loaded CI machine posts slowly); the tight
/// bound is on the count: the kill comes with the message that overflows the outbox.
const KILL_WITHIN: Duration = Duration::from_secs(30);
/// Messages the posters may get acknowledged between the kill and the test seeing it.
const DETECTION_LAG: usize = 16;

/// The most `new-message` frames that can ever reach a client that stopped reading:
/// its outbox, the frame the session is writing, actix-ws's channel, then bytes: the
/// dispatcher's write buffer, the server's socket send buffer (at most `tcp_wmem` max) and
/// the client's receive buffer. Anything beyond that overflows the outbox and kills it.
fn backlog_bound(frame_bytes: usize, rcvbuf: usize) -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 * 1024 * 1024);
    let bytes = H1_WRITE_BUFFER + wmem_max + rcvbuf;
    OUTBOX + 1 + ACTIX_WS_CHANNEL + bytes.div_ceil(frame_bytes) + 1
}

/// A message body of exactly `chars` ASCII characters, tagged with `n`.
fn filler(n: usize, chars: usize) -> String {
    let mut content = format!("message {n:06} ");
    content.extend(std::iter::repeat_n('x', chars - content.len()));
    content
}

/// The messages posted: about 29 MiB, some seven times what the kernel alone can buffer.
const TOTAL: usize = 500;
const POSTERS: usize = 2;
/// Large messages keep the frame bound small; the frame stays under the 64 KiB the test
/// client accepts.
const CONTENT_CHARS: usize = 60_000;
/// The slow client's resume replays one page, then is told to resync from REST.
const REPLAY_LIMIT: usize = 100;

async fn is_online(app: &TestApp, chat: &str, user: &str) -> bool {
    let (status, presence) = app.get(&format!("/v1/messaging/chats/{chat}/presence"), "alice").await;
    assert_eq!(status, StatusCode::OK, "{presence}");
    presence["online"].as_array().expect("online").iter().any(|u| u == user)
}

/// Reads presence events until the one for `user`, ignoring other users'.
async fn expect_presence(ws: &mut WsClient, event: &str, user: &str) -> Value {
    loop {
        let e = ws.next_event().await;
        assert!(matches!(e["event"].as_str(), Some("user-online" | "user-offline")), "{e}");
        if e["event"] == event && e["data"]["userId"] == user {
            return e;
        }
    }
}

async fn a_client_that_stops_reading_is_closed_with_4009_while_others_get_everything_and_its_backlog_stays_bounded(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.outbox_capacity = OUTBOX;
        s.max_message_chars = CONTENT_CHARS;
        s.replay_limit = REPLAY_LIMIT;
        // The resume at the end checks the limit in messages: 100 of these 60 KB messages
        // are past the default byte limit of a replay.
        s.replay_max_bytes = 64 * 1024 * 1024;
        lift_rate_limits(s);
    })
    .await;
    let posters: Vec<String> = (0..POSTERS).map(|i| format!("poster-{i}")).collect();
    let mut members: Vec<&str> = posters.iter().map(String::as_str).collect();
    members.extend(["fast", "slow", "watcher"]);
    let chat = app.create_chat("alice", &members).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");

    let mut fast = app.ws("fast").await;
    fast.join(&chat).await;
    let mut watcher = app.ws("watcher").await.with_presence();

    // The slow client joins the chat (reading the replies), then never reads again.
    let mut slow = RawWs::connect(&format!("127.0.0.1:{}", app.port), &token("slow")).await;
    assert_eq!(slow.next_event().await["event"], "connected");
    slow.send_text(&json!({"event": "join-chat", "data": {"chatId": chat}}).to_string()).await;
    let joined = slow.next_event().await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": 0}), "{joined}");
    expect_presence(&mut watcher, "user-online", "slow").await;
    assert!(is_online(&app, &chat, "slow").await);

    let posted = Cell::new(0usize);
    let started = Instant::now();
    let post_all = join_all(posters.iter().enumerate().map(|(i, poster)| {
        let (app, path, posted) = (&app, &path, &posted);
        async move {
            for n in (i..TOTAL).step_by(POSTERS) {
                let (status, body) = app.post(path, poster, json!({"content": filler(n, CONTENT_CHARS)})).await;
                assert_eq!(status, StatusCode::CREATED, "{poster} #{n}: {body}");
                posted.set(posted.get() + 1);
            }
        }
    }));
    // The fast client reads everything, in order, while the slow one is choked and killed.
    let fast_got = Cell::new(0usize);
    let fast_reads = async {
        let mut seqs = Vec::with_capacity(TOTAL);
        while seqs.len() < TOTAL {
            let event = fast.expect("new-message").await;
            seqs.push(seq_of(&event["data"]["message"]));
            fast_got.set(seqs.len());
        }
        seqs
    };
    let observe_the_kill = async {
        // Unregistered at once when killed (its close frame waits behind the unread data).
        while is_online(&app, &chat, "slow").await {
            assert!(started.elapsed() < KILL_WITHIN, "slow client still online after {KILL_WITHIN:?}");
        }
        let killed = (posted.get(), fast_got.get(), started.elapsed());
        // Only now does the slow client read: what was buffered for it, then the close.
        let drained = slow.drain_until_close().await;
        (killed, drained)
    };
    let (_, fast_seqs, ((posted_at_kill, fast_at_kill, kill_time), (slow_seqs, slow_texts, close_code))) =
        join3(post_all, fast_reads, observe_the_kill).await;
    let offline = expect_presence(&mut watcher, "user-offline", "slow").await;
    let frame_bytes = CONTENT_CHARS + 300;
    let bound = backlog_bound(frame_bytes, slow.rcvbuf);
    eprintln!(
        "slow client closed with {close_code:?} {kill_time:?} after posting began ({posted_at_kill} of {TOTAL} posted, \
         {fast_at_kill} received by the fast client); it got {} new-message frames ({slow_texts} text frames) before the close; bound {bound}; rcvbuf {}",
        slow_seqs.len(),
        slow.rcvbuf
    );

    // (1) Closed with 4009 as soon as its outbox overflowed: what it got, plus a full
    // outbox, plus the frame being written, plus the one that did not fit.
    assert_eq!(close_code, Some(4009), "the slow consumer's close code");
    let overflow_at = slow_seqs.len() + OUTBOX + 2;
    assert!(
        posted_at_kill <= overflow_at + DETECTION_LAG,
        "killed only after {posted_at_kill} posts; its outbox overflowed by message {overflow_at}"
    );
    assert!(kill_time < KILL_WITHIN, "killed {kill_time:?} after posting began");
    assert_eq!(offline["data"]["userId"], "slow");
    // (2) Everyone else got every message, in order, and kept getting them while the slow
    // client was stuck: by the kill, the fast client had at least what the slow one ever got.
    assert!(fast_at_kill >= slow_seqs.len(), "by the kill the fast client had only {fast_at_kill} messages");
    assert_eq!(fast_seqs, (1..=TOTAL as i64).collect::<Vec<_>>(), "the fast client got every seq once, in order");
    fast.expect_nothing_pending().await;
    // (3) What the slow client could ever be sent is bounded, far below what was posted,
    // and what it got has no gap.
    assert_eq!(slow_seqs, (1..=slow_seqs.len() as i64).collect::<Vec<_>>(), "the slow client's frames are in order");
    assert!(slow_seqs.len() <= bound, "{} frames reached the slow client, bound {bound}", slow_seqs.len());
    assert!(bound * 4 < TOTAL, "the bound {bound} is not far below the {TOTAL} posted");

    // It resumes with lastSeq and loses nothing: the replay starts right after what it
    // got, and past the replay limit REST history holds the rest.
    let mut again = app.ws("slow").await;
    let held = slow_seqs.len() as i64;
    send_join(&mut again, &chat, Some(held)).await;
    for expected in held + 1..=held + REPLAY_LIMIT as i64 {
        let event = again.expect("new-message").await;
        assert_eq!(seq_of(&event["data"]["message"]), expected);
    }
    let joined = again.expect("chat-joined").await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": TOTAL, "resync": true}));
    again.expect_nothing_pending().await;
}

// ---- the real binary: the server's memory while a slow consumer is blasted -------------

/// Message content posted in the binary variant: 64 MiB in all, in messages of 64 KiB;
/// were it queued for the slow client, the server would grow by about as much.
const BIG_CHARS: usize = 64 * 1024;
const BIG_TOTAL: usize = 1024;
const BIG_POSTERS: usize = 3;
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// The binary with a small outbox, large messages allowed and no posting limit.
fn start_server(data_dir: &Path) -> Server {
    let mut cmd = missive(data_dir);
    cmd.env("MISSIVE_OUTBOX_CAPACITY", OUTBOX.to_string())
        .env("MISSIVE_MAX_MESSAGE_CHARS", BIG_CHARS.to_string())
        .env("MISSIVE_POST_RATE_PER_SEC", "1000000")
        .env("MISSIVE_POST_RATE_BURST", "1000000");
    start_with(cmd)
}

/// REST calls to the binary as one user.
struct Rest {
    client: awc::Client,
    base: String,
    token: String,
}

impl Rest {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request completes");
        let bytes = res.body().limit(1 << 20).await.expect("body");
        (res.status(), serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    }

    /// Posts message `n`; the 201 body is not parsed (the server is the one being measured).
    async fn post_message(&self, path: &str, n: usize) {
        let req = self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token);
        let mut res = req.send_json(&json!({"content": filler(n, BIG_CHARS)})).await.expect("request completes");
        let body = res.body().limit(1 << 20).await.expect("body");
        assert_eq!(res.status(), StatusCode::CREATED, "#{n}: {}", String::from_utf8_lossy(&body));
    }

    async fn is_online(&self, chat: &str, user: &str) -> bool {
        let (status, body) = self.call("GET", &format!("/v1/messaging/chats/{chat}/presence"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["online"].as_array().expect("online").iter().any(|u| u == user)
    }
}

#[actix_web::test]
async fn the_servers_memory_stays_bounded_while_a_client_that_stopped_reading_is_sent_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let pid = server.pid;
    let (alice, slow_token) = (token_for(dir.path(), "alice"), token_for(dir.path(), "slow"));
    let rest = Rest {
        client: awc::Client::builder().timeout(WAIT).finish(),
        base: format!("http://{}", server.addr),
        token: alice.clone(),
    };
    let (status, created) =
        rest.call("POST", "/v1/messaging/chats", Some(json!({"participants": ["slow"], "name": "blast"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let chat = created["id"].as_str().expect("chat id").to_owned();

    let mut slow = RawWs::connect(&server.addr, &slow_token).await;
    assert_eq!(slow.next_event().await["event"], "connected");
    slow.send_text(&json!({"event": "join-chat", "data": {"chatId": chat}}).to_string()).await;
    assert_eq!(slow.next_event().await["event"], "chat-joined");
    assert!(rest.is_online(&chat, "slow").await);
    // Warm up the allocator and the database with a few posts before the baseline.
    let path = format!("/v1/messaging/chats/{chat}/messages");
    for n in 0..4 {
        rest.post_message(&path, n).await;
    }
    let (rss_before, _) = memory_kib(pid);

    let posted = Cell::new(0usize);
    let started = Instant::now();
    let post_all = join_all((0..BIG_POSTERS).map(|i| {
        let (rest, path, posted) = (&rest, &path, &posted);
        async move {
            for n in (4 + i..BIG_TOTAL).step_by(BIG_POSTERS) {
                rest.post_message(path, n).await;
                posted.set(posted.get() + 1);
            }
        }
    }));
    let observe_the_kill = async {
        while rest.is_online(&chat, "slow").await {
            assert!(started.elapsed() < KILL_WITHIN, "slow client still online after {KILL_WITHIN:?}");
        }
        let killed = (posted.get(), started.elapsed());
        (killed, slow.drain_until_close().await)
    };
    let (_, ((posted_at_kill, kill_time), (slow_seqs, _, close_code))) = join(post_all, observe_the_kill).await;
    let blasted_mib = (BIG_TOTAL * BIG_CHARS) as f64 / (1024.0 * 1024.0);
    let (rss_after, peak) = memory_kib(pid);
    eprintln!(
        "binary: {blasted_mib:.0} MiB posted in {:?}; slow client closed with {close_code:?} after {kill_time:?} \
         ({posted_at_kill} posted), it got {} frames; RSS {rss_before} KiB -> {rss_after} KiB, peak {peak} KiB",
        started.elapsed(),
        slow_seqs.len()
    );
    assert!(blasted_mib >= 2.0 * RSS_GROWTH_LIMIT_KIB as f64 / 1024.0);
    assert_eq!(close_code, Some(4009), "the slow consumer's close code");
    let bound = backlog_bound(BIG_CHARS + 300, slow.rcvbuf);
    assert!(slow_seqs.len() <= bound, "{} frames reached the slow client, bound {bound}", slow_seqs.len());
    let growth = peak.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_LIMIT_KIB,
        "the server's peak RSS grew by {growth} KiB (limit {RSS_GROWTH_LIMIT_KIB} KiB) while {blasted_mib:.0} MiB were posted"
    );
}
