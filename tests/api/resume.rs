//! Resume after a reconnect (PROTOCOL.md §4 `join-chat`, §6): `join-chat` with `lastSeq`
//! replays every missed message in `seq` order, then `chat-joined`, then live messages,
//! with no gap and no duplicate at the boundary, even while others post at full speed.
//! Past the replay limit the reply after the first page is `chat-joined` with
//! `resync: true`, and REST history gives the rest.

use actix_web::http::StatusCode;
use futures_util::future::{join, join_all};
use serde_json::{Value, json};
use std::cell::Cell;
use std::time::Instant;

use crate::helpers::{
    Backend, TestApp, WAIT, WsClient, history_after, last_seq_of, lift_rate_limits, send_join, seq_of, spawn_app,
    spawn_app_with,
};

crate::both_backends!(
    a_join_with_last_seq_replays_the_missed_messages_in_order_then_confirms_then_goes_live,
    a_join_with_the_latest_last_seq_replays_nothing_and_goes_live,
    a_join_without_last_seq_reports_the_chats_last_seq_and_replays_nothing,
    joins_with_last_seq_while_others_post_at_full_speed_deliver_every_later_seq_once_in_order,
    a_join_past_the_replay_limit_replays_one_page_then_asks_for_a_resync_and_rest_has_the_rest,
    a_negative_last_seq_is_refused_with_validation_failed_and_the_connection_stays_usable,
    a_join_and_a_leave_sent_together_replay_everything_the_join_reports_then_leave,
);

/// Waits (bounded, by polling the chat, not by sleeping) until at least `n` messages exist.
pub(crate) async fn wait_for_last_seq(app: &TestApp, chat: &str, user: &str, n: i64) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = last_seq_of(app, chat, user).await;
        if last >= n {
            return last;
        }
        assert!(Instant::now() < deadline, "only {last} messages posted after {WAIT:?}, waiting for {n}");
    }
}

/// The next event, which must be the `new-message` of `chat`; returns the message.
async fn expect_message(ws: &mut WsClient, chat: &str) -> Value {
    let event = ws.expect("new-message").await;
    assert_eq!(event["data"]["chatId"], chat, "{event}");
    event["data"]["message"].clone()
}

async fn a_join_with_last_seq_replays_the_missed_messages_in_order_then_confirms_then_goes_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    for n in 1..=2 {
        app.send("alice", &chat, &format!("before the drop #{n}")).await;
        assert_eq!(seq_of(&expect_message(&mut bob, &chat).await), n);
    }
    drop(bob);
    for n in 3..=5 {
        app.send("alice", &chat, &format!("while bob was away #{n}")).await;
    }
    let stored = history_after(&app, &chat, "bob", 0).await;
    assert_eq!(stored.iter().map(seq_of).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);

    let mut bob = app.ws("bob").await;
    send_join(&mut bob, &chat, Some(2)).await;
    for expected in &stored[2..] {
        let replayed = expect_message(&mut bob, &chat).await;
        assert_eq!(&replayed, expected, "the replayed message is the stored one, in seq order");
    }
    let joined = bob.expect("chat-joined").await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": 5}), "no resync key: {joined}");
    bob.expect_nothing_pending().await;

    let live = app.send("alice", &chat, "after the resume").await;
    assert_eq!(live["seq"], 6);
    assert_eq!(expect_message(&mut bob, &chat).await, live, "the live message follows the replay without a gap");
    bob.expect_nothing_pending().await;
}

async fn a_join_with_the_latest_last_seq_replays_nothing_and_goes_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for n in 1..=5 {
        app.send("alice", &chat, &format!("#{n}")).await;
    }
    let mut bob = app.ws("bob").await;
    send_join(&mut bob, &chat, Some(5)).await;
    let joined = bob.expect("chat-joined").await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": 5}));
    bob.expect_nothing_pending().await;
    let live = app.send("alice", &chat, "next").await;
    assert_eq!(expect_message(&mut bob, &chat).await, live);
    assert_eq!(live["seq"], 6);
    bob.expect_nothing_pending().await;
}

async fn a_join_without_last_seq_reports_the_chats_last_seq_and_replays_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for n in 1..=5 {
        app.send("alice", &chat, &format!("#{n}")).await;
    }
    let mut bob = app.ws("bob").await;
    send_join(&mut bob, &chat, None).await;
    let joined = bob.expect("chat-joined").await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": 5}));
    bob.expect_nothing_pending().await;
    let live = app.send("alice", &chat, "next").await;
    assert_eq!(expect_message(&mut bob, &chat).await, live);
    bob.expect_nothing_pending().await;
}

