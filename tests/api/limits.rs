//! Limits with documented defaults (issue point 4), exact at the boundary: REST body size
//! (413), WebSocket frame size (close 1009), connections per user (close 4029), the
//! per-user posting rate (429 with `Retry-After` and `X-RateLimit-*`) and the WebSocket
//! frame rate (`rate_limited` error frames, then close 4008). Message length and
//! attachment count at the limit and one past it are proven in `messages.rs`.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use awc::ws::{self, CloseCode, CloseReason};
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{Backend, Incoming, WsClient, assert_error, messages_path, spawn_app_with, token};

crate::both_backends!(
    the_default_limits_are_enforced_at_their_documented_values,
    a_body_of_exactly_max_body_bytes_is_accepted_and_one_byte_more_is_413,
    a_chunked_body_of_exactly_max_body_bytes_is_accepted_and_one_byte_more_is_413,
    a_frame_of_exactly_max_frame_bytes_gets_a_pong_and_one_byte_more_closes_with_1009,
    a_fragmented_message_is_limited_like_a_single_frame,
    the_connection_over_the_per_user_limit_is_closed_with_4029_and_a_freed_slot_is_reusable,
    the_connection_limit_is_per_user,
    posts_within_the_burst_carry_rate_limit_headers_and_the_next_is_429_and_stores_nothing,
    a_rate_limited_poster_may_post_again_after_retry_after,
    frames_past_the_burst_get_rate_limited_errors_then_continued_abuse_closes_with_4008,
    a_rate_limited_connection_that_slows_down_is_not_closed,
);

/// A valid post-message body of exactly `len` bytes: `{"content":"xxx…"}`.
fn body_of_exactly(len: usize) -> String {
    let frame = r#"{"content":""}"#;
    let body = format!(r#"{{"content":"{}"}}"#, "x".repeat(len - frame.len()));
    assert_eq!(body.len(), len);
    serde_json::from_str::<Value>(&body).expect("valid JSON");
    body
}

/// Status and JSON body of a finished response.
async fn status_and_json<S>(mut res: awc::ClientResponse<S>) -> (StatusCode, Value)
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (res.status(), json)
}

/// A header's value as text; panics when it is missing.
#[track_caller]
fn header<S>(res: &awc::ClientResponse<S>, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name} header: {:?}", res.headers()))
        .to_str()
        .expect("ASCII header")
        .to_owned()
}

/// A header that must be a non-negative integer.
#[track_caller]
fn int_header<S>(res: &awc::ClientResponse<S>, name: &str) -> u64 {
    let value = header(res, name);
    value.parse().unwrap_or_else(|_| panic!("{name} is not an integer: {value:?}"))
}

/// A `ping` frame padded with trailing spaces (valid JSON whitespace) to exactly `len` bytes.
fn ping_of_exactly(len: usize, reference: &str) -> String {
    let mut frame = json!({"event": "ping", "data": {}, "ref": reference}).to_string();
    assert!(frame.len() <= len);
    frame.push_str(&" ".repeat(len - frame.len()));
    assert_eq!(frame.len(), len);
    frame
}

/// The next thing on the socket must be a close frame with `code` (no event before it).
async fn expect_close_now(ws: &mut WsClient, code: u16) {
    match ws.next_incoming().await {
        Incoming::Closed(reason) => assert_eq!(reason.map(|r| u16::from(r.code)), Some(code)),
        Incoming::Event(event) => panic!("expected a close with {code}, got {event}"),
    }
}

