//! Hostile input (issue point 7): NUL characters, invalid UTF-8, absurdly deep JSON,
//! numbers out of every range, wrong types, chat ids of any shape, SQL and HTML. Each gets
//! a clear 4xx JSON error (or is stored verbatim and served as inert JSON), on both
//! backends; never a 500, never a panic, and a refused request stores nothing.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use awc::ws;
use serde_json::{Value, json};

use crate::helpers::{Backend, Incoming, TestApp, WsClient, messages_path, spawn_app, spawn_app_with, token};

crate::both_backends!(
    nul_characters_in_any_text_field_are_rejected_with_400_and_store_nothing,
    bodies_that_are_not_valid_utf8_are_rejected_with_400_and_store_nothing,
    json_nested_100000_deep_is_rejected_with_400_and_the_server_keeps_answering,
    numbers_out_of_range_are_rejected_with_400,
    the_largest_integers_are_answered_normally,
    every_field_of_create_chat_with_a_wrong_type_is_rejected_with_400,
    every_field_of_post_message_with_a_wrong_type_is_rejected_with_400,
    every_field_of_read_typing_and_participants_with_a_wrong_type_is_rejected_with_400,
    an_attachment_url_with_a_nul_character_is_rejected_with_400_and_stores_nothing,
    a_json_array_in_place_of_an_object_is_rejected_even_when_its_items_fit_the_fields,
    chat_ids_of_any_shape_in_the_path_get_404_not_found_as_json,
    a_real_chat_id_with_anything_appended_or_changed_gets_404,
    a_websocket_frame_nested_100000_deep_gets_an_error_frame_and_the_socket_stays_up,
    websocket_frames_with_hostile_numbers_and_types_get_error_frames_and_the_socket_stays_up,
    a_text_message_with_invalid_utf8_fails_only_that_connection,
    a_text_frame_with_invalid_utf8_fails_only_that_connection,
    sql_and_html_in_a_chat_name_are_stored_verbatim_and_served_as_inert_json,
    sql_and_html_in_attachment_fields_are_stored_verbatim_and_served_as_inert_json,
);

const CHATS: &str = "/v1/messaging/chats";

/// What came back: status, `Content-Type`, `X-Content-Type-Options` and the raw body.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    nosniff: Option<String>,
    body: Bytes,
}

impl Answer {
    /// The body as JSON; panics with the raw text when it is not JSON.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: body is not JSON ({e}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// Why this is not the JSON error expected (exact status and code, a message, nothing
    /// else, served as `application/json` with `nosniff`); None when it is.
    fn mismatch(&self, expected: StatusCode, code: &str, what: &str) -> Option<String> {
        let text: String = String::from_utf8_lossy(&self.body).chars().take(300).collect();
        let json: Option<Value> = serde_json::from_slice(&self.body).ok();
        let well_formed = json.as_ref().is_some_and(|body| {
            body["error"] == code
                && body["message"].as_str().is_some_and(|m| !m.is_empty())
                && body.as_object().map(|o| o.len()) == Some(2)
        });
        let ok = self.status == expected
            && self.content_type.as_deref() == Some("application/json")
            && self.nosniff.as_deref() == Some("nosniff")
            && well_formed;
        (!ok).then(|| {
            format!(
                "{what}: expected {expected} {code:?}, got {} ({:?}, nosniff {:?}): {text}",
                self.status, self.content_type, self.nosniff
            )
        })
    }

    #[track_caller]
    fn assert_error(&self, expected: StatusCode, code: &str, what: &str) {
        if let Some(why) = self.mismatch(expected, code, what) {
            panic!("{why}");
        }
    }
}

/// Collects every case that was not refused as expected, so one run reports them all.
#[derive(Default)]
struct Refusals(Vec<String>);

impl Refusals {
    fn check(&mut self, answer: Answer, expected: StatusCode, code: &str, what: &str) {
        self.0.extend(answer.mismatch(expected, code, what));
    }

    #[track_caller]
    fn assert_none(&mut self) {
        let found = std::mem::take(&mut self.0);
        assert!(found.is_empty(), "{} case(s) not refused as expected:\n{}", found.len(), found.join("\n"));
    }
}

fn header(res: &awc::http::header::HeaderMap, name: &str) -> Option<String> {
    res.get(name).map(|v| v.to_str().unwrap_or("<not ASCII>").to_owned())
}

