//! Publish only after commit: writes that fail or change nothing push nothing.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app};

crate::both_backends!(rejected_or_rolled_back_sends_push_nothing, an_idempotent_retry_pushes_nothing_new,);

async fn rejected_or_rolled_back_sends_push_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("alice", &["carol"]).await;
    let foreign = app.send("alice", &other, "elsewhere").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    bob.listen_all().await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    // Rolled back inside the transaction, after the seq was taken.
    let (status, _) = app.post(&path, "alice", json!({"content": "x", "replyTo": foreign["id"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Refused before any write.
    let (status, _) = app.post(&path, "alice", json!({"content": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.post(&path, "mallory", json!({"content": "let me in"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bob.expect_nothing_pending().await;
    let next = app.send("alice", &chat, "ok").await;
    assert_eq!(next["seq"], 1, "the rolled-back send left no gap");
    assert_eq!(bob.expect("new-message").await["data"]["message"]["seq"], 1);
}

async fn an_idempotent_retry_pushes_nothing_new(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    let body = json!({"content": "once", "clientMessageId": "c-1"});
    let (status, first) = app.post(&path, "alice", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bob.expect("new-message").await["data"]["message"], first);
    let (status, again) = app.post(&path, "alice", body).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    bob.expect_nothing_pending().await;
}