/// The next event must be a `rate_limited` error frame.
async fn expect_rate_limited(ws: &mut WsClient) {
    let frame = ws.expect("error").await;
    assert_eq!(frame["data"]["code"], "rate_limited", "{frame}");
    assert!(frame["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
}

/// Sends a `ping` with `reference` and waits for its `pong`.
async fn ping(ws: &mut WsClient, reference: &str) {
    ws.send_json(json!({"event": "ping", "data": {}, "ref": reference})).await;
    let pong = ws.expect("pong").await;
    assert_eq!(pong["ref"], reference, "{pong}");
}

/// Closes the socket from the client side and waits for the server's close reply, which
/// the server sends only after it has unregistered the connection.
async fn close_and_wait(ws: &mut WsClient) {
    ws.send_message(ws::Message::Close(Some(CloseReason::from(CloseCode::Normal)))).await;
    assert_eq!(ws.expect_close().await, Some(1000));
}

// ---------------------------------------------------------------------------------------
// Defaults.

async fn the_default_limits_are_enforced_at_their_documented_values(backend: Backend) {
    let s = missive::config::Settings::default();
    assert_eq!(s.max_body_bytes, 256 * 1024);
    assert_eq!(s.max_frame_bytes, 64 * 1024);
    assert_eq!(s.max_message_chars, 10_000);
    assert_eq!(s.max_attachments, 10);
    assert_eq!(s.max_connections_per_user, 16);
    assert_eq!((s.post_rate_per_sec, s.post_rate_burst), (20, 50));
    assert_eq!((s.ws_rate_per_sec, s.ws_rate_burst, s.ws_abuse_limit), (20, 50, 20));
    assert_eq!(s.allowed_origins, None);

    // A server left at its defaults, except for the message length, so that a 256 KiB
    // body can be a valid message.
    let app = spawn_app_with(backend, |s| s.max_message_chars = 1024 * 1024).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    let post = |body: String| {
        app.client
            .post(&url)
            .bearer_auth(token("alice"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };
    let (status, body) = status_and_json(post(body_of_exactly(256 * 1024 + 1)).await.expect("request completes")).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let res = post(body_of_exactly(256 * 1024)).await.expect("request completes");
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(int_header(&res, "x-ratelimit-limit"), 50, "the default posting burst");
    assert_eq!(int_header(&res, "x-ratelimit-remaining"), 49);

    let mut ws = app.ws("alice").await;
    ws.send_text(&ping_of_exactly(64 * 1024, "exact")).await;
    assert_eq!(ws.expect("pong").await["ref"], "exact");
    ws.send_text(&ping_of_exactly(64 * 1024 + 1, "over")).await;
    expect_close_now(&mut ws, 1009).await;

    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(app.ws("alice").await);
    }
    let mut over = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    expect_close_now(&mut over, 4029).await;
}

// ---------------------------------------------------------------------------------------
// REST body size.

const SMALL_BODY: usize = 2048;

async fn a_body_of_exactly_max_body_bytes_is_accepted_and_one_byte_more_is_413(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.max_body_bytes = SMALL_BODY;
        s.max_message_chars = 10 * SMALL_BODY;
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    let post = |body: String| {
        app.client
            .post(&url)
            .bearer_auth(token("alice"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };

    let over = body_of_exactly(SMALL_BODY + 1);
    let (status, body) = status_and_json(post(over).await.expect("request completes")).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(app.history("alice", &chat).await, Vec::<Value>::new(), "the refused body stored nothing");

    let exact = body_of_exactly(SMALL_BODY);
    let expected: Value = serde_json::from_str(&exact).unwrap();
    let (status, message) = status_and_json(post(exact).await.expect("request completes")).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["content"], expected["content"]);
    assert_eq!(message["seq"], 1, "the refused body used no seq");

    // The limit covers every JSON body, not only messages.
    let name_len = SMALL_BODY - json!({"participants": [], "name": ""}).to_string().len();
    for (len, expected) in [(name_len + 1, StatusCode::PAYLOAD_TOO_LARGE), (name_len, StatusCode::BAD_REQUEST)] {
        // A name this long is refused by validation (200 characters at most), but only the
        // oversized body is refused before it is read.
        let body = json!({"participants": [], "name": "n".repeat(len)}).to_string();
        let res = app
            .client
            .post(app.url("/v1/messaging/chats"))
            .bearer_auth(token("alice"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .expect("request completes");
        let (status, body) = status_and_json(res).await;
        let code = if expected == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "validation_failed" };
        assert_error(status, &body, expected, code);
    }
}

async fn a_chunked_body_of_exactly_max_body_bytes_is_accepted_and_one_byte_more_is_413(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.max_body_bytes = SMALL_BODY;
        s.max_message_chars = 10 * SMALL_BODY;
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    // No Content-Length: the server can only count the bytes as they arrive.
    let post = |body: String| {
        let (head, tail) = body.split_at(body.len() / 2);
        let chunks = vec![Ok::<_, std::io::Error>(Bytes::from(head.to_owned())), Ok(Bytes::from(tail.to_owned()))];
        app.client
            .post(&url)
            .bearer_auth(token("alice"))
            .insert_header(("content-type", "application/json"))
            .send_stream(futures_util::stream::iter(chunks))
    };

    let (status, body) = status_and_json(post(body_of_exactly(SMALL_BODY + 1)).await.expect("request completes")).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(app.history("alice", &chat).await, Vec::<Value>::new(), "the refused body stored nothing");

    let (status, message) = status_and_json(post(body_of_exactly(SMALL_BODY)).await.expect("request completes")).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["seq"], 1);
}

// ---------------------------------------------------------------------------------------
// WebSocket frame size.

const SMALL_FRAME: usize = 1024;

async fn a_frame_of_exactly_max_frame_bytes_gets_a_pong_and_one_byte_more_closes_with_1009(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_frame_bytes = SMALL_FRAME).await;
    let mut ws = app.ws("alice").await;
    ws.send_text(&ping_of_exactly(SMALL_FRAME, "exact")).await;
    assert_eq!(ws.expect("pong").await["ref"], "exact");
    ws.send_text(&ping_of_exactly(SMALL_FRAME + 1, "over")).await;
    expect_close_now(&mut ws, 1009).await;
    // Only that connection: the server and the user's next socket work.
    let mut again = app.ws("alice").await;
    ping(&mut again, "after").await;
}

async fn a_fragmented_message_is_limited_like_a_single_frame(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_frame_bytes = SMALL_FRAME).await;
    let mut ws = app.ws("alice").await;
    let send_in_three = |text: String| {
        let bytes = Bytes::from(text);
        let third = bytes.len() / 3;
        [
            ws::Message::Continuation(actix_ws::Item::FirstText(bytes.slice(..third))),
            ws::Message::Continuation(actix_ws::Item::Continue(bytes.slice(third..2 * third))),
            ws::Message::Continuation(actix_ws::Item::Last(bytes.slice(2 * third..))),
        ]
    };
    for fragment in send_in_three(ping_of_exactly(SMALL_FRAME, "fragmented")) {
        ws.send_message(fragment).await;
    }
    assert_eq!(ws.expect("pong").await["ref"], "fragmented", "a fragmented message at the limit is accepted");
    for fragment in send_in_three(ping_of_exactly(SMALL_FRAME + 1, "over")) {
        ws.send_message(fragment).await;
    }
    expect_close_now(&mut ws, 1009).await;
}

// ---------------------------------------------------------------------------------------
// Connections per user.

async fn the_connection_over_the_per_user_limit_is_closed_with_4029_and_a_freed_slot_is_reusable(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_connections_per_user = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.ws("alice").await);
    }
    // The fourth is upgraded, then closed with 4029 before any greeting.
    let mut fourth = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    expect_close_now(&mut fourth, 4029).await;
    // The three are untouched.
    for (i, ws) in open.iter_mut().enumerate() {
        ping(ws, &format!("still-{i}")).await;
    }
    // The refused one took no slot: after one of the three closes, exactly one more fits.
    let mut first = open.remove(0);
    close_and_wait(&mut first).await;
    drop(first);
    open.push(app.ws("alice").await);
    let mut fifth = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    expect_close_now(&mut fifth, 4029).await;
    for ws in &mut open {
        ws.expect_nothing_pending().await;
    }
}