/// Sends `method path` as `user` with an optional raw JSON body (sent as is, with
/// `Content-Type: application/json`).
async fn send_raw(app: &TestApp, method: &str, path: &str, user: &str, body: Option<Vec<u8>>) -> Answer {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let req = app.client.request(method, app.url(path)).bearer_auth(token(user));
    let res = match body {
        Some(body) => req.insert_header(("content-type", "application/json")).send_body(body).await,
        None => req.send().await,
    };
    let mut res = res.unwrap_or_else(|e| panic!("{path}: the request did not complete: {e}"));
    let body = res.body().limit(16 * 1024 * 1024).await.expect("body");
    Answer {
        status: res.status(),
        content_type: header(res.headers(), "content-type"),
        nosniff: header(res.headers(), "x-content-type-options"),
        body,
    }
}

async fn send_json(app: &TestApp, method: &str, path: &str, user: &str, body: &Value) -> Answer {
    send_raw(app, method, path, user, Some(body.to_string().into_bytes())).await
}

/// Alice's chats, as the list serves them.
async fn chat_list(app: &TestApp, user: &str) -> Value {
    let (status, list) = app.get(&format!("{CHATS}?limit=100"), user).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["chats"].clone()
}

async fn chat(app: &TestApp, chat: &str) -> Value {
    let (status, chat) = app.get(&format!("{CHATS}/{chat}"), "alice").await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    chat
}

/// The server is up and still serves a normal request.
async fn assert_alive(app: &TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.expect("the server still answers");
    assert_eq!(res.status(), StatusCode::OK);
    app.create_chat("alice", &["bob"]).await;
}

/// `[[[…]]]` nested `depth` deep.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `{"a":{"a":…{}}}` nested `depth` deep.
fn nested_objects(depth: usize) -> String {
    format!("{}{{}}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// NUL, UTF-8, depth, numbers.

async fn nul_characters_in_any_text_field_are_rejected_with_400_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let url = "https://files.example.com/a.png";
    let before = chat_list(&app, "alice").await;
    for body in [
        json!({"content": "\u{0}"}),
        json!({"content": "ok", "attachments": [{"url": url, "name": "a\u{0}.png"}]}),
        json!({"content": "ok", "attachments": [{"url": url, "type": "image/png\u{0}"}]}),
        json!({"content": "ok", "clientMessageId": "id\u{0}"}),
        json!({"content": "ok", "replyTo": "msg_0123456789abcdef0123456789abcdef\u{0}"}),
    ] {
        refusals.check(
            send_json(&app, "POST", &messages_path(&chat_id), "alice", &body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }
    // A raw NUL byte inside a JSON string is not JSON at all (control characters must be escaped).
    refusals.check(
        send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(b"{\"content\":\"a\x00b\"}".to_vec())).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "raw NUL byte",
    );

    for body in [json!({"participants": ["bob"], "name": "team\u{0}"}), json!({"participants": ["bob\u{0}"]})] {
        refusals.check(
            send_json(&app, "POST", CHATS, "alice", &body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }
    let body = json!({"userIds": ["carol\u{0}"]});
    refusals.check(
        send_json(&app, "POST", &format!("{CHATS}/{chat_id}/participants"), "alice", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "participant with NUL",
    );
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await, Vec::<Value>::new(), "nothing stored");
    assert_eq!(chat_list(&app, "alice").await, before, "no chat created or changed");
    assert_eq!(chat(&app, &chat_id).await["participants"], json!(["alice", "bob"]));
}

async fn bodies_that_are_not_valid_utf8_are_rejected_with_400_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let bad_strings: [(&str, &[u8]); 6] = [
        ("lone continuation bytes", b"\xff\xfe"),
        ("overlong NUL", b"\xc0\x80"),
        ("UTF-8 encoded surrogate", b"\xed\xa0\x80"),
        ("truncated sequence", b"ab\xe2\x82"),
        ("beyond U+10FFFF", b"\xf4\x90\x80\x80"),
        ("escaped lone surrogate", br"\ud800"),
    ];
    for (what, bytes) in bad_strings {
        let mut body = b"{\"content\":\"".to_vec();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\"}");
        refusals.check(
            send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(body)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            what,
        );

        let mut body = b"{\"participants\":[\"bob\"],\"name\":\"".to_vec();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\"}");
        refusals.check(
            send_raw(&app, "POST", CHATS, "alice", Some(body)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            what,
        );
    }
    // Invalid UTF-8 outside any string (in a key).
    refusals.check(
        send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(b"{\"cont\xffent\":\"hi\"}".to_vec())).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "invalid UTF-8 in a key",
    );
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await, Vec::<Value>::new(), "nothing stored");
    assert_eq!(chat_list(&app, "alice").await.as_array().map(Vec::len), Some(1), "no chat created");
    assert_alive(&app).await;
}

