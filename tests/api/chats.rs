use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app};

crate::both_backends!(
    creating_a_chat_returns_it_with_the_caller_as_participant,
    outsiders_get_404_for_a_chat,
);

async fn creating_a_chat_returns_it_with_the_caller_as_participant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, chat) = app.post("/v1/messaging/chats", "alice", json!({"participants": ["bob"], "name": "Chat Test"})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert!(chat["id"].as_str().unwrap().starts_with("chat_"));
    assert_eq!(chat["participants"], json!(["alice", "bob"]));
    assert_eq!(chat["name"], "Chat Test");
    assert_eq!(chat["createdBy"], "alice");
    assert_eq!(chat["lastMessage"], json!(null));
    assert_eq!(chat["lastSeq"], 0);
    assert_eq!(chat["unreadCount"], 0);
    let (status, fetched) = app.get(&format!("/v1/messaging/chats/{}", chat["id"].as_str().unwrap()), "bob").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, chat);
}

async fn outsiders_get_404_for_a_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = app.get(&format!("/v1/messaging/chats/{chat}"), "mallory").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].is_string());
}
