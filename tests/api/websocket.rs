//! The WebSocket contract (PROTOCOL.md §2 and §4): authentication before the 101, the
//! greeting, every client event and its reply, which connections each pushed event
//! reaches, bad frames, size limit, several devices, heartbeat, token refresh and expiry,
//! and the 1001 close on shutdown.

use actix_web::http::StatusCode;
use awc::error::WsClientError;
use awc::ws::{self, Frame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, WAIT, WsClient, now_secs, spawn_app, spawn_app_with, token, token_with};

crate::both_backends!(
    an_upgrade_without_a_token_is_refused_with_401,
    an_upgrade_with_a_bad_or_expired_token_is_refused_with_401,
    a_token_in_the_query_opens_the_socket,
    a_token_in_the_authorization_header_opens_the_socket,
    a_token_in_the_access_token_cookie_opens_the_socket,
    the_first_frame_is_the_connected_greeting,
    join_chat_replies_chat_joined_with_the_last_seq_and_echoes_the_ref,
    joining_twice_replies_already_in_chat,
    leave_chat_replies_chat_left_also_when_not_in_the_chat,
    listen_all_and_leave_all_reply_with_success,
    debug_status_reports_the_connection_and_its_subscriptions,
    ping_replies_pong_with_the_server_time,
    a_joined_connection_receives_new_message_with_the_rest_body,
    a_participant_that_did_not_join_receives_no_new_message,
    after_leave_chat_no_new_message_arrives,
    after_leave_all_chats_no_chat_event_arrives,
    listen_all_connections_get_chat_updated_with_their_own_unread_count,
    a_connection_that_does_not_listen_to_all_gets_no_chat_updated,
    chat_created_reaches_every_connection_of_every_participant_and_no_outsider,
    joining_a_chat_of_others_is_not_found_and_delivers_nothing,
    joining_an_unknown_chat_is_not_found,
    joining_a_malformed_chat_id_is_not_found,
    text_that_is_not_json_gets_invalid_frame_and_the_socket_stays_up,
    json_without_an_event_gets_invalid_frame_and_the_socket_stays_up,
    an_unknown_event_gets_unknown_event_and_the_socket_stays_up,
    a_missing_field_gets_validation_failed_and_the_socket_stays_up,
    a_field_of_the_wrong_type_gets_validation_failed_and_the_socket_stays_up,
    data_that_is_not_an_object_gets_validation_failed_and_the_socket_stays_up,
    a_binary_frame_gets_unsupported_frame_and_the_socket_stays_up,
    a_frame_larger_than_the_limit_closes_the_socket_with_1009,
    every_device_of_a_user_receives_each_new_message,
    a_bad_frame_on_one_device_does_not_affect_the_other,
    a_client_that_answers_pings_stays_connected_across_many_intervals,
    a_silent_client_is_closed_after_three_heartbeat_intervals,
    refresh_token_with_a_fresh_token_of_the_same_user_replies_token_refreshed,
    refresh_token_with_a_token_of_another_user_is_forbidden,
    refresh_token_with_garbage_is_unauthorized,
    a_token_that_expires_while_connected_closes_the_socket_with_4001,
    a_refreshed_token_keeps_the_socket_open_past_the_old_expiry,
    stopping_the_server_closes_open_sockets_with_1001,
);

// ---------------------------------------------------------------------------------------
// Helpers local to this file.

/// The status a refused upgrade answered with; panics when the upgrade succeeded.
fn refused_status(result: Result<WsClient, WsClientError>) -> StatusCode {
    match result {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(WsClientError::InvalidResponseStatus(status)) => status,
        Err(other) => panic!("expected a refused upgrade, got {other}"),
    }
}

/// The sorted keys of a JSON object, to pin a frame's exact shape.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// `2026-11-22T10:00:00.123Z`: RFC 3339, UTC, with milliseconds.
fn assert_rfc3339_millis(value: &Value) {
    let s = value.as_str().unwrap_or_else(|| panic!("expected a timestamp string, got {value}"));
    assert!(humantime::parse_rfc3339(s).is_ok(), "not RFC 3339: {s}");
    assert_eq!(s.len(), 24, "not UTC with milliseconds: {s}");
    assert!(s.ends_with('Z'), "not UTC: {s}");
}