const DEEP: usize = 100_000;

async fn json_nested_100000_deep_is_rejected_with_400_and_the_server_keeps_answering(backend: Backend) {
    // Large enough that the depth, not the size, is what gets refused.
    let app = spawn_app_with(backend, |s| s.max_body_bytes = 4 * 1024 * 1024).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let bodies = [
        ("content", format!(r#"{{"content":{}}}"#, nested_arrays(DEEP))),
        ("content objects", format!(r#"{{"content":{}}}"#, nested_objects(DEEP))),
        ("attachments", format!(r#"{{"content":"x","attachments":[{}]}}"#, nested_arrays(DEEP))),
        ("whole body", nested_arrays(DEEP)),
    ];
    for (what, body) in &bodies {
        assert!(body.len() < 4 * 1024 * 1024);
        refusals.check(
            send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(body.clone().into_bytes())).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            what,
        );
    }
    // Deep nesting in a field the server does not know may be refused, or skipped without
    // recursion; either way only the known fields count and the server stays up.
    let unknown = format!(r#"{{"content":"x","extra":{}}}"#, nested_arrays(DEEP));
    let answer = send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(unknown.into_bytes())).await;
    let skipped = if answer.status == StatusCode::CREATED {
        assert_eq!(answer.json()["content"], "x");
        1
    } else {
        answer.assert_error(StatusCode::BAD_REQUEST, "validation_failed", "deep unknown field");
        0
    };
    let chat_body = format!(r#"{{"participants":{}}}"#, nested_arrays(DEEP));
    refusals.check(
        send_raw(&app, "POST", CHATS, "alice", Some(chat_body.into_bytes())).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "create chat",
    );
    let read_body = format!(r#"{{"seq":{}}}"#, nested_objects(DEEP));
    refusals.check(
        send_raw(&app, "POST", &format!("{CHATS}/{chat_id}/read"), "alice", Some(read_body.into_bytes())).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "read",
    );
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await.len(), skipped, "nothing else stored");
    assert_alive(&app).await;
    assert_eq!(app.send("alice", &chat_id, "still works").await["seq"], skipped + 1);
}

async fn numbers_out_of_range_are_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat_id, "one").await;
    let read = format!("{CHATS}/{chat_id}/read");
    for seq in ["1e999999", "-1e999999", "1e20", "9223372036854775808", "-9223372036854775809", "1.5"] {
        let body = format!(r#"{{"seq":{seq}}}"#).into_bytes();
        refusals.check(
            send_raw(&app, "POST", &read, "bob", Some(body)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            seq,
        );
    }
    refusals.assert_none();
    let (_, bobs) = app.get(&format!("{CHATS}/{chat_id}"), "bob").await;
    assert_eq!(bobs["unreadCount"], 1, "bob's marker did not move: {bobs}");

    for size in ["1e999999", "18446744073709551616", "-1", "1.5"] {
        let body =
            format!(r#"{{"content":"x","attachments":[{{"url":"https://x.io/a","size":{size}}}]}}"#).into_bytes();
        refusals.check(
            send_raw(&app, "POST", &messages_path(&chat_id), "alice", Some(body)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            size,
        );
    }
    for query in [
        "limit=1e999999",
        "limit=99999999999999999999",
        "before=1e999999",
        "after=99999999999999999999",
        "before=-9223372036854775809",
        "limit=1.5",
        "limit=%00",
        "before=1%00",
    ] {
        refusals.check(
            send_raw(&app, "GET", &format!("{}?{query}", messages_path(&chat_id)), "alice", None).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            query,
        );
    }
    for query in ["limit=1e999999", "limit=99999999999999999999"] {
        refusals.check(
            send_raw(&app, "GET", &format!("{CHATS}?{query}"), "alice", None).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            query,
        );
    }
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await.len(), 1, "nothing stored");
}

async fn the_largest_integers_are_answered_normally(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat_id, "one").await;
    let (status, body) = app.post(&format!("{CHATS}/{chat_id}/read"), "bob", json!({"seq": i64::MAX})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"chatId": chat_id, "lastReadSeq": 1, "unreadCount": 0}), "capped at the last seq");
    for (query, count) in [(format!("before={}", i64::MAX), 1), (format!("after={}", i64::MAX), 0)] {
        let (status, page) = app.get(&format!("{}?{query}", messages_path(&chat_id)), "alice").await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(page["messages"].as_array().map(Vec::len), Some(count), "{query}: {page}");
    }
    let size = u64::MAX;
    let body = json!({"content": "big", "attachments": [{"url": "https://x.io/a", "size": size}]});
    let (status, message) = app.post(&messages_path(&chat_id), "alice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["attachments"][0]["size"], size);
    assert_eq!(app.history("alice", &chat_id).await[1]["attachments"][0]["size"], size, "stored without loss");
}

// ---------------------------------------------------------------------------------------
// Wrong types.

/// Every JSON type but the ones listed.
fn wrong_values(except: &[&str]) -> Vec<Value> {
    let all = [
        ("null", json!(null)),
        ("bool", json!(true)),
        ("number", json!(5)),
        ("float", json!(1.5)),
        ("string", json!("bob")),
        ("array", json!(["bob"])),
        ("object", json!({"bob": "bob"})),
    ];
    all.into_iter().filter(|(kind, _)| !except.contains(kind)).map(|(_, v)| v).collect()
}

/// Bodies that are not a JSON object at all.
fn non_objects() -> Vec<Value> {
    vec![json!(null), json!(true), json!(5), json!("text"), json!([]), json!([{"content": "hi"}])]
}

async fn every_field_of_create_chat_with_a_wrong_type_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let mut bodies = non_objects();
    bodies.push(json!({}));
    for v in wrong_values(&["array"]) {
        bodies.push(json!({"participants": v}));
    }
    for v in wrong_values(&["string"]) {
        bodies.push(json!({"participants": [v]}));
    }
    // `name` is optional: null means "no name"; every other non-string is refused.
    for v in wrong_values(&["string", "null"]) {
        bodies.push(json!({"participants": ["bob"], "name": v}));
    }
    for body in &bodies {
        refusals.check(
            send_json(&app, "POST", CHATS, "alice", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }
    refusals.assert_none();
    assert_eq!(chat_list(&app, "alice").await, json!([]), "no chat created");
    assert_eq!(chat_list(&app, "bob").await, json!([]), "no chat created");
}

async fn every_field_of_post_message_with_a_wrong_type_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let url = "https://files.example.com/a.png";
    let mut bodies = non_objects();
    for v in wrong_values(&["string", "null"]) {
        bodies.push(json!({"content": v}));
        bodies.push(json!({"content": "hi", "replyTo": v}));
        bodies.push(json!({"content": "hi", "clientMessageId": v}));
        bodies.push(json!({"content": "hi", "attachments": [{"url": url, "name": v}]}));
        bodies.push(json!({"content": "hi", "attachments": [{"url": url, "type": v}]}));
    }
    for v in wrong_values(&["array", "null"]) {
        bodies.push(json!({"content": "hi", "attachments": v}));
    }
    for v in wrong_values(&["string", "object"]) {
        bodies.push(json!({"content": "hi", "attachments": [v]}));
    }
    for v in wrong_values(&["string"]) {
        bodies.push(json!({"content": "hi", "attachments": [{"url": v}]}));
    }
    for v in wrong_values(&["number", "null"]).into_iter().chain([json!(-1), json!(1.5)]) {
        bodies.push(json!({"content": "hi", "attachments": [{"url": url, "size": v}]}));
    }
    for body in &bodies {
        refusals.check(
            send_json(&app, "POST", &messages_path(&chat_id), "alice", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await, Vec::<Value>::new(), "nothing stored");
    assert_eq!(app.send("alice", &chat_id, "first").await["seq"], 1, "no seq used");
}

async fn every_field_of_read_typing_and_participants_with_a_wrong_type_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat_id, "one").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat_id).await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat_id).await;

    let mut reads = non_objects();
    reads.push(json!({}));
    for v in wrong_values(&["number", "null"]) {
        reads.push(json!({"seq": v}));
    }
    for v in wrong_values(&["string", "null"]) {
        reads.push(json!({"messageId": v}));
    }
    for body in &reads {
        refusals.check(
            send_json(&app, "POST", &format!("{CHATS}/{chat_id}/read"), "bob", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }

    let mut typings = non_objects();
    typings.push(json!({}));
    for v in wrong_values(&["bool"]).into_iter().chain([json!("true"), json!(1), json!(0)]) {
        typings.push(json!({"isTyping": v}));
    }
    for body in &typings {
        refusals.check(
            send_json(&app, "POST", &format!("{CHATS}/{chat_id}/typing"), "bob", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }

    let mut adds = non_objects();
    adds.push(json!({}));
    for v in wrong_values(&["array"]) {
        adds.push(json!({"userIds": v}));
    }
    for v in wrong_values(&["string"]) {
        adds.push(json!({"userIds": [v]}));
    }
    for body in &adds {
        refusals.check(
            send_json(&app, "POST", &format!("{CHATS}/{chat_id}/participants"), "bob", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &body.to_string(),
        );
    }

    refusals.assert_none();
    // Nothing moved: no read marker, no typing, no participant; so nothing was pushed.
    let (_, bobs) = app.get(&format!("{CHATS}/{chat_id}"), "bob").await;
    assert_eq!(bobs["unreadCount"], 1, "{bobs}");
    assert_eq!(bobs["participants"], json!(["alice", "bob"]), "{bobs}");
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
}

async fn an_attachment_url_with_a_nul_character_is_rejected_with_400_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    for url in ["https://files.example.com/a.png\u{0}", "\u{0}https://files.example.com/a.png", "https://x.io/a\u{0}b"]
    {
        for attachment in [json!(url), json!({"url": url, "name": "a.png"})] {
            let body = json!({"content": "ok", "attachments": [attachment]});
            refusals.check(
                send_json(&app, "POST", &messages_path(&chat_id), "alice", &body).await,
                StatusCode::BAD_REQUEST,
                "validation_failed",
                &body.to_string(),
            );
        }
    }
    refusals.assert_none();
    assert_eq!(app.history("alice", &chat_id).await, Vec::<Value>::new(), "nothing stored");
}

async fn a_json_array_in_place_of_an_object_is_rejected_even_when_its_items_fit_the_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let chat_id = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat_id, "one").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat_id).await;
    // Each endpoint's fields, as an array in the order the server declares them: a body is
    // an object with named keys, never a tuple.
    let cases = [
        ("POST", CHATS.to_owned(), "bob", json!([["carol"], "Team"])),
        ("POST", messages_path(&chat_id), "alice", json!(["hi", null, null, null])),
        ("POST", format!("{CHATS}/{chat_id}/read"), "bob", json!([1, null])),
        ("POST", format!("{CHATS}/{chat_id}/typing"), "alice", json!([true])),
        ("POST", format!("{CHATS}/{chat_id}/participants"), "alice", json!([["carol"]])),
    ];
    for (method, path, user, body) in &cases {
        refusals.check(
            send_json(&app, method, path, user, body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            &format!("{method} {path} {body}"),
        );
    }
    // The same for a WebSocket frame (on a bystander's socket, which no REST call above concerns).
    let mut dave = app.ws("dave").await;
    dave.send_text(r#"["ping",{},"tuple"]"#).await;
    let reply = dave.next_event().await;
    if reply["event"] != "error" || reply["data"]["code"] != "invalid_frame" {
        refusals.0.push(format!(r#"frame ["ping",{{}},"tuple"]: expected error "invalid_frame", got {reply}"#));
    }
    refusals.assert_none();
    // Nothing happened: no chat, message, read, typing or participant.
    bob.expect_nothing_pending().await;
    assert_eq!(chat_list(&app, "bob").await.as_array().map(Vec::len), Some(1), "no chat created");
    assert_eq!(app.history("alice", &chat_id).await.len(), 1, "no message stored");
    let (_, bobs) = app.get(&format!("{CHATS}/{chat_id}"), "bob").await;
    assert_eq!(bobs["unreadCount"], 1, "{bobs}");
    assert_eq!(bobs["participants"], json!(["alice", "bob"]), "{bobs}");
}

// ---------------------------------------------------------------------------------------
// Chat ids in the path.

/// Every chat-scoped route, for a chat id segment already percent-encoded.
fn chat_routes(segment: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("{CHATS}/{segment}"), None),
        ("GET", format!("{CHATS}/{segment}/messages"), None),
        ("POST", format!("{CHATS}/{segment}/messages"), Some(json!({"content": "hi"}))),
        ("POST", format!("{CHATS}/{segment}/read"), Some(json!({"seq": 1}))),
        ("POST", format!("{CHATS}/{segment}/typing"), Some(json!({"isTyping": true}))),
        ("GET", format!("{CHATS}/{segment}/presence"), None),
        ("POST", format!("{CHATS}/{segment}/participants"), Some(json!({"userIds": ["carol"]}))),
    ]
}

async fn check_every_route_is_404(app: &TestApp, segment: &str, refusals: &mut Refusals) {
    for (method, path, body) in chat_routes(segment) {
        let shown: String = path.chars().take(120).collect();
        let what = format!("{method} {shown}");
        let answer = match &body {
            Some(body) => send_json(app, method, &path, "alice", body).await,
            None => send_raw(app, method, &path, "alice", None).await,
        };
        refusals.check(answer, StatusCode::NOT_FOUND, "not_found", &what);
    }
}

async fn chat_ids_of_any_shape_in_the_path_get_404_not_found_as_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let existing = app.create_chat("alice", &["bob"]).await;
    let unknown = format!("chat_{}", uuid::Uuid::now_v7().simple());
    let upper = format!("chat_{}", "A".repeat(32));
    let long_chat = format!("chat_{}", "a".repeat(10_000));
    let long_any = "x".repeat(10_000);
    let raw: [&str; 10] = [
        &unknown,
        &upper,
        "chat_",
        "1' OR '1'='1",
        "chat_0123456789abcdef0123456789abcdef' OR '1'='1",
        "'; DROP TABLE chats; --",
        "<script>alert(1)</script>",
        "чат_🎉",
        &long_chat,
        &long_any,
    ];
    let mut segments: Vec<String> = raw.iter().map(|s| encode(s)).collect();
    // Already encoded on purpose: NUL, path traversal, invalid UTF-8, a literal percent.
    segments.extend(
        ["%00", "chat_%00", "..%2F..", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%FF", "%C0%80", "%25", "%20"]
            .map(str::to_owned),
    );
    for segment in &segments {
        check_every_route_is_404(&app, segment, &mut refusals).await;
    }
    refusals.assert_none();
    // The existing chat was not touched by any of it.
    let chat = chat(&app, &existing).await;
    assert_eq!((chat["participants"].clone(), chat["lastSeq"].clone()), (json!(["alice", "bob"]), json!(0)));
    assert_alive(&app).await;
}

async fn a_real_chat_id_with_anything_appended_or_changed_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut refusals = Refusals::default();
    let existing = app.create_chat("alice", &["bob"]).await;
    let segments = [
        format!("{existing}%00"),
        format!("{existing}%20"),
        format!("%20{existing}"),
        format!("{existing}%27%20OR%20%271%27%3D%271"),
        format!("{existing}x"),
        existing.to_uppercase(),
        existing.replacen("chat_", "CHAT_", 1),
        existing.replacen("chat_", "msg_", 1),
        existing[..existing.len() - 1].to_owned(),
    ];
    for segment in &segments {
        check_every_route_is_404(&app, segment, &mut refusals).await;
    }
    refusals.assert_none();
    let chat = chat(&app, &existing).await;
    assert_eq!((chat["participants"].clone(), chat["lastSeq"].clone()), (json!(["alice", "bob"]), json!(0)));
}

// ---------------------------------------------------------------------------------------
// Hostile WebSocket frames.

/// The next event must be an `error` frame with `code`.
async fn expect_error(ws: &mut WsClient, code: &str, what: &str) -> Value {
    let frame = ws.expect("error").await;
    assert_eq!(frame["data"]["code"], code, "{what}: {frame}");
    assert!(frame["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {frame}");
    frame
}

/// Proves the socket still works as a subscriber: joins `chat` and receives a message.
async fn assert_still_subscribes(app: &TestApp, ws: &mut WsClient, chat: &str) {
    ws.expect_nothing_pending().await;
    ws.join(chat).await;
    let message = app.send("bob", chat, "after the hostile frame").await;
    assert_eq!(ws.expect("new-message").await["data"]["message"], message);
}

async fn a_websocket_frame_nested_100000_deep_gets_an_error_frame_and_the_socket_stays_up(backend: Backend) {
    // Large enough that the depth, not the size, is what gets refused.
    let app = spawn_app_with(backend, |s| s.max_frame_bytes = 4 * 1024 * 1024).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    let frames = [
        format!(r#"{{"event":"ping","data":{{"x":{}}}}}"#, nested_arrays(DEEP)),
        format!(r#"{{"event":"join-chat","data":{{"chatId":{}}}}}"#, nested_objects(DEEP)),
        format!(r#"{{"event":"ping","data":{{}},"ref":{}}}"#, nested_arrays(DEEP)),
        nested_arrays(DEEP),
    ];
    for frame in &frames {
        ws.send_text(frame).await;
        expect_error(&mut ws, "invalid_frame", &frame[..40]).await;
    }
    assert_still_subscribes(&app, &mut ws, &chat_id).await;
}

async fn websocket_frames_with_hostile_numbers_and_types_get_error_frames_and_the_socket_stays_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    let join =
        |last_seq: &str| format!(r#"{{"event":"join-chat","data":{{"chatId":"{chat_id}","lastSeq":{last_seq}}}}}"#);
    let cases = [
        // Not representable: the frame is not usable JSON.
        (join("1e999999"), "invalid_frame"),
        (join("-1e999999"), "invalid_frame"),
        // JSON, but not a sequence number.
        (join("1e20"), "validation_failed"),
        (join("9223372036854775808"), "validation_failed"),
        (join("-9223372036854775809"), "validation_failed"),
        (join("1.5"), "validation_failed"),
        (join("-1"), "validation_failed"),
        (join(r#""5""#), "validation_failed"),
        (join("[5]"), "validation_failed"),
        (format!(r#"{{"event":"join-chat","data":{{"chatId":"{chat_id}\u0000"}}}}"#), "not_found"),
        (r#"{"event":"join-chat","data":{"chatId":5}}"#.to_owned(), "validation_failed"),
        (r#"{"event":"refresh-token","data":{"token":["a"]}}"#.to_owned(), "validation_failed"),
        (r#"{"event":5,"data":{}}"#.to_owned(), "invalid_frame"),
        (r#"{"event":"ping","data":{},"ref":5}"#.to_owned(), "invalid_frame"),
        (r#"{"event":"ping\u0000","data":{}}"#.to_owned(), "unknown_event"),
    ];
    let mut wrong = Vec::new();
    for (frame, code) in &cases {
        ws.send_text(frame).await;
        let reply = ws.next_event().await;
        if reply["event"] != "error" || reply["data"]["code"] != *code || !reply["data"]["message"].is_string() {
            wrong.push(format!("{frame}: expected error {code:?}, got {reply}"));
        }
    }
    assert!(wrong.is_empty(), "{} frame(s) not refused as expected:\n{}", wrong.len(), wrong.join("\n"));
    // The largest lastSeq there is: nothing to replay, and the reply names the real last seq.
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat_id, "lastSeq": i64::MAX}})).await;
    let joined = ws.expect("chat-joined").await;
    assert_eq!(joined["data"]["lastSeq"], 0, "{joined}");
    let message = app.send("bob", &chat_id, "live").await;
    assert_eq!(ws.expect("new-message").await["data"]["message"], message, "the join works after all that");
}

/// Asserts the connection was failed as RFC 6455 §8.1 requires for a text message that is
/// not UTF-8: closed with 1007 (invalid payload) or 1002 (protocol error).
async fn assert_failed_for_invalid_utf8(ws: &mut WsClient) {
    match ws.next_incoming().await {
        Incoming::Closed(reason) => {
            let code = reason.map(|r| u16::from(r.code));
            assert!(matches!(code, Some(1007 | 1002)), "closed with {code:?}, expected 1007 or 1002");
        }
        Incoming::Event(event) => panic!("expected the connection to be failed, got {event}"),
    }
}

async fn a_text_message_with_invalid_utf8_fails_only_that_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let mut other = app.ws("alice").await;
    let mut ws = app.ws("alice").await;
    // awc checks text frames, but not the fragments of a fragmented text message.
    let bad = Bytes::from_static(b"{\"event\":\"ping\",\"data\":{},\"ref\":\"\xff\xfe\"}");
    ws.send_message(ws::Message::Continuation(actix_ws::Item::FirstText(bad.slice(..10)))).await;
    ws.send_message(ws::Message::Continuation(actix_ws::Item::Last(bad.slice(10..)))).await;
    assert_failed_for_invalid_utf8(&mut ws).await;
    assert_still_subscribes(&app, &mut other, &chat_id).await;
    assert_alive(&app).await;
}

async fn a_text_frame_with_invalid_utf8_fails_only_that_connection(backend: Backend) {
    use crate::raw_ws::{FIN, OP_CLOSE, OP_TEXT, RawWs};

    let app = spawn_app(backend).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let mut other = app.ws("alice").await;

    // A hand-made client: awc refuses to send a text frame that is not UTF-8.
    let mut raw = RawWs::connect(&format!("127.0.0.1:{}", app.port), &token("alice")).await;
    assert_eq!(raw.next_event().await["event"], "connected");
    raw.send_frame(FIN | OP_TEXT, b"{\"event\":\"ping\",\"data\":{},\"ref\":\"\xc0\x80\"}").await;
    // Nothing but the close frame comes back.
    let deadline = std::time::Instant::now() + crate::helpers::WAIT;
    let (opcode, body) = raw.next_frame(deadline).await.expect("a close frame");
    assert_eq!(opcode, OP_CLOSE, "only the close frame follows the bad one");
    let close_code = (body.len() >= 2).then(|| u16::from_be_bytes([body[0], body[1]]));
    assert_eq!(close_code, Some(1007), "invalid UTF-8 is 1007 (RFC 6455 §7.4.1)");

    assert_still_subscribes(&app, &mut other, &chat_id).await;
    assert_alive(&app).await;
}

// ---------------------------------------------------------------------------------------
// SQL and HTML in names.

const HOSTILE: [&str; 4] = [
    "'; DROP TABLE chats; --",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>\" OR 1=1 --",
    "Robert'); DELETE FROM chat_members; -- 🎉",
];

/// Fetches `path` and asserts a 200 served as `application/json` with `nosniff`.
async fn fetch_inert(app: &TestApp, path: &str, user: &str) -> Value {
    let answer = send_raw(app, "GET", path, user, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}");
    assert_eq!(answer.content_type.as_deref(), Some("application/json"), "{path}");
    assert_eq!(answer.nosniff.as_deref(), Some("nosniff"), "{path}");
    answer.json()
}

async fn sql_and_html_in_a_chat_name_are_stored_verbatim_and_served_as_inert_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut bob = app.ws("bob").await;
    for name in HOSTILE {
        let answer = send_json(&app, "POST", CHATS, "alice", &json!({"participants": ["bob"], "name": name})).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        assert_eq!(answer.nosniff.as_deref(), Some("nosniff"));
        let created = answer.json();
        assert_eq!(created["name"], name);
        let id = created["id"].as_str().expect("chat id");
        assert_eq!(fetch_inert(&app, &format!("{CHATS}/{id}"), "bob").await["name"], name);
        assert_eq!(bob.expect("chat-created").await["data"]["chat"]["name"], name, "pushed verbatim too");
    }
    let list = fetch_inert(&app, CHATS, "bob").await;
    let mut names: Vec<&str> =
        list["chats"].as_array().expect("chats").iter().map(|c| c["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected = HOSTILE.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    // The tables are intact.
    assert_alive(&app).await;
}

async fn sql_and_html_in_attachment_fields_are_stored_verbatim_and_served_as_inert_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat_id = app.create_chat("alice", &["bob"]).await;
    let mut sent = Vec::new();
    for (i, text) in HOSTILE.iter().enumerate() {
        let attachment = json!({
            "url": format!("https://files.example.com/{i}?q=%3Cscript%3E&x='--"),
            "type": "text/html",
            "name": text,
        });
        let answer = send_json(
            &app,
            "POST",
            &messages_path(&chat_id),
            "alice",
            &json!({"content": text, "attachments": [attachment]}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.nosniff.as_deref(), Some("nosniff"));
        let message = answer.json();
        assert_eq!(message["attachments"], json!([attachment]), "stored verbatim");
        sent.push(message);
    }
    let page = fetch_inert(&app, &format!("{}?limit=200", messages_path(&chat_id)), "bob").await;
    assert_eq!(page["messages"], json!(sent));
    assert_alive(&app).await;
}
