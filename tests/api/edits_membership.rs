//! Edits, deletes and membership changes (issue: conversation features, points 4 and 5).

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app};

crate::both_backends!(
    the_sender_edits_a_message_and_joined_connections_see_it,
    only_the_sender_may_edit_or_delete,
    a_deleted_message_keeps_its_seq_and_loses_its_content,
    any_participant_adds_participants_and_newcomers_get_the_chat,
    a_removed_user_stops_receiving_the_chat_at_once,
    only_the_creator_removes_others,
);

fn msg_path(chat: &str, msg: &Value) -> String {
    format!("/v1/messaging/chats/{chat}/messages/{}", msg["id"].as_str().unwrap())
}

async fn the_sender_edits_a_message_and_joined_connections_see_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let msg = app.send("alice", &chat, "helo").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let (status, edited) =
        app.call("PATCH", &msg_path(&chat, &msg), Some("alice"), Some(json!({"content": "hello"}))).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["content"], "hello");
    assert_eq!((edited["id"].clone(), edited["seq"].clone()), (msg["id"].clone(), msg["seq"].clone()));
    assert!(edited["editedAt"].is_string());
    let event = bob.expect("message-updated").await;
    assert_eq!(event["data"], json!({"chatId": chat, "message": edited}));
    assert_eq!(app.history("bob", &chat).await, vec![edited]);
    let (status, _) = app.call("PATCH", &msg_path(&chat, &msg), Some("alice"), Some(json!({"content": ""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn only_the_sender_may_edit_or_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let msg = app.send("alice", &chat, "mine").await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;
    let patch = Some(json!({"content": "hacked"}));
    let (status, body) = app.call("PATCH", &msg_path(&chat, &msg), Some("bob"), patch.clone()).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")));
    let (status, _) = app.call("DELETE", &msg_path(&chat, &msg), Some("bob"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for outsider in ["mallory"] {
        let (status, body) = app.call("PATCH", &msg_path(&chat, &msg), Some(outsider), patch.clone()).await;
        assert_eq!((status, body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
        let (status, _) = app.call("DELETE", &msg_path(&chat, &msg), Some(outsider), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let unknown = json!({"id": "msg_0123456789abcdef0123456789abcdef"});
    let (status, _) = app.call("DELETE", &msg_path(&chat, &unknown), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    alice.expect_nothing_pending().await;
    assert_eq!(app.history("alice", &chat).await[0]["content"], "mine");
}

async fn a_deleted_message_keeps_its_seq_and_loses_its_content(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "one").await;
    let (_, two) = app
        .post(
            &format!("/v1/messaging/chats/{chat}/messages"),
            "alice",
            json!({"content": "two", "attachments": ["https://x.io/a.png"]}),
        )
        .await;
    app.send("alice", &chat, "three").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let (status, body) = app.call("DELETE", &msg_path(&chat, &two), Some("alice"), None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, json!(null)));
    let event = bob.expect("message-deleted").await;
    assert_eq!(event["data"], json!({"chatId": chat, "messageId": two["id"], "seq": 2}));

    let messages = app.history("bob", &chat).await;
    let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3], "no gap");
    assert_eq!(messages[1]["content"], "");
    assert_eq!(messages[1]["attachments"], json!([]));
    assert!(messages[1]["deletedAt"].is_string());

    let (status, _) = app.call("DELETE", &msg_path(&chat, &two), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "deleting twice is harmless");
    bob.expect_nothing_pending().await;
    let (status, body) =
        app.call("PATCH", &msg_path(&chat, &two), Some("alice"), Some(json!({"content": "back"}))).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::CONFLICT, json!("conflict")));
}

async fn any_participant_adds_participants_and_newcomers_get_the_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "before carol").await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;
    let mut carol = app.ws("carol").await;
    let path = format!("/v1/messaging/chats/{chat}/participants");
    let (status, body) = app.post(&path, "bob", json!({"userIds": ["carol", "alice"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["participants"], json!(["alice", "bob", "carol"]));
    assert_eq!(alice.expect("participant-added").await["data"], json!({"chatId": chat, "userId": "carol"}));
    alice.expect_nothing_pending().await;
    let created = carol.expect("chat-created").await;
    assert_eq!(created["data"]["chat"]["id"], chat);
    assert_eq!(created["data"]["chat"]["unreadCount"], 0);
    assert_eq!(app.history("carol", &chat).await.len(), 1, "newcomers read the history");
    carol.join(&chat).await;
    let (status, _) = app.post(&path, "mallory", json!({"userIds": ["mallory"]})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post(&path, "bob", json!({"userIds": ["not valid"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn a_removed_user_stops_receiving_the_chat_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    bob.listen_all().await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;

    let (status, _) =
        app.call("DELETE", &format!("/v1/messaging/chats/{chat}/participants/bob"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(bob.expect("participant-removed").await["data"], json!({"chatId": chat, "userId": "bob"}));
    assert_eq!(alice.expect("participant-removed").await["data"], json!({"chatId": chat, "userId": "bob"}));

    app.send("alice", &chat, "after bob left").await;
    alice.expect("new-message").await;
    bob.expect_nothing_pending().await;
    let (status, _) = app.get(&format!("/v1/messaging/chats/{chat}"), "bob").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post(&format!("/v1/messaging/chats/{chat}/messages"), "bob", json!({"content": "hi"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bob.send_json(json!({"event": "join-chat", "data": {"chatId": chat}})).await;
    assert_eq!(bob.expect("error").await["data"]["code"], "not_found");
}

async fn only_the_creator_removes_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob", "carol"]).await;
    let del = |who: &'static str| format!("/v1/messaging/chats/{chat}/participants/{who}");
    let (status, body) = app.call("DELETE", &del("carol"), Some("bob"), None).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")));
    let (status, _) = app.call("DELETE", &del("carol"), Some("mallory"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call("DELETE", &del("dave"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a participant");
    let (status, _) = app.call("DELETE", &del("bob"), Some("bob"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "anyone may leave");
    let (status, _) = app.call("DELETE", &del("carol"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the creator removes anyone");
    let (_, chat_now) = app.get(&format!("/v1/messaging/chats/{chat}"), "alice").await;
    assert_eq!(chat_now["participants"], json!(["alice"]));
}