/// The next event must be an `error` frame with this code, failing `event`, echoing `reference`.
async fn expect_error(ws: &mut WsClient, code: &str, event: Option<&str>, reference: Option<&str>) -> Value {
    let frame = ws.expect("error").await;
    assert_eq!(frame["data"]["code"], code, "{frame}");
    assert!(frame["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "an error says why: {frame}");
    assert_eq!(frame["data"].get("event").and_then(Value::as_str), event, "{frame}");
    assert_eq!(frame.get("ref").and_then(Value::as_str), reference, "{frame}");
    frame
}

/// Sends a bad text frame, expects the error, then proves the connection still works.
async fn assert_bad_frame_is_answered(
    backend: Backend,
    text: &str,
    code: &str,
    event: Option<&str>,
    reference: Option<&str>,
) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    ws.send_text(text).await;
    expect_error(&mut ws, code, event, reference).await;
    ws.expect_nothing_pending().await;
    // Still a working subscriber, not merely a socket that answers pings.
    ws.join(&chat).await;
    let message = app.send("bob", &chat, "after the bad frame").await;
    let event = ws.expect("new-message").await;
    assert_eq!(event["data"]["message"], message);
}

type RawSocket = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// A socket read frame by frame, pings included and not answered unless the test does.
async fn raw_socket(app: &TestApp, user: &str) -> RawSocket {
    let request = app.client.ws(app.ws_url(&format!("?token={}", token(user))));
    let (_response, socket) =
        tokio::time::timeout(WAIT, request.connect()).await.expect("upgrade in time").expect("upgrade");
    socket
}

async fn next_raw_frame(socket: &mut RawSocket) -> Frame {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a frame within the wait")
        .expect("the socket is still open")
        .expect("a well-formed frame")
}

fn text_event(frame: &Frame) -> Value {
    match frame {
        Frame::Text(bytes) => serde_json::from_slice(bytes).expect("JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Authentication before the 101.

async fn an_upgrade_without_a_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(refused_status(app.ws_raw("").await), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_status(app.ws_raw("?token=").await), StatusCode::UNAUTHORIZED);
    // The refusal is a regular error body, as on REST.
    let (status, body) = app.call("GET", "/messaging", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(body["message"].is_string(), "{body}");
}

async fn an_upgrade_with_a_bad_or_expired_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let wrong_secret = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-0123456789");
        let claims = json!({"sub": "alice", "exp": now_secs() + 3600});
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
    };
    let cases = [
        ("garbage", "not-a-jwt".to_owned()),
        ("expired an hour ago", token_with(json!({"sub": "alice", "exp": now_secs() - 3600}))),
        ("signed with another secret", wrong_secret),
        ("without exp", token_with(json!({"sub": "alice"}))),
        ("without a user", token_with(json!({"exp": now_secs() + 3600}))),
    ];
    for (what, bad) in cases {
        let status = refused_status(app.ws_raw(&format!("?token={bad}")).await);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {what}");
        let header = app.client.ws(app.ws_url("")).bearer_auth(&bad);
        assert_eq!(refused_status(app.ws_request(header).await), StatusCode::UNAUTHORIZED, "header token {what}");
    }
}

async fn a_token_in_the_query_opens_the_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    let hello = ws.expect("connected").await;
    assert_eq!(hello["data"]["userId"], "alice");
    ws.expect_nothing_pending().await;
}

async fn a_token_in_the_authorization_header_opens_the_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    let request = app.client.ws(app.ws_url("")).bearer_auth(token("bob"));
    let mut ws = app.ws_request(request).await.expect("upgrade");
    let hello = ws.expect("connected").await;
    assert_eq!(hello["data"]["userId"], "bob");
    ws.expect_nothing_pending().await;
}

