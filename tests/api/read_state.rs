//! Read markers and unread counts (issue: conversation features, point 1).

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app};

crate::both_backends!(
    the_read_marker_moves_forward_only_and_reports_unread,
    reading_by_message_id_and_past_the_end_is_capped,
    reading_pushes_message_read_to_the_chat_and_unread_counts_to_every_device_of_the_reader,
    a_marker_that_does_not_move_pushes_nothing,
    sending_moves_the_senders_own_marker,
    bad_read_requests_are_refused,
);

fn read_path(chat: &str) -> String {
    format!("/v1/messaging/chats/{chat}/read")
}

async fn the_read_marker_moves_forward_only_and_reports_unread(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for i in 0..3 {
        app.send("alice", &chat, &format!("m{i}")).await;
    }
    let (status, body) = app.post(&read_path(&chat), "bob", json!({"seq": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"chatId": chat, "lastReadSeq": 2, "unreadCount": 1}));
    let (_, body) = app.post(&read_path(&chat), "bob", json!({"seq": 1})).await;
    assert_eq!(body, json!({"chatId": chat, "lastReadSeq": 2, "unreadCount": 1}), "never moves back");
    let (_, chats) = app.get("/v1/messaging/chats", "bob").await;
    assert_eq!(chats["chats"][0]["unreadCount"], 1);
}

async fn reading_by_message_id_and_past_the_end_is_capped(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let first = app.send("alice", &chat, "one").await;
    app.send("alice", &chat, "two").await;
    let (_, body) = app.post(&read_path(&chat), "bob", json!({"messageId": first["id"]})).await;
    assert_eq!(body["lastReadSeq"], 1);
    assert_eq!(body["unreadCount"], 1);
    let (_, body) = app.post(&read_path(&chat), "bob", json!({"seq": 999})).await;
    assert_eq!(body, json!({"chatId": chat, "lastReadSeq": 2, "unreadCount": 0}));
}

async fn reading_pushes_message_read_to_the_chat_and_unread_counts_to_every_device_of_the_reader(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("carol", &["bob"]).await;
    app.send("alice", &chat, "a1").await;
    app.send("alice", &chat, "a2").await;
    app.send("carol", &other, "c1").await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;
    let mut bob_phone = app.ws("bob").await;
    bob_phone.join(&chat).await;
    let mut bob_laptop = app.ws("bob").await;

    let (status, _) = app.post(&read_path(&chat), "bob", json!({"seq": 2})).await;
    assert_eq!(status, StatusCode::OK);
    let read = json!({"chatId": chat, "userId": "bob", "lastReadSeq": 2});
    assert_eq!(alice.expect("message-read").await["data"], read);
    let counts = json!({"chatId": chat, "unreadCount": 0, "totalUnread": 1});
    assert_eq!(bob_phone.expect("message-read").await["data"], read);
    assert_eq!(bob_phone.expect("unread-count-updated").await["data"], counts);
    assert_eq!(bob_laptop.expect("unread-count-updated").await["data"], counts, "the other device clears its badge");
    bob_laptop.expect_nothing_pending().await;
    alice.expect_nothing_pending().await;
}

async fn a_marker_that_does_not_move_pushes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "a1").await;
    app.post(&read_path(&chat), "bob", json!({"seq": 1})).await;
    let mut alice = app.ws("alice").await;
    alice.join(&chat).await;
    let mut bob = app.ws("bob").await;
    let (status, body) = app.post(&read_path(&chat), "bob", json!({"seq": 0})).await;
    assert_eq!((status, body["lastReadSeq"].clone()), (StatusCode::OK, json!(1)));
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
}

async fn sending_moves_the_senders_own_marker(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("bob", &chat, "b1").await;
    app.send("bob", &chat, "b2").await;
    app.send("alice", &chat, "a1").await;
    let (_, alice) = app.get(&format!("/v1/messaging/chats/{chat}"), "alice").await;
    let (_, bob) = app.get(&format!("/v1/messaging/chats/{chat}"), "bob").await;
    assert_eq!(alice["unreadCount"], 0, "alice's send read everything before it");
    assert_eq!(bob["unreadCount"], 1, "bob has alice's message to read");
}

async fn bad_read_requests_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let msg = app.send("alice", &chat, "x").await;
    let (status, body) = app.post(&read_path(&chat), "mallory", json!({"seq": 1})).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    for bad in [json!({}), json!({"seq": 1, "messageId": msg["id"]}), json!({"seq": -1}), json!({"seq": "1"})] {
        let (status, body) = app.post(&read_path(&chat), "bob", bad.clone()).await;
        assert_eq!((status, body["error"].clone()), (StatusCode::BAD_REQUEST, json!("validation_failed")), "{bad}");
    }
    let (status, _) =
        app.post(&read_path(&chat), "bob", json!({"messageId": "msg_0123456789abcdef0123456789abcdef"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a message id of no message in this chat");
}
