//! Many writers at once (PROTOCOL.md §3 and §6): `seq` stays gapless and unique under
//! concurrent posts, every joined connection sees every message once and in `seq`
//! order, and concurrent idempotent retries create one message.

use actix_web::http::StatusCode;
use futures_util::future::{join, join_all};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::helpers::{Backend, TestApp, WsClient, history_after, messages_path, spawn_app, spawn_app_with};

crate::both_backends!(
    concurrent_posts_get_gapless_seqs_and_every_listener_sees_them_once_in_order,
    concurrent_retries_with_one_client_message_id_create_exactly_one_message,
);

const SENDERS: usize = 8;
const PER_SENDER: usize = 200;
const TOTAL: usize = SENDERS * PER_SENDER;

/// Posts `PER_SENDER` messages one after the other; returns the 201 bodies.
async fn post_sequentially(app: &TestApp, path: &str, sender: String) -> Vec<Value> {
    let mut sent = Vec::with_capacity(PER_SENDER);
    for n in 0..PER_SENDER {
        let (status, body) = app.post(path, &sender, json!({"content": format!("{sender} #{n}")})).await;
        assert_eq!(status, StatusCode::CREATED, "{sender} #{n}: {body}");
        sent.push(body);
    }
    sent
}

/// Reads `count` events, each of which must be a `new-message` of `chat`; returns the messages.
async fn receive_messages(ws: &mut WsClient, chat: &str, count: usize) -> Vec<Value> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let event = ws.next_event().await;
        assert_eq!(event["event"], "new-message", "after {} messages: {event}", received.len());
        assert_eq!(event["data"]["chatId"], chat, "{event}");
        received.push(event["data"]["message"].clone());
    }
    received
}

fn seqs(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| m["seq"].as_i64().expect("seq")).collect()
}

/// Asserts `seqs` is exactly 1..=TOTAL, naming the first place where it is not.
fn assert_one_to_total(seqs: &[i64], what: &str) {
    let first_wrong = seqs.iter().zip(1..).position(|(&seq, expected)| seq != expected);
    if let Some(i) = first_wrong {
        let around = &seqs[i.saturating_sub(3)..(i + 4).min(seqs.len())];
        panic!("{what}: position {i} holds seq {} instead of {}; around it: {around:?}", seqs[i], i + 1);
    }
    assert_eq!(seqs.len(), TOTAL, "{what}: {} seqs instead of {TOTAL}", seqs.len());
}

async fn concurrent_posts_get_gapless_seqs_and_every_listener_sees_them_once_in_order(backend: Backend) {
    // A throughput test, not a rate-limit test: lift the per-user posting limit.
    let app = spawn_app_with(backend, |s| (s.post_rate_per_sec, s.post_rate_burst) = (1_000_000, 1_000_000)).await;
    let senders: Vec<String> = (0..SENDERS).map(|i| format!("sender-{i}")).collect();
    let mut others: Vec<&str> = senders.iter().map(String::as_str).collect();
    others.push("bob");
    let chat = app.create_chat("alice", &others).await;
    let path = messages_path(&chat);
    let mut alice = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    alice.join(&chat).await;
    bob.join(&chat).await;

    // Listeners read while the posters post: the outbox is bounded, so they must keep up.
    let started = Instant::now();
    let posters = join_all(senders.iter().map(|s| post_sequentially(&app, &path, s.clone())));
    let listeners = join(receive_messages(&mut alice, &chat, TOTAL), receive_messages(&mut bob, &chat, TOTAL));
    let (sent, (alice_got, bob_got)) = join(posters, listeners).await;
    eprintln!("{TOTAL} concurrent posts and their delivery took {:?}", started.elapsed());

    // What the posters were told: every seq once, each sender's own posts in order.
    let mut acknowledged: Vec<i64> = sent.iter().flat_map(|s| seqs(s)).collect();
    for (sender, posts) in senders.iter().zip(&sent) {
        assert!(seqs(posts).windows(2).all(|w| w[0] < w[1]), "{sender}'s sequential posts got seqs out of order");
    }
    acknowledged.sort_unstable();
    assert_one_to_total(&acknowledged, "the seqs of the 201s, sorted");

    // What the database holds.
    let history = history_after(&app, &chat, "alice", 0).await;
    assert_one_to_total(&seqs(&history), "the history");
    let ids: HashSet<&str> = history.iter().map(|m| m["id"].as_str().expect("id")).collect();
    let acknowledged_ids: HashSet<&str> = sent.iter().flatten().map(|m| m["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), TOTAL, "every message id once");
    assert_eq!(ids, acknowledged_ids, "history holds exactly the acknowledged messages");
    let mut per_sender: HashMap<&str, usize> = HashMap::new();
    for m in &history {
        *per_sender.entry(m["senderId"].as_str().expect("senderId")).or_default() += 1;
    }
    for sender in &senders {
        assert_eq!(per_sender.get(sender.as_str()), Some(&PER_SENDER), "messages of {sender}");
    }
    assert_eq!(per_sender.len(), SENDERS, "{per_sender:?}");

    // What each listener saw: everything, once, in seq order, as stored.
    for (who, got) in [("alice", &alice_got), ("bob", &bob_got)] {
        assert_one_to_total(&seqs(got), &format!("the new-message events {who} received"));
        for (received, stored) in got.iter().zip(&history) {
            assert_eq!(received, stored, "{who} received the stored message");
        }
    }
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
}

async fn concurrent_retries_with_one_client_message_id_create_exactly_one_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let path = messages_path(&chat);
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;

    let body = json!({"content": "sent once, retried nine times", "clientMessageId": "retry-42"});
    let results = join_all((0..10).map(|_| app.post(&path, "alice", body.clone()))).await;
    let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    let replayed: Vec<&Value> = results.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, b)| b).collect();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!((created.len(), replayed.len()), (1, 9), "one 201 and nine 200: {statuses:?}");
    let original = created[0];
    assert_eq!(original["clientMessageId"], "retry-42");
    assert_eq!(original["seq"], 1);
    for retry in &replayed {
        assert_eq!(*retry, original, "a retry returns the original message");
    }

    let event = bob.expect("new-message").await;
    assert_eq!(&event["data"]["message"], original);
    bob.expect_nothing_pending().await;
    let history = history_after(&app, &chat, "bob", 0).await;
    assert_eq!(history, vec![original.clone()], "exactly one message stored");
    // The retries consumed no seq: the next message is 2.
    let next = app.send("alice", &chat, "next").await;
    assert_eq!(next["seq"], 2);
}