async fn a_token_in_the_access_token_cookie_opens_the_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    let request = app.client.ws(app.ws_url("")).header("Cookie", format!("sAccessToken={}", token("carol")));
    let mut ws = app.ws_request(request).await.expect("upgrade");
    let hello = ws.expect("connected").await;
    assert_eq!(hello["data"]["userId"], "carol");
    ws.expect_nothing_pending().await;
}

// ---------------------------------------------------------------------------------------
// Greeting and the replies to client events.

async fn the_first_frame_is_the_connected_greeting(backend: Backend) {
    let app = spawn_app(backend).await;
    let query = format!("?token={}", token("alice"));
    let mut first = app.ws_raw(&query).await.expect("upgrade");
    let mut second = app.ws_raw(&query).await.expect("upgrade");
    let hello = first.expect("connected").await;
    assert_eq!(keys(&hello), ["data", "event"], "{hello}");
    assert_eq!(keys(&hello["data"]), ["connectionId", "heartbeatIntervalMs", "userId"], "{hello}");
    assert_eq!(hello["data"]["userId"], "alice");
    assert_eq!(hello["data"]["heartbeatIntervalMs"], 20_000, "the default interval");
    let connection = hello["data"]["connectionId"].as_str().expect("connectionId is a string");
    assert!(!connection.is_empty());
    let other = second.expect("connected").await;
    assert_ne!(other["data"]["connectionId"], connection, "each connection has its own id");
    // The id is the one debug-status reports as socketId.
    first.send_json(json!({"event": "debug-status", "data": {}})).await;
    let status = first.expect("debug-status").await;
    assert_eq!(status["data"]["socketId"], connection);
}

async fn join_chat_replies_chat_joined_with_the_last_seq_and_echoes_the_ref(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("bob", &chat, "one").await;
    app.send("bob", &chat, "two").await;
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat}, "ref": "j1"})).await;
    let joined = ws.next_event().await;
    assert_eq!(
        joined,
        json!({"event": "chat-joined", "data": {"chatId": chat, "status": "success", "lastSeq": 2}, "ref": "j1"})
    );
    // Without a ref, the reply carries none.
    let empty = app.create_chat("alice", &["carol"]).await;
    ws.expect("chat-created").await;
    let joined = ws.join(&empty).await;
    assert_eq!(joined, json!({"event": "chat-joined", "data": {"chatId": empty, "status": "success", "lastSeq": 0}}));
}

async fn joining_twice_replies_already_in_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    ws.join(&chat).await;
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat}, "ref": "again"})).await;
    let again = ws.expect("chat-joined").await;
    assert_eq!(again["ref"], "again");
    assert_eq!(again["data"]["chatId"], chat);
    assert_eq!(again["data"]["status"], "success");
    assert_eq!(again["data"]["message"], "already in chat");
    // Joined once: a message arrives once.
    let message = app.send("bob", &chat, "once").await;
    assert_eq!(ws.expect("new-message").await["data"]["message"], message);
    ws.expect_nothing_pending().await;
}

async fn leave_chat_replies_chat_left_also_when_not_in_the_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    ws.join(&chat).await;
    ws.send_json(json!({"event": "leave-chat", "data": {"chatId": chat}, "ref": "l1"})).await;
    assert_eq!(
        ws.next_event().await,
        json!({"event": "chat-left", "data": {"chatId": chat, "status": "success"}, "ref": "l1"})
    );
    ws.send_json(json!({"event": "leave-chat", "data": {"chatId": chat}, "ref": "l2"})).await;
    assert_eq!(
        ws.next_event().await,
        json!({"event": "chat-left", "data": {"chatId": chat, "status": "success", "message": "not in chat"}, "ref": "l2"})
    );
}

