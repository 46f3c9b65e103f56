//! Nobody can exhaust the server: every limit holds on every path. Participant caps on
//! the resulting total, per-user rates on every repeatable write, typing coalesced,
//! replays bounded in bytes, control frames counted, metric labels from closed sets.

use actix_web::http::{Method, StatusCode, header::HeaderMap};
use awc::ws;
use serde_json::{Value, json};
use std::time::Instant;

use crate::helpers::{Backend, TestApp, assert_error, lift_rate_limits, spawn_app, spawn_app_with};

crate::both_backends!(
    repeated_adds_cannot_grow_a_chat_past_1000_participants,
    an_overlong_participant_list_is_refused_whatever_its_repeats,
    every_repeatable_write_has_a_per_user_rate_limit,
    a_typing_flood_becomes_at_most_two_frames_a_second,
    a_replay_is_bounded_in_bytes_and_then_asks_for_a_resync,
);

fn chat_path(chat: &str, rest: &str) -> String {
    format!("/v1/messaging/chats/{chat}{rest}")
}

async fn repeated_adds_cannot_grow_a_chat_past_1000_participants(backend: Backend) {
    let app = spawn_app_with(backend, |s| (s.membership_rate_per_sec, s.membership_rate_burst) = (1000, 1000)).await;
    let others: Vec<String> = (1..999).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    let chat = app.create_chat("alice", &refs).await; // 999 participants
    let path = chat_path(&chat, "/participants");
    let add = |users: Value| app.post(&path, "alice", json!({"userIds": users}));
    let (status, body) = add(json!(["last"])).await;
    assert_eq!(status, StatusCode::OK, "the 1,000th participant: {body}");
    assert_eq!(body["participants"].as_array().map(Vec::len), Some(1000));
    for users in [json!(["one-too-many"]), json!(["a", "b"]), json!(["u1", "new"])] {
        let (status, body) = add(users.clone()).await;
        assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    }
    // Adding people already in the chat changes nothing and is not refused.
    let (status, _) = add(json!(["u1", "last"])).await;
    assert_eq!(status, StatusCode::OK);
    let (_, chat_now) = app.get(&chat_path(&chat, ""), "alice").await;
    assert_eq!(chat_now["participants"].as_array().map(Vec::len), Some(1000));
}