async fn the_connection_limit_is_per_user(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_connections_per_user = 2).await;
    let _alice = [app.ws("alice").await, app.ws("alice").await];
    let mut third = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    expect_close_now(&mut third, 4029).await;
    // Bob has his own two.
    let mut bob = [app.ws("bob").await, app.ws("bob").await];
    for ws in &mut bob {
        ws.expect_nothing_pending().await;
    }
}

// ---------------------------------------------------------------------------------------
// Posting rate.

async fn posts_within_the_burst_carry_rate_limit_headers_and_the_next_is_429_and_stores_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.post_rate_per_sec = 1;
        s.post_rate_burst = 3;
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    let post =
        |user: &str, text: &str| app.client.post(&url).bearer_auth(token(user)).send_json(&json!({"content": text}));

    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let res = post("alice", &format!("m{i}")).await.expect("request completes");
        assert_eq!(res.status(), StatusCode::CREATED, "post {i}");
        assert_eq!(int_header(&res, "x-ratelimit-limit"), 3, "post {i}");
        assert_eq!(int_header(&res, "x-ratelimit-remaining"), remaining, "post {i}");
        let reset = int_header(&res, "x-ratelimit-reset");
        assert!((1..=3).contains(&reset), "post {i}: the burst refills within 3 s at 1/s, got reset {reset}");
    }

    let res = post("alice", "one too many").await.expect("request completes");
    let retry_after = int_header(&res, "retry-after");
    assert!(retry_after >= 1, "Retry-After is whole seconds, at least 1: {retry_after}");
    assert!(retry_after <= 1, "one post per second frees a slot within 1 s, got {retry_after}");
    assert_eq!(int_header(&res, "x-ratelimit-remaining"), 0);
    assert_eq!(int_header(&res, "x-ratelimit-limit"), 3);
    let (status, body) = status_and_json(res).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another user has a burst of his own.
    let res = post("bob", "me too").await.expect("request completes");
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(int_header(&res, "x-ratelimit-remaining"), 2);
    let (_, bobs) = status_and_json(res).await;
    assert_eq!(bobs["seq"], 4, "the refused post used no seq");

    let contents: Vec<Value> = app.history("bob", &chat).await.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("m0"), json!("m1"), json!("m2"), json!("me too")], "nothing stored for the 429");
}