async fn listen_all_and_leave_all_reply_with_success(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "listen-all-chats", "data": {}, "ref": "la"})).await;
    assert_eq!(
        ws.next_event().await,
        json!({"event": "listening-all-chats", "data": {"status": "success"}, "ref": "la"})
    );
    ws.send_json(json!({"event": "leave-all-chats", "data": {}, "ref": "lv"})).await;
    assert_eq!(ws.next_event().await, json!({"event": "left-all-chats", "data": {"status": "success"}, "ref": "lv"}));
}

async fn debug_status_reports_the_connection_and_its_subscriptions(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_chat("alice", &["bob"]).await;
    let second = app.create_chat("alice", &["carol"]).await;
    let mut alice = app.ws_raw(&format!("?token={}", token("alice"))).await.expect("upgrade");
    let socket_id = alice.expect("connected").await["data"]["connectionId"].clone();
    let random = socket_id.as_str().and_then(|s| s.strip_prefix("conn_")).unwrap_or("");
    assert!(random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()), "random, not a count: {socket_id}");
    let mut bob = app.ws("bob").await;
    alice.join(&first).await;
    alice.join(&second).await;
    alice.listen_all().await;
    alice.send_json(json!({"event": "debug-status", "data": {}, "ref": "d1"})).await;
    let status = alice.expect("debug-status").await;
    assert_eq!(status["ref"], "d1");
    let mut chats = vec![first.clone(), second.clone()];
    chats.sort();
    assert_eq!(
        status["data"],
        json!({
            "userId": "alice", "connected": true, "socketId": socket_id, "chats": chats,
            "listeningAll": true,
        }),
        "nothing about other users or node-wide totals"
    );
    // Another connection's view: its own (empty) subscriptions, nothing of alice's.
    bob.send_json(json!({"event": "debug-status", "data": {}})).await;
    let status = bob.expect("debug-status").await;
    assert_eq!(status["data"]["userId"], "bob");
    assert_eq!(status["data"]["chats"], json!([]));
    assert_eq!(status["data"]["listeningAll"], false);
    assert_eq!(status["data"].as_object().map(|o| o.len()), Some(5), "{status}");
}

async fn ping_replies_pong_with_the_server_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "ping", "data": {}, "ref": "p1"})).await;
    let pong = ws.expect("pong").await;
    assert_eq!(pong["ref"], "p1");
    assert_eq!(keys(&pong["data"]), ["serverTime"]);
    assert_rfc3339_millis(&pong["data"]["serverTime"]);
    let server = humantime::parse_rfc3339(pong["data"]["serverTime"].as_str().unwrap()).unwrap();
    let skew = server.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().abs_diff(now_secs());
    assert!(skew <= 2, "serverTime is the current time, off by {skew} s");
}

// ---------------------------------------------------------------------------------------
// Who receives new-message, chat-updated and chat-created.

async fn a_joined_connection_receives_new_message_with_the_rest_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    let mut alice = app.ws("alice").await;
    bob.join(&chat).await;
    alice.join(&chat).await;
    let message = app.send("alice", &chat, "hello bob").await;
    let expected = json!({"event": "new-message", "data": {"chatId": chat, "message": message}});
    assert_eq!(bob.next_event().await, expected);
    // The sender's own joined connection gets it too.
    assert_eq!(alice.next_event().await, expected);
    bob.expect_nothing_pending().await;
}

async fn a_participant_that_did_not_join_receives_no_new_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut joined = app.ws("alice").await;
    let mut idle = app.ws("bob").await;
    joined.join(&chat).await;
    app.send("alice", &chat, "only for joined connections").await;
    joined.expect("new-message").await;
    idle.expect_nothing_pending().await;
}

async fn after_leave_chat_no_new_message_arrives(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    ws.join(&chat).await;
    app.send("bob", &chat, "before leaving").await;
    ws.expect("new-message").await;
    ws.send_json(json!({"event": "leave-chat", "data": {"chatId": chat}})).await;
    ws.expect("chat-left").await;
    app.send("bob", &chat, "after leaving").await;
    ws.expect_nothing_pending().await;
    // Joining again resumes delivery.
    ws.join(&chat).await;
    let message = app.send("bob", &chat, "after rejoining").await;
    assert_eq!(ws.expect("new-message").await["data"]["message"], message);
}

