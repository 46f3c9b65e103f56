//! Publish only after commit: writes that fail or change nothing push nothing.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app};

crate::both_backends!(
    refused_sends_push_nothing,
    a_write_the_database_rolls_back_pushes_nothing_and_leaves_no_gap,
    an_idempotent_retry_pushes_nothing_new,
);

async fn refused_sends_push_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("alice", &["carol"]).await;
    let foreign = app.send("alice", &other, "elsewhere").await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    bob.listen_all().await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    // Refused by the checks the write runs first (in its transaction, before any insert).
    let (status, _) = app.post(&path, "alice", json!({"content": "x", "replyTo": foreign["id"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Refused before the write.
    let (status, _) = app.post(&path, "alice", json!({"content": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.post(&path, "mallory", json!({"content": "let me in"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bob.expect_nothing_pending().await;
    let next = app.send("alice", &chat, "ok").await;
    assert_eq!(next["seq"], 1, "the refused sends left no gap");
    assert_eq!(bob.expect("new-message").await["data"]["message"]["seq"], 1);
}

/// The database itself refuses the insert (a trigger), after the `seq` was taken in the
/// same transaction: the whole transaction rolls back, the sender gets a 500, nothing is
/// pushed and the next message takes the `seq` the failed one had.
async fn a_write_the_database_rolls_back_pushes_nothing_and_leaves_no_gap(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    bob.listen_all().await;
    app.sql(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.content = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
           IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison();",
    );
    let path = format!("/v1/messaging/chats/{chat}/messages");
    let (status, body) = app.post(&path, "alice", json!({"content": "poison"})).await;
    crate::helpers::assert_error(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    bob.expect_nothing_pending().await;
    let next = app.send("alice", &chat, "after").await;
    assert_eq!(next["seq"], 1, "the rolled-back seq is taken again");
    assert_eq!(bob.expect("new-message").await["data"]["message"], next);
    assert_eq!(bob.expect("chat-updated").await["data"]["lastMessage"], next);
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