async fn a_rate_limited_poster_may_post_again_after_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.post_rate_per_sec = 1;
        s.post_rate_burst = 1;
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    let post = |text: &str| app.client.post(&url).bearer_auth(token("alice")).send_json(&json!({"content": text}));
    assert_eq!(post("first").await.expect("request completes").status(), StatusCode::CREATED);
    let res = post("too soon").await.expect("request completes");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = int_header(&res, "retry-after");
    // Time itself is the condition here: the server said when to come back.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let res = post("on time").await.expect("request completes");
    assert_eq!(res.status(), StatusCode::CREATED, "after waiting Retry-After ({retry_after} s)");
    let (_, message) = status_and_json(res).await;
    assert_eq!(message["seq"], 2);
}

// ---------------------------------------------------------------------------------------
// WebSocket frame rate.

async fn frames_past_the_burst_get_rate_limited_errors_then_continued_abuse_closes_with_4008(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.ws_rate_per_sec = 1;
        s.ws_rate_burst = 5;
        s.ws_abuse_limit = 3;
    })
    .await;
    let mut bob = app.ws("bob").await;
    let mut ws = app.ws("alice").await;
    // Back to back, faster than one per second.
    for i in 1..=9 {
        ws.send_json(json!({"event": "ping", "data": {}, "ref": format!("p{i}")})).await;
    }
    for i in 1..=5 {
        assert_eq!(ws.expect("pong").await["ref"], format!("p{i}"), "the burst of 5 passes");
    }
    for _ in 6..=8 {
        expect_rate_limited(&mut ws).await;
    }
    expect_close_now(&mut ws, 4008).await;
    // Another user's connection never noticed.
    ping(&mut bob, "unaffected").await;
}

async fn a_rate_limited_connection_that_slows_down_is_not_closed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.ws_rate_per_sec = 1;
        s.ws_rate_burst = 2;
        s.ws_abuse_limit = 3;
    })
    .await;
    let mut ws = app.ws("alice").await;
    for i in 1..=5 {
        ws.send_json(json!({"event": "ping", "data": {}, "ref": format!("p{i}")})).await;
    }
    for i in 1..=2 {
        assert_eq!(ws.expect("pong").await["ref"], format!("p{i}"));
    }
    for _ in 3..=5 {
        expect_rate_limited(&mut ws).await;
    }
    // Time itself is the condition: one second refills one frame of the budget.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ping(&mut ws, "patient").await;
    // The strikes started over: three more limited frames are tolerated again.
    for i in 1..=3 {
        ws.send_json(json!({"event": "ping", "data": {}, "ref": format!("q{i}")})).await;
    }
    for _ in 1..=3 {
        expect_rate_limited(&mut ws).await;
    }
    ws.send_json(json!({"event": "ping", "data": {}, "ref": "last straw"})).await;
    expect_close_now(&mut ws, 4008).await;
}