async fn after_leave_all_chats_no_chat_event_arrives(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_chat("alice", &["bob"]).await;
    let second = app.create_chat("alice", &["bob"]).await;
    let mut ws = app.ws("alice").await;
    ws.join(&first).await;
    ws.join(&second).await;
    ws.listen_all().await;
    ws.send_json(json!({"event": "leave-all-chats", "data": {}})).await;
    ws.expect("left-all-chats").await;
    app.send("bob", &first, "to the first chat").await;
    app.send("bob", &second, "to the second chat").await;
    ws.expect_nothing_pending().await;
    ws.send_json(json!({"event": "debug-status", "data": {}})).await;
    let status = ws.expect("debug-status").await;
    assert_eq!(status["data"]["chats"], json!([]));
    assert_eq!(status["data"]["listeningAll"], false);
}

async fn listen_all_connections_get_chat_updated_with_their_own_unread_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    let mut alice = app.ws("alice").await;
    bob.listen_all().await;
    alice.listen_all().await;

    let first = app.send("alice", &chat, "one").await;
    let update = bob.next_event().await;
    assert_eq!(
        update,
        json!({"event": "chat-updated", "data": {"chatId": chat, "lastMessage": first, "unreadCount": 1}})
    );
    // The sender's own read marker moved to her message: nothing unread for her.
    let own = alice.next_event().await;
    assert_eq!(own, json!({"event": "chat-updated", "data": {"chatId": chat, "lastMessage": first, "unreadCount": 0}}));

    let second = app.send("alice", &chat, "two").await;
    let update = bob.expect("chat-updated").await;
    assert_eq!(update["data"]["unreadCount"], 2);
    assert_eq!(update["data"]["lastMessage"], second);
    assert_eq!(alice.expect("chat-updated").await["data"]["unreadCount"], 0);
    // Listening to all chats is not joining them: no new-message.
    bob.expect_nothing_pending().await;
    alice.expect_nothing_pending().await;
}

async fn a_connection_that_does_not_listen_to_all_gets_no_chat_updated(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut listening = app.ws("bob").await;
    let mut other_device = app.ws("bob").await;
    listening.listen_all().await;
    app.send("alice", &chat, "hi").await;
    listening.expect("chat-updated").await;
    other_device.expect_nothing_pending().await;
}

async fn chat_created_reaches_every_connection_of_every_participant_and_no_outsider(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice_phone = app.ws("alice").await;
    let mut alice_laptop = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    let mut carol_listening = app.ws("carol").await;
    let mut mallory = app.ws("mallory").await;
    carol_listening.listen_all().await;
    // Subscriptions to other chats do not matter.
    let unrelated = app.create_chat("alice", &["mallory"]).await;
    alice_phone.expect("chat-created").await;
    alice_laptop.expect("chat-created").await;
    mallory.expect("chat-created").await;
    alice_laptop.join(&unrelated).await;

    let (status, chat) =
        app.post("/v1/messaging/chats", "alice", json!({"participants": ["bob", "carol"], "name": "Trio"})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    let expected = json!({"event": "chat-created", "data": {"chat": chat}});
    for (who, ws) in [
        ("alice's phone", &mut alice_phone),
        ("alice's laptop", &mut alice_laptop),
        ("bob", &mut bob),
        ("carol", &mut carol_listening),
    ] {
        assert_eq!(ws.next_event().await, expected, "{who}");
    }
    mallory.expect_nothing_pending().await;
}

// ---------------------------------------------------------------------------------------
// join-chat refused.

async fn joining_a_chat_of_others_is_not_found_and_delivers_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut mallory = app.ws("mallory").await;
    mallory.send_json(json!({"event": "join-chat", "data": {"chatId": chat}, "ref": "sneak"})).await;
    expect_error(&mut mallory, "not_found", Some("join-chat"), Some("sneak")).await;
    app.send("alice", &chat, "private").await;
    mallory.expect_nothing_pending().await;
    mallory.send_json(json!({"event": "debug-status", "data": {}})).await;
    assert_eq!(mallory.expect("debug-status").await["data"]["chats"], json!([]));
}

