//! Resume under churn (PROTOCOL.md §6): followers are disconnected at random moments,
//! some in the middle of a replay, hundreds of times, while posters keep posting. Each
//! follower resumes every chat it follows with its own last seen `seq` (paging REST
//! history when a join answers `resync: true`). At the end every follower holds exactly
//! the full sequence of every chat it follows: no gap, no duplicate.

use actix_web::http::StatusCode;
use futures_util::future::{join, join_all};
use serde_json::{Value, json};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::lift_rate_limits;
use crate::helpers::{Backend, Incoming, TestApp, WAIT, WsClient, spawn_app_with, token};
use crate::helpers::{history_after, last_seq_of, send_join, seq_of};

crate::both_backends!(followers_disconnected_hundreds_of_times_mid_replay_end_up_with_every_seq_exactly_once);

const CHATS: usize = 3;
const POSTERS: usize = 4;
/// Each poster posts at least this many messages, and goes on (up to the maximum) until
/// the followers were cut off `MIN_DISCONNECTS` times, so the churn happens while posting.
const MIN_POSTS_PER_POSTER: usize = 50;
const MAX_POSTS_PER_POSTER: usize = 500;
const FOLLOWERS: usize = 8;
/// The chats (indexes) each follower follows.
const FOLLOWS: [&[usize]; FOLLOWERS] = [&[0], &[1], &[2], &[0, 1], &[1, 2], &[0, 2], &[0, 1, 2], &[0, 1, 2]];
const MIN_DISCONNECTS: usize = 500;
/// Small, so that followers who fall behind get truncated replays (`resync: true`).
const REPLAY_LIMIT: usize = 10;
/// Most frames a follower reads on one connection before it is cut off.
const MAX_READS: u64 = 25;
/// A follower that waits this long for a frame gives up on the connection (it is cut off).
const IDLE: Duration = Duration::from_millis(100);
/// The whole test must finish well under a minute.
const BUDGET: Duration = Duration::from_secs(45);

/// xorshift64*: deterministic decisions from a fixed seed, no extra crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Stats {
    /// Connections the follower dropped on purpose.
    forced_disconnects: usize,
    /// ... while posters were still posting.
    during_posting: usize,
    /// ... while a `join-chat` was sent and its `chat-joined` had not arrived.
    with_join_unanswered: usize,
    /// ... after part of a replay had arrived but before its `chat-joined`.
    mid_replay: usize,
    /// Joins answered with `resync: true` (the follower then paged REST).
    resyncs: usize,
    /// Joins that replayed at least one message.
    replays: usize,
    /// Posts answered 503 (database busy) and retried with the same clientMessageId.
    posts_retried_after_503: usize,
    /// Closes the follower did not ask for, by close code (treated as disconnects to resume from).
    unexpected_closes: BTreeMap<String, usize>,
}

/// What one follower holds, per followed chat: (seq, message id) in arrival order.
struct Follower {
    name: String,
    /// Indexes into the chats.
    follows: &'static [usize],
    held: Vec<Vec<(i64, String)>>,
    rng: Rng,
    /// First protocol violations seen on the way (a gap or duplicate, a wrong `lastSeq`).
    violations: Vec<String>,
}

impl Follower {
    fn have(&self, slot: usize) -> i64 {
        self.held[slot].last().map_or(0, |(seq, _)| *seq)
    }

