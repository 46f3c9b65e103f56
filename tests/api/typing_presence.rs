//! Typing indicators and presence (issue: conversation features, points 2 and 3).

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app, spawn_app_with};

crate::both_backends!(
    typing_is_pushed_to_the_other_joined_connections_once_per_spell,
    a_quiet_typist_lapses_to_false_by_itself,
    a_connection_joining_mid_spell_is_told_who_is_typing,
    a_typist_who_disconnects_stops_typing,
    outsiders_cannot_type,
    presence_is_announced_on_first_connect_and_last_disconnect_to_contacts_only,
    presence_endpoint_lists_online_members_and_last_seen_which_survives_a_restart,
    presence_held_for_a_batch_goes_out_before_the_next_other_frame,
);

fn typing(chat: &str) -> String {
    format!("/v1/messaging/chats/{chat}/typing")
}

async fn typing_is_pushed_to_the_other_joined_connections_once_per_spell(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let mut alice_other_device = app.ws("alice").await;
    alice_other_device.join(&chat).await;

    let (status, body) = app.post(&typing(&chat), "alice", json!({"isTyping": true})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, json!(null)));
    let event = bob.expect("user-typing").await;
    assert_eq!(event["data"], json!({"chatId": chat, "userId": "alice", "isTyping": true}));
    for _ in 0..5 {
        app.post(&typing(&chat), "alice", json!({"isTyping": true})).await;
    }
    bob.expect_nothing_pending().await;
    alice_other_device.expect_nothing_pending().await;

    app.post(&typing(&chat), "alice", json!({"isTyping": false})).await;
    assert_eq!(bob.expect("user-typing").await["data"]["isTyping"], false);
    app.post(&typing(&chat), "alice", json!({"isTyping": false})).await;
    bob.expect_nothing_pending().await;
}

async fn a_connection_joining_mid_spell_is_told_who_is_typing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.post(&typing(&chat), "alice", json!({"isTyping": true})).await;
    // Bob opens the chat after alice started typing: he learns it on joining.
    let mut bob = app.ws("bob").await;
    bob.send_json(json!({"event": "join-chat", "data": {"chatId": chat}})).await;
    let typing_now = bob.expect("user-typing").await;
    assert_eq!(typing_now["data"], json!({"chatId": chat, "userId": "alice", "isTyping": true}));
    bob.expect("chat-joined").await;
    // Alice's own other device is not told about herself.
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;
    alice.expect_nothing_pending().await;
    app.post(&typing(&chat), "alice", json!({"isTyping": false})).await;
    assert_eq!(bob.expect("user-typing").await["data"]["isTyping"], false);
}

async fn a_quiet_typist_lapses_to_false_by_itself(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.typing_timeout_ms = 300).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    // Taken before the request: the server's spell starts later, so its 300 ms window
    // ends at least 300 ms after this, however late the frames arrive.
    let before_the_spell = std::time::Instant::now();
    app.post(&typing(&chat), "alice", json!({"isTyping": true})).await;
    assert_eq!(bob.expect("user-typing").await["data"]["isTyping"], true);
    assert_eq!(bob.expect("user-typing").await["data"], json!({"chatId": chat, "userId": "alice", "isTyping": false}));
    assert!(before_the_spell.elapsed() >= std::time::Duration::from_millis(300), "lapsed too early");
}

async fn a_typist_who_disconnects_stops_typing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await.with_presence();
    bob.join(&chat).await;
    let alice = app.ws("alice").await;
    assert_eq!(bob.expect("user-online").await["data"]["userId"], "alice");
    app.post(&typing(&chat), "alice", json!({"isTyping": true})).await;
    bob.expect("user-typing").await;
    drop(alice);
    let stopped = bob.expect("user-typing").await;
    assert_eq!(stopped["data"]["isTyping"], false);
    assert_eq!(bob.expect("user-offline").await["data"]["userId"], "alice");
}

async fn outsiders_cannot_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let (status, body) = app.post(&typing(&chat), "mallory", json!({"isTyping": true})).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    let (status, _) = app.post(&typing(&chat), "alice", json!({"isTyping": "yes"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bob.expect_nothing_pending().await;
}

async fn presence_is_announced_on_first_connect_and_last_disconnect_to_contacts_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_chat("alice", &["bob"]).await;
    app.create_chat("carol", &["dave"]).await;
    let mut bob = app.ws("bob").await.with_presence();
    let mut carol = app.ws("carol").await.with_presence();

    let phone = app.ws("alice").await;
    let online = bob.expect("user-online").await;
    assert_eq!(online["data"], json!({"userId": "alice"}));
    let laptop = app.ws("alice").await;
    bob.expect_nothing_pending().await;
    drop(phone);
    // The laptop is still connected: still online. Closing it is the last disconnect.
    drop(laptop);
    let offline = bob.expect("user-offline").await;
    assert_eq!(offline["data"]["userId"], "alice");
    assert!(offline["data"]["lastSeen"].as_str().unwrap().ends_with('Z'));
    bob.expect_nothing_pending().await;
    carol.expect_nothing_pending().await;
}

async fn presence_endpoint_lists_online_members_and_last_seen_which_survives_a_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob", "carol"]).await;
    let path = format!("/v1/messaging/chats/{chat}/presence");
    let mut alice = app.ws("alice").await.with_presence();
    let bob = app.ws("bob").await;
    alice.expect("user-online").await;
    drop(bob);
    let offline = alice.expect("user-offline").await;
    let bob_seen = offline["data"]["lastSeen"].clone();

    let (status, presence) = app.get(&path, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(presence, json!({"online": ["alice"], "lastSeen": {"bob": bob_seen, "carol": null}}));
    let (status, _) = app.get(&path, "mallory").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    drop(alice);
    app.restart();
    let (_, presence) = app.get(&path, "carol").await;
    assert_eq!(presence["online"], json!([]));
    assert_eq!(presence["lastSeen"]["bob"], bob_seen, "lastSeen survives the restart");
    assert!(presence["lastSeen"]["alice"].is_string());
}

/// Presence changes wait for the batch window (here far longer than the test), but never
/// behind a later frame: the next other frame takes them along, first.
async fn presence_held_for_a_batch_goes_out_before_the_next_other_frame(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.presence_batch_ms = 600_000).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await.with_presence();
    bob.join(&chat).await;
    let _alice = app.ws("alice").await;
    app.send("alice", &chat, "hello").await;
    let first = bob.next_event().await;
    assert_eq!((first["event"].as_str(), first["data"]["userId"].as_str()), (Some("user-online"), Some("alice")));
    let second = bob.next_event().await;
    assert_eq!(second["event"], "new-message", "{second}");
}