async fn joining_an_unknown_chat_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = format!("chat_{}", uuid::Uuid::new_v4().simple());
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": unknown}, "ref": "u"})).await;
    let error = expect_error(&mut ws, "not_found", Some("join-chat"), Some("u")).await;
    // Same answer as for a chat of others: no existence oracle.
    let chat = app.create_chat("bob", &["carol"]).await;
    ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat}, "ref": "u"})).await;
    assert_eq!(ws.expect("error").await, error);
    app.send("bob", &chat, "not for alice").await;
    ws.expect_nothing_pending().await;
}

async fn joining_a_malformed_chat_id_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    for (i, bad) in ["nope", "chat_", "chat_XYZ", "../../etc/passwd", ""].into_iter().enumerate() {
        let reference = format!("m{i}");
        ws.send_json(json!({"event": "join-chat", "data": {"chatId": bad}, "ref": reference})).await;
        expect_error(&mut ws, "not_found", Some("join-chat"), Some(&reference)).await;
    }
    ws.expect_nothing_pending().await;
}

// ---------------------------------------------------------------------------------------
// Bad frames: an error frame, never a disconnect.

async fn text_that_is_not_json_gets_invalid_frame_and_the_socket_stays_up(backend: Backend) {
    assert_bad_frame_is_answered(backend, "hello? {", "invalid_frame", None, None).await;
}

async fn json_without_an_event_gets_invalid_frame_and_the_socket_stays_up(backend: Backend) {
    assert_bad_frame_is_answered(backend, r#"{"data": {"chatId": "chat_x"}}"#, "invalid_frame", None, None).await;
}

async fn an_unknown_event_gets_unknown_event_and_the_socket_stays_up(backend: Backend) {
    let frame = r#"{"event": "send-message", "data": {"content": "hi"}, "ref": "u1"}"#;
    assert_bad_frame_is_answered(backend, frame, "unknown_event", Some("send-message"), Some("u1")).await;
}

async fn a_missing_field_gets_validation_failed_and_the_socket_stays_up(backend: Backend) {
    let frame = r#"{"event": "join-chat", "data": {}, "ref": "v1"}"#;
    assert_bad_frame_is_answered(backend, frame, "validation_failed", Some("join-chat"), Some("v1")).await;
}

async fn a_field_of_the_wrong_type_gets_validation_failed_and_the_socket_stays_up(backend: Backend) {
    let frame = r#"{"event": "join-chat", "data": {"chatId": 42}, "ref": "v2"}"#;
    assert_bad_frame_is_answered(backend, frame, "validation_failed", Some("join-chat"), Some("v2")).await;
}

async fn data_that_is_not_an_object_gets_validation_failed_and_the_socket_stays_up(backend: Backend) {
    let frame = r#"{"event": "ping", "data": [1, 2], "ref": "v3"}"#;
    assert_bad_frame_is_answered(backend, frame, "validation_failed", Some("ping"), Some("v3")).await;
}

async fn a_binary_frame_gets_unsupported_frame_and_the_socket_stays_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    let frame = json!({"event": "ping", "data": {}}).to_string();
    ws.send_message(ws::Message::Binary(frame.into_bytes().into())).await;
    expect_error(&mut ws, "unsupported_frame", None, None).await;
    ws.expect_nothing_pending().await;
}

async fn a_frame_larger_than_the_limit_closes_the_socket_with_1009(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_frame_bytes = 1024).await;
    let mut ws = app.ws("alice").await;
    // Just under the limit: an ordinary frame.
    let tag = "x".repeat(900);
    ws.send_json(json!({"event": "ping", "data": {}, "ref": tag})).await;
    assert_eq!(ws.expect("pong").await["ref"], tag.as_str());
    // Over it: closed with 1009.
    let tag = "x".repeat(2048);
    ws.send_json(json!({"event": "ping", "data": {}, "ref": tag})).await;
    assert_eq!(ws.expect_close().await, Some(1009));
}