    fn slot_of(&self, chats: &[String], chat_id: &Value) -> Option<usize> {
        let index = chats.iter().position(|c| chat_id == c.as_str())?;
        self.follows.iter().position(|&f| f == index)
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    fn take(&mut self, slot: usize, message: &Value) {
        let seq = seq_of(message);
        let have = self.have(slot);
        if seq != have + 1 {
            let chat = self.follows[slot];
            self.violation(format!("{} chat {chat}: got seq {seq} after {have}", self.name));
        }
        self.held[slot].push((seq, message["id"].as_str().expect("message id").to_owned()));
    }
}

/// One connection's view of its joins: `Some(replayed so far)` until `chat-joined`.
type Pending = Vec<Option<usize>>;

/// Handles one event of a follower's connection.
async fn on_event(
    app: &TestApp,
    chats: &[String],
    f: &mut Follower,
    pending: &mut Pending,
    stats: &RefCell<Stats>,
    event: Value,
) {
    let Some(slot) = f.slot_of(chats, &event["data"]["chatId"]) else {
        f.violation(format!("{}: event for a chat it did not join: {event}", f.name));
        return;
    };
    match event["event"].as_str() {
        Some("new-message") => {
            if let Some(replayed) = pending[slot].as_mut() {
                *replayed += 1;
            }
            f.take(slot, &event["data"]["message"]);
        }
        Some("chat-joined") => {
            if pending[slot].take().is_some_and(|replayed| replayed > 0) {
                stats.borrow_mut().replays += 1;
            }
            let last = event["data"]["lastSeq"].as_i64().expect("lastSeq");
            let have = f.have(slot);
            if event["data"]["resync"] == true {
                // The replay stopped at the limit: page the rest up to `lastSeq` over REST;
                // what comes after it arrives live.
                stats.borrow_mut().resyncs += 1;
                let chat = &chats[f.follows[slot]];
                let rest = history_after(app, chat, &f.name, have).await;
                for message in rest.iter().filter(|m| seq_of(m) <= last) {
                    f.take(slot, message);
                }
                if f.have(slot) != last {
                    let held = f.have(slot);
                    f.violation(format!("{}: after a resync to {last} and REST paging it holds {held}", f.name));
                }
            } else if last != have {
                f.violation(format!("{}: chat-joined says lastSeq {last} but the follower holds {have}", f.name));
            }
        }
        _ => f.violation(format!("{}: unexpected event {event}", f.name)),
    }
}

/// Opens a connection; `None` (counted) when the server closes it before the greeting.
async fn connect(app: &TestApp, user: &str, stats: &RefCell<Stats>) -> Option<WsClient> {
    let mut ws = app.ws_raw(&format!("?token={}", token(user))).await.expect("upgrade");
    match ws.next_incoming().await {
        Incoming::Event(hello) => {
            assert_eq!(hello["event"], "connected", "{hello}");
            Some(ws)
        }
        Incoming::Closed(reason) => {
            *stats.borrow_mut().unexpected_closes.entry(format!("{reason:?}")).or_default() += 1;
            None
        }
    }
}

/// One life of a connection: connect, resume some followed chats, read a random number of
/// frames (sometimes none, so the cut lands in the middle of a replay), then cut it.
async fn churn_once(app: &TestApp, chats: &[String], f: &mut Follower, stats: &RefCell<Stats>, posting: &Cell<bool>) {
    let Some(mut ws) = connect(app, &f.name, stats).await else { return };
    let mut pending: Pending = vec![None; f.follows.len()];
    for slot in 0..f.follows.len() {
        // Sometimes a followed chat is left out, so the follower falls behind on it and a
        // later join goes past the replay limit.
        if f.rng.below(3) != 0 {
            send_join(&mut ws, &chats[f.follows[slot]], Some(f.have(slot))).await;
            pending[slot] = Some(0);
        }
    }
    let reads = if f.rng.below(4) == 0 { 0 } else { 1 + f.rng.below(MAX_READS) };
    for _ in 0..reads {
        match tokio::time::timeout(IDLE, ws.next_incoming()).await {
            Err(_idle) => break,
            Ok(Incoming::Event(event)) => on_event(app, chats, f, &mut pending, stats, event).await,
            Ok(Incoming::Closed(reason)) => {
                *stats.borrow_mut().unexpected_closes.entry(format!("{reason:?}")).or_default() += 1;
                return;
            }
        }
    }
    drop(ws);
    let mut stats = stats.borrow_mut();
    stats.forced_disconnects += 1;
    stats.during_posting += usize::from(posting.get());
    stats.with_join_unanswered += usize::from(pending.iter().any(Option::is_some));
    stats.mid_replay += usize::from(pending.iter().any(|p| p.is_some_and(|replayed| replayed > 0)));
}

/// The last reconnect: resume every followed chat and read until it holds each chat's
/// final `lastSeq`; an unexpected close is resumed from like any other.
async fn catch_up(app: &TestApp, chats: &[String], f: &mut Follower, last: &[i64], stats: &RefCell<Stats>) {
    let deadline = Instant::now() + WAIT;
    'connection: loop {
        assert!(Instant::now() < deadline, "{} did not catch up in {WAIT:?}", f.name);
        let Some(mut ws) = connect(app, &f.name, stats).await else { continue };
        let mut pending: Pending = vec![Some(0); f.follows.len()];
        for slot in 0..f.follows.len() {
            send_join(&mut ws, &chats[f.follows[slot]], Some(f.have(slot))).await;
        }
        let done = |f: &Follower, pending: &Pending| {
            pending.iter().all(Option::is_none)
                && f.follows.iter().enumerate().all(|(slot, &chat)| f.have(slot) >= last[chat])
        };
        while !done(f, &pending) {
            assert!(Instant::now() < deadline, "{} did not catch up in {WAIT:?}", f.name);
            match ws.next_incoming().await {
                Incoming::Event(event) => on_event(app, chats, f, &mut pending, stats, event).await,
                Incoming::Closed(reason) => {
                    *stats.borrow_mut().unexpected_closes.entry(format!("{reason:?}")).or_default() += 1;
                    continue 'connection;
                }
            }
        }
        // Nothing more is on its way: no duplicate after the end.
        ws.expect_nothing_pending().await;
        return;
    }
}