async fn an_overlong_participant_list_is_refused_whatever_its_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    // 1,001 names that would de-duplicate to one: refused by length, before any work.
    let repeats = vec!["bob"; 1001];
    let (status, body) = app.post("/v1/messaging/chats", "alice", json!({"participants": repeats})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = app.post(&chat_path(&chat, "/participants"), "alice", json!({"userIds": repeats})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    // One add is one frame per newcomer to every joined connection: at most 100 at once.
    let many: Vec<String> = (0..101).map(|i| format!("n{i}")).collect();
    let (status, body) = app.post(&chat_path(&chat, "/participants"), "alice", json!({"userIds": many})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    let (status, _) = app.post(&chat_path(&chat, "/participants"), "alice", json!({"userIds": many[..100]})).await;
    assert_eq!(status, StatusCode::OK);
    // At the limit: 999 others and the creator.
    let most: Vec<String> = (0..999).map(|i| format!("p{i}")).collect();
    let (status, body) = app.post("/v1/messaging/chats", "alice", json!({"participants": most})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[track_caller]
fn assert_allowance_headers(headers: &HeaderMap, what: &str) {
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(headers.contains_key(name), "{what}: {name} missing");
    }
}

async fn every_repeatable_write_has_a_per_user_rate_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        (s.typing_rate_per_sec, s.typing_rate_burst) = (1, 2);
        (s.read_rate_per_sec, s.read_rate_burst) = (1, 2);
        (s.edit_rate_per_sec, s.edit_rate_burst) = (1, 2);
        (s.membership_rate_per_sec, s.membership_rate_burst) = (1, 2);
    })
    .await;
    let chat = app.create_chat("alice", &["bob", "carol"]).await;
    let first = app.send("alice", &chat, "one").await;
    let second = app.send("alice", &chat, "two").await;
    let message = |m: &Value| chat_path(&chat, &format!("/messages/{}", m["id"].as_str().unwrap()));
    let typing = || ("POST", chat_path(&chat, "/typing"), Some(json!({"isTyping": true})));
    let read = || ("POST", chat_path(&chat, "/read"), Some(json!({"seq": 1})));
    let edit = || ("PATCH", message(&first), Some(json!({"content": "edited"})));
    let add = || ("POST", chat_path(&chat, "/participants"), Some(json!({"userIds": ["dan"]})));
    let create = || ("POST", "/v1/messaging/chats".to_owned(), Some(json!({"participants": ["dan"]})));
    let remove = || ("DELETE", chat_path(&chat, "/participants/carol"), None);
    // Per kind, as bob (who used none of his allowance yet): the burst passes with the
    // allowance headers, the next call is refused. Edits and deletes share an allowance,
    // as do chat creation and participant changes. Each sequence is a few requests long,
    // far under the one second that refills one unit.
    let kinds = [
        ("typing", "bob", vec![typing(), typing()], typing()),
        ("read", "bob", vec![read(), read()], read()),
        ("edit and delete", "alice", vec![edit(), ("DELETE", message(&second), None)], edit()),
        ("membership", "bob", vec![add(), create()], remove()),
    ];
    for (what, user, allowed, refused) in kinds {
        for (method, path, body) in allowed {
            let (status, headers, reply) = app.call_with_headers(method, &path, Some(user), body).await;
            assert!(status.is_success(), "{what}: {method} {path}: {status} {reply}");
            assert_allowance_headers(&headers, what);
        }
        let (method, path, body) = refused;
        let (status, headers, reply) = app.call_with_headers(method, &path, Some(user), body).await;
        assert_error(status, &reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry: u64 =
            headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().expect("Retry-After in seconds");
        assert!(retry >= 1, "{what}: Retry-After {retry}");
        assert_eq!(headers.get("x-ratelimit-remaining").expect("remaining"), "0", "{what}");
        assert_allowance_headers(&headers, what);
    }
    // Limits are per user and per kind: carol is not affected by bob's use.
    let (status, _) = app.post(&chat_path(&chat, "/typing"), "carol", json!({"isTyping": true})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn a_typing_flood_becomes_at_most_two_frames_a_second(backend: Backend) {
    let app = spawn_app_with(backend, lift_rate_limits).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let started = Instant::now();
    for i in 0..200 {
        let (status, _) = app.post(&chat_path(&chat, "/typing"), "alice", json!({"isTyping": i % 2 == 0})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let flood_secs = started.elapsed().as_secs();
    // The flood ended with `false`: bob ends up told alice stopped, every spell closed.
    let (mut starts, mut ends) = (0u64, 0u64);
    while starts == 0 || starts != ends {
        let event = bob.expect("user-typing").await;
        if event["data"]["isTyping"] == true { starts += 1 } else { ends += 1 }
    }
    bob.expect_nothing_pending().await;
    // A spell lasts at least a second, so the frames are bounded by the flood's duration.
    assert!(starts + ends <= 2 * (flood_secs + 1), "{} frames for a {flood_secs} s flood", starts + ends);
}

async fn a_replay_is_bounded_in_bytes_and_then_asks_for_a_resync(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.replay_max_bytes = 20_000).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    // Control characters are escaped to six bytes each in JSON: ~12 KB frames.
    let long = "\u{1}".repeat(2_000);
    for _ in 0..10 {
        app.send("alice", &chat, &long).await;
    }
    let mut bob = app.ws("bob").await;
    bob.send_json(json!({"event": "join-chat", "data": {"chatId": chat, "lastSeq": 0}})).await;
    let mut replayed = 0;
    let joined = loop {
        let event = bob.next_event().await;
        match event["event"].as_str() {
            Some("new-message") => replayed += 1,
            Some("chat-joined") => break event,
            _ => panic!("unexpected {event}"),
        }
    };
    assert!((1..10).contains(&replayed), "stopped by bytes after a few messages, replayed {replayed}");
    assert_eq!(joined["data"]["resync"], true, "{joined}");
    assert_eq!(joined["data"]["lastSeq"], 10, "the rest is paged over REST up to lastSeq");
}

#[actix_web::test]
async fn pings_count_toward_the_frame_rate_limit() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        (s.ws_rate_per_sec, s.ws_rate_burst, s.ws_abuse_limit) = (5, 10, 20);
    })
    .await;
    let mut ws = app.ws("alice").await;
    for _ in 0..100 {
        ws.send_message(ws::Message::Ping("flood".into())).await;
    }
    assert_eq!(ws.expect_close().await, Some(4008), "a ping flood is closed like any other flood");
}

#[actix_web::test]
async fn made_up_http_methods_do_not_add_metric_series() {
    let app = spawn_app(Backend::Sqlite).await;
    for i in 0..20 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let res = app.client.request(method, app.url(&format!("/nowhere/{i}"))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let metrics = scrape(&app).await;
    assert!(!metrics.contains("MADEUP"), "a made-up method became a label:\n{metrics}");
    assert!(!metrics.contains("/nowhere"), "a path became a label");
    let other = metrics.lines().find(|l| {
        l.starts_with("missive_http_requests_total")
            && l.contains(r#"method="OTHER""#)
            && l.contains(r#"route="unmatched""#)
    });
    assert!(other.is_some(), "made-up methods are counted as OTHER on the unmatched route:\n{metrics}");
}

async fn scrape(app: &TestApp) -> String {
    let mut res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    String::from_utf8(res.body().limit(16 * 1024 * 1024).await.unwrap().to_vec()).unwrap()
}