// ---------------------------------------------------------------------------------------
// Several devices of one user.

async fn every_device_of_a_user_receives_each_new_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut phone = app.ws("alice").await;
    let mut laptop = app.ws("alice").await;
    phone.join(&chat).await;
    laptop.join(&chat).await;
    for text in ["one", "two", "three"] {
        let message = app.send("bob", &chat, text).await;
        assert_eq!(phone.expect("new-message").await["data"]["message"], message, "phone");
        assert_eq!(laptop.expect("new-message").await["data"]["message"], message, "laptop");
    }
    phone.expect_nothing_pending().await;
    laptop.expect_nothing_pending().await;
}

async fn a_bad_frame_on_one_device_does_not_affect_the_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut phone = app.ws("alice").await;
    let mut laptop = app.ws("alice").await;
    phone.join(&chat).await;
    laptop.join(&chat).await;
    phone.send_text("{{{ not json").await;
    expect_error(&mut phone, "invalid_frame", None, None).await;
    laptop.expect_nothing_pending().await;
    let message = app.send("bob", &chat, "both still subscribed").await;
    assert_eq!(phone.expect("new-message").await["data"]["message"], message);
    assert_eq!(laptop.expect("new-message").await["data"]["message"], message);
}

// ---------------------------------------------------------------------------------------
// Heartbeat.

const HEARTBEAT: Duration = Duration::from_millis(200);

async fn a_client_that_answers_pings_stays_connected_across_many_intervals(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.heartbeat_interval_ms = HEARTBEAT.as_millis() as u64).await;
    let started = Instant::now();
    let mut socket = raw_socket(&app, "alice").await;
    let hello = text_event(&next_raw_frame(&mut socket).await);
    assert_eq!(hello["data"]["heartbeatIntervalMs"], 200);
    // Only pong frames go out: no application traffic keeps this client alive.
    let mut pings = 0;
    while pings < 8 {
        match next_raw_frame(&mut socket).await {
            Frame::Ping(payload) => {
                pings += 1;
                socket.send(ws::Message::Pong(payload)).await.expect("send pong");
            }
            other => panic!("after {pings} pings and {:?}, expected a ping, got {other:?}", started.elapsed()),
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= HEARTBEAT * 8, "8 pings came within {elapsed:?}: one per interval expected");
    // Eight intervals later, well past three, the connection still works.
    socket
        .send(ws::Message::Text(json!({"event": "ping", "data": {}, "ref": "alive"}).to_string().into()))
        .await
        .unwrap();
    loop {
        match next_raw_frame(&mut socket).await {
            Frame::Ping(payload) => socket.send(ws::Message::Pong(payload)).await.expect("send pong"),
            frame => {
                let pong = text_event(&frame);
                assert_eq!((pong["event"].as_str(), pong["ref"].as_str()), (Some("pong"), Some("alive")), "{pong}");
                break;
            }
        }
    }
}