const POSTERS: usize = 3;
const PER_POSTER: usize = 100;
const TOTAL: i64 = (POSTERS * PER_POSTER) as i64;
/// The joiner starts as if it already had the first `HELD` messages.
const HELD: i64 = 10;
/// Messages read live after each `chat-joined` before leaving again.
const LIVE_PER_ROUND: usize = 12;
/// Messages posted while the joiner is away, between a `leave-chat` and the next join.
const MISSED_PER_ROUND: i64 = 10;

/// One join of the joiner: what came before `chat-joined`, what it said, what came after.
#[derive(Debug, Default)]
struct Round {
    since: i64,
    replayed: Vec<i64>,
    joined_last_seq: i64,
    live: Vec<i64>,
    posting_still: bool,
}

async fn joins_with_last_seq_while_others_post_at_full_speed_deliver_every_later_seq_once_in_order(backend: Backend) {
    let app = spawn_app_with(backend, lift_rate_limits).await;
    let posters: Vec<String> = (0..POSTERS).map(|i| format!("poster-{i}")).collect();
    let mut members: Vec<&str> = posters.iter().map(String::as_str).collect();
    members.push("bob");
    let chat = app.create_chat("alice", &members).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    let posting = Cell::new(true);

    let post_all = async {
        let started = Instant::now();
        let (app, path) = (&app, &path);
        join_all(posters.iter().map(|poster| async move {
            for n in 0..PER_POSTER {
                let (status, body) = app.post(path, poster, json!({"content": format!("{poster} #{n}")})).await;
                assert_eq!(status, StatusCode::CREATED, "{poster} #{n}: {body}");
            }
        }))
        .await;
        posting.set(false);
        started.elapsed()
    };

    let resume_repeatedly = async {
        wait_for_last_seq(&app, &chat, "bob", 3 * HELD).await;
        let mut received: Vec<Value> = history_after(&app, &chat, "bob", 0).await;
        received.truncate(HELD as usize);
        let mut have = HELD;
        let mut rounds: Vec<Round> = Vec::new();
        let mut ws = app.ws("bob").await;
        loop {
            let mut round = Round { since: have, posting_still: posting.get(), ..Round::default() };
            send_join(&mut ws, &chat, Some(have)).await;
            loop {
                let event = ws.next_event().await;
                match event["event"].as_str() {
                    Some("new-message") => {
                        let message = event["data"]["message"].clone();
                        let seq = seq_of(&message);
                        assert_eq!(seq, have + 1, "replayed after lastSeq={}: {rounds:?} {round:?}", round.since);
                        round.replayed.push(seq);
                        received.push(message);
                        have = seq;
                    }
                    Some("chat-joined") => {
                        assert_eq!(event["data"]["status"], "success", "{event}");
                        assert!(event["data"].get("resync").is_none(), "300 messages fit the replay limit: {event}");
                        round.joined_last_seq = event["data"]["lastSeq"].as_i64().expect("lastSeq");
                        break;
                    }
                    _ => panic!("expected new-message or chat-joined, got {event}"),
                }
            }
            assert_eq!(round.joined_last_seq, have, "chat-joined reports the last replayed seq: {round:?}");
            while round.live.len() < LIVE_PER_ROUND && have < TOTAL {
                let message = expect_message(&mut ws, &chat).await;
                let seq = seq_of(&message);
                assert_eq!(seq, have + 1, "live after chat-joined: {rounds:?} {round:?}");
                round.live.push(seq);
                received.push(message);
                have = seq;
            }
            if have == TOTAL {
                rounds.push(round);
                break;
            }
            ws.send_json(json!({"event": "leave-chat", "data": {"chatId": chat}})).await;
            loop {
                let event = ws.next_event().await;
                if event["event"] == "chat-left" {
                    assert_eq!(event["data"], json!({"chatId": chat, "status": "success"}));
                    break;
                }
                assert_eq!(event["event"], "new-message", "before chat-left: {event}");
                let message = event["data"]["message"].clone();
                let seq = seq_of(&message);
                assert_eq!(seq, have + 1, "queued before the leave: {rounds:?} {round:?}");
                round.live.push(seq);
                received.push(message);
                have = seq;
            }
            rounds.push(round);
            // Let more messages be posted while away, so the next join replays some.
            wait_for_last_seq(&app, &chat, "bob", (have + MISSED_PER_ROUND).min(TOTAL)).await;
        }
        ws.expect_nothing_pending().await;
        (received, rounds)
    };

    let (took, (received, rounds)) = join(post_all, resume_repeatedly).await;
    eprintln!("{TOTAL} posts by {POSTERS} posters took {took:?}; the joiner joined {} times", rounds.len());
    for r in &rounds {
        eprintln!(
            "  join lastSeq={:>3}: replayed {:>2} (posting: {}), chat-joined lastSeq={:>3}, then {:>2} live",
            r.since,
            r.replayed.len(),
            r.posting_still,
            r.joined_last_seq,
            r.live.len()
        );
    }

    // Every seq after HELD exactly once, ascending, and the messages are the stored ones.
    let seqs: Vec<i64> = received.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>(), "the joiner holds every seq exactly once, in order");
    let stored = history_after(&app, &chat, "bob", 0).await;
    assert_eq!(received, stored, "what the joiner received is what is stored");
    // The boundary was crossed while posting went on, more than once: a replay, then
    // chat-joined, then live messages.
    let boundaries = rounds.iter().filter(|r| r.posting_still && !r.replayed.is_empty() && !r.live.is_empty()).count();
    assert!(boundaries >= 3, "only {boundaries} joins replayed and then went live while posting: {rounds:?}");
}