async fn followers_disconnected_hundreds_of_times_mid_replay_end_up_with_every_seq_exactly_once(backend: Backend) {
    let started = Instant::now();
    let app = spawn_app_with(backend.clone(), |s| {
        s.replay_limit = REPLAY_LIMIT;
        lift_rate_limits(s);
    })
    .await;
    let posters: Vec<String> = (0..POSTERS).map(|i| format!("poster-{i}")).collect();
    let mut followers: Vec<Follower> = FOLLOWS
        .iter()
        .enumerate()
        .map(|(i, &follows)| Follower {
            name: format!("follower-{i}"),
            follows,
            held: vec![Vec::new(); follows.len()],
            rng: Rng::new(1000 + i as u64),
            violations: Vec::new(),
        })
        .collect();
    let mut chats = Vec::with_capacity(CHATS);
    for chat in 0..CHATS {
        let mut members: Vec<&str> = posters[1..].iter().map(String::as_str).collect();
        members.extend(followers.iter().filter(|f| f.follows.contains(&chat)).map(|f| f.name.as_str()));
        chats.push(app.create_chat(&posters[0], &members).await);
    }

    let posting = Cell::new(true);
    let stats = RefCell::new(Stats::default());
    let post_all = async {
        let t = Instant::now();
        let posted = join_all(posters.iter().enumerate().map(|(i, poster)| {
            let (app, chats, stats) = (&app, &chats, &stats);
            async move {
                let mut rng = Rng::new(7 + i as u64);
                let mut n = 0;
                while n < MIN_POSTS_PER_POSTER
                    || (stats.borrow().forced_disconnects < MIN_DISCONNECTS && n < MAX_POSTS_PER_POSTER)
                {
                    let chat = &chats[rng.below(CHATS as u64) as usize];
                    let path = format!("/v1/messaging/chats/{chat}/messages");
                    let post = json!({"content": format!("{poster} #{n}"), "clientMessageId": format!("{poster}-{n}")});
                    // 503 means nothing was written and to retry later (PROTOCOL.md §1); the
                    // clientMessageId makes the retry safe. Counted and reported.
                    for attempt in 1.. {
                        let (status, body) = app.post(&path, poster, post.clone()).await;
                        if status == StatusCode::SERVICE_UNAVAILABLE && attempt < 5 {
                            stats.borrow_mut().posts_retried_after_503 += 1;
                            continue;
                        }
                        assert_eq!(status, StatusCode::CREATED, "{poster} #{n} (attempt {attempt}): {body}");
                        break;
                    }
                    n += 1;
                }
                n
            }
        }))
        .await;
        posting.set(false);
        (posted.iter().sum::<usize>(), t.elapsed())
    };
    let churn_all = join_all(followers.iter_mut().map(|f| {
        let (app, chats, stats, posting) = (&app, &chats, &stats, &posting);
        async move {
            while posting.get() || stats.borrow().forced_disconnects < MIN_DISCONNECTS {
                assert!(started.elapsed() < BUDGET, "churn over budget: {:?}", stats.borrow());
                churn_once(app, chats, f, stats, posting).await;
            }
        }
    }));
    let ((posted, posting_took), _) = join(post_all, churn_all).await;

    // Posting is over: every follower resumes one last time and catches up.
    let mut last = Vec::with_capacity(CHATS);
    let mut history = Vec::with_capacity(CHATS);
    for chat in &chats {
        last.push(last_seq_of(&app, chat, &posters[0]).await);
        history.push(history_after(&app, chat, &posters[0], 0).await);
    }
    assert_eq!(last.iter().sum::<i64>(), posted as i64, "every post got a seq: {last:?}");
    join_all(followers.iter_mut().map(|f| catch_up(&app, &chats, f, &last, &stats))).await;
    let took = started.elapsed();

    let stats = stats.into_inner();
    eprintln!("{backend:?}: {posted} posts into {CHATS} chats ({last:?}) took {posting_took:?}; whole test {took:?}");
    eprintln!("{stats:#?}");

    let violations: Vec<&String> = followers.iter().flat_map(|f| &f.violations).collect();
    assert!(violations.is_empty(), "protocol violations on the way: {violations:#?}");
    for f in &followers {
        for (slot, &chat) in f.follows.iter().enumerate() {
            let seqs: Vec<i64> = f.held[slot].iter().map(|(seq, _)| *seq).collect();
            if let Some(i) = seqs.iter().zip(1..).position(|(&seq, expected)| seq != expected) {
                let around = &seqs[i.saturating_sub(3)..(i + 4).min(seqs.len())];
                panic!(
                    "{} chat {chat}: position {i} holds seq {} instead of {}; around: {around:?}",
                    f.name,
                    seqs[i],
                    i + 1
                );
            }
            assert_eq!(seqs.len() as i64, last[chat], "{} chat {chat}: holds {} of {}", f.name, seqs.len(), last[chat]);
            let ids: Vec<&str> = f.held[slot].iter().map(|(_, id)| id.as_str()).collect();
            let stored: Vec<&str> = history[chat].iter().map(|m| m["id"].as_str().expect("id")).collect();
            assert_eq!(ids, stored, "{} chat {chat}: the message ids are the stored ones", f.name);
        }
    }
    assert!(stats.forced_disconnects >= MIN_DISCONNECTS, "only {} forced disconnects", stats.forced_disconnects);
    assert!(stats.mid_replay > 0, "no disconnect landed in the middle of a replay: {stats:?}");
    assert!(stats.resyncs > 0, "no join went past the replay limit: {stats:?}");
    assert!(took < BUDGET, "the churn test took {took:?}");
}