async fn a_silent_client_is_closed_after_three_heartbeat_intervals(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.heartbeat_interval_ms = HEARTBEAT.as_millis() as u64).await;
    let started = Instant::now();
    let mut socket = raw_socket(&app, "alice").await;
    text_event(&next_raw_frame(&mut socket).await);
    let mut pings = 0;
    let reason = loop {
        match next_raw_frame(&mut socket).await {
            Frame::Ping(_) => pings += 1,
            Frame::Close(reason) => break reason,
            other => panic!("expected pings then a close, got {other:?}"),
        }
    };
    let elapsed = started.elapsed();
    assert!(reason.is_some(), "the server closes with a close frame carrying a code");
    assert!(elapsed >= HEARTBEAT * 3, "closed after {elapsed:?}, before three intervals of silence");
    assert!(pings >= 2, "closed after only {pings} unanswered pings");
    assert!(elapsed < HEARTBEAT * 15, "a silent client was kept for {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// Token refresh and expiry.

async fn refresh_token_with_a_fresh_token_of_the_same_user_replies_token_refreshed(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    let exp = now_secs() + 7200;
    let fresh = token_with(json!({"sub": "alice", "exp": exp}));
    ws.send_json(json!({"event": "refresh-token", "data": {"token": fresh}, "ref": "r1"})).await;
    let refreshed = ws.expect("token-refreshed").await;
    assert_eq!(refreshed["ref"], "r1");
    assert_eq!(keys(&refreshed["data"]), ["expiresAt"]);
    assert_rfc3339_millis(&refreshed["data"]["expiresAt"]);
    let expected = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_secs(exp)).to_string();
    assert_eq!(refreshed["data"]["expiresAt"], expected);
    ws.expect_nothing_pending().await;
}

async fn refresh_token_with_a_token_of_another_user_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "refresh-token", "data": {"token": token("mallory")}, "ref": "r2"})).await;
    expect_error(&mut ws, "forbidden", Some("refresh-token"), Some("r2")).await;
    ws.expect_nothing_pending().await;
    ws.send_json(json!({"event": "debug-status", "data": {}})).await;
    assert_eq!(ws.expect("debug-status").await["data"]["userId"], "alice", "still alice's connection");
}

async fn refresh_token_with_garbage_is_unauthorized(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = app.ws("alice").await;
    ws.send_json(json!({"event": "refresh-token", "data": {"token": "garbage"}, "ref": "r3"})).await;
    expect_error(&mut ws, "unauthorized", Some("refresh-token"), Some("r3")).await;
    let expired = token_with(json!({"sub": "alice", "exp": now_secs() - 3600}));
    ws.send_json(json!({"event": "refresh-token", "data": {"token": expired}, "ref": "r4"})).await;
    expect_error(&mut ws, "unauthorized", Some("refresh-token"), Some("r4")).await;
    ws.expect_nothing_pending().await;
}

async fn a_token_that_expires_while_connected_closes_the_socket_with_4001(backend: Backend) {
    let app = spawn_app(backend).await;
    let short = token_with(json!({"sub": "alice", "exp": now_secs() + 2}));
    let mut ws = app.ws_raw(&format!("?token={short}")).await.expect("a token valid for 2 s is accepted");
    ws.expect("connected").await;
    ws.expect_nothing_pending().await;
    assert_eq!(ws.expect_close().await, Some(4001));
}

async fn a_refreshed_token_keeps_the_socket_open_past_the_old_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = now_secs();
    let mut refreshed =
        app.ws_raw(&format!("?token={}", token_with(json!({"sub": "alice", "exp": now + 2})))).await.unwrap();
    refreshed.expect("connected").await;
    // Expires one second after the other one's old token: its close proves that time passed.
    let mut clock = app.ws_raw(&format!("?token={}", token_with(json!({"sub": "bob", "exp": now + 3})))).await.unwrap();
    clock.expect("connected").await;
    let fresh = token_with(json!({"sub": "alice", "exp": now + 3600}));
    refreshed.send_json(json!({"event": "refresh-token", "data": {"token": fresh}})).await;
    refreshed.expect("token-refreshed").await;
    assert_eq!(clock.expect_close().await, Some(4001));
    refreshed.expect_nothing_pending().await;
}

// ---------------------------------------------------------------------------------------
// Shutdown.

async fn stopping_the_server_closes_open_sockets_with_1001(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut alice = app.ws("alice").await;
    let mut bob = app.ws("bob").await;
    alice.join(&chat).await;
    // TestApp holds a (non-Send) awc client, so it is dropped here: its Drop blocks until
    // the server stopped. The close frames wait in the client sockets' receive buffers.
    drop(app);
    assert_eq!(alice.expect_close().await, Some(1001));
    assert_eq!(bob.expect_close().await, Some(1001));
}