async fn a_join_past_the_replay_limit_replays_one_page_then_asks_for_a_resync_and_rest_has_the_rest(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.replay_limit = 10;
        lift_rate_limits(s);
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for n in 1..=25 {
        app.send("alice", &chat, &format!("#{n}")).await;
    }
    let stored = history_after(&app, &chat, "bob", 0).await;
    assert_eq!(stored.len(), 25);

    let mut bob = app.ws("bob").await;
    send_join(&mut bob, &chat, Some(0)).await;
    for expected in &stored[..10] {
        assert_eq!(&expect_message(&mut bob, &chat).await, expected, "the first page, in seq order");
    }
    let joined = bob.expect("chat-joined").await;
    assert_eq!(joined["data"], json!({"chatId": chat, "status": "success", "lastSeq": 25, "resync": true}));
    bob.expect_nothing_pending().await;

    let rest = history_after(&app, &chat, "bob", 10).await;
    assert_eq!(rest, stored[10..], "REST history after the page holds 11..=25");

    let live = app.send("alice", &chat, "live").await;
    assert_eq!(live["seq"], 26);
    assert_eq!(expect_message(&mut bob, &chat).await, live, "nothing at or below lastSeq 25 arrives live");
    bob.expect_nothing_pending().await;
}

async fn a_negative_last_seq_is_refused_with_validation_failed_and_the_connection_stays_usable(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "one").await;
    let mut bob = app.ws("bob").await;
    send_join(&mut bob, &chat, Some(-1)).await;
    let error = bob.expect("error").await;
    assert_eq!(error["data"]["code"], "validation_failed", "{error}");
    assert_eq!(error["data"]["event"], "join-chat", "{error}");
    assert!(error["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    // The refused join subscribed to nothing.
    app.send("alice", &chat, "two").await;
    bob.expect_nothing_pending().await;
    // The connection stays open and a valid join still works.
    send_join(&mut bob, &chat, Some(1)).await;
    assert_eq!(seq_of(&expect_message(&mut bob, &chat).await), 2);
    let joined = bob.expect("chat-joined").await;
    assert_eq!(joined["data"]["lastSeq"], 2);
}

/// A client moving between chats sends `join-chat` (with a replay) and `leave-chat` in
/// one write. The leave waits for what came before it: every message the join reports
/// (`lastSeq`) arrives before `chat-joined`, then `chat-left`.
async fn a_join_and_a_leave_sent_together_replay_everything_the_join_reports_then_leave(backend: Backend) {
    use crate::raw_ws::{RawWs, masked_text_frame};
    let app = spawn_app_with(backend, lift_rate_limits).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for i in 1..=40 {
        app.send("alice", &chat, &format!("m{i}")).await;
    }
    let mut raw = RawWs::connect(&format!("127.0.0.1:{}", app.port), &crate::helpers::token("bob")).await;
    assert_eq!(raw.next_event().await["event"], "connected");
    let join = json!({"event": "join-chat", "data": {"chatId": chat, "lastSeq": 0}}).to_string();
    let leave = json!({"event": "leave-chat", "data": {"chatId": chat}}).to_string();
    let mut both = masked_text_frame(join.as_bytes(), [1, 2, 3, 4]);
    both.extend(masked_text_frame(leave.as_bytes(), [5, 6, 7, 8]));
    raw.send_raw(&both).await;
    let mut seqs = Vec::new();
    let joined = loop {
        let event = raw.next_event().await;
        match event["event"].as_str() {
            Some("new-message") => seqs.push(seq_of(&event["data"]["message"])),
            Some("chat-joined") => break event,
            _ => panic!("unexpected before chat-joined: {event}"),
        }
    };
    assert_eq!(joined["data"]["lastSeq"], 40, "{joined}");
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>(), "every message the join reports, in order");
    let left = raw.next_event().await;
    assert_eq!((left["event"].as_str(), left["data"]["status"].as_str()), (Some("chat-left"), Some("success")));
}
