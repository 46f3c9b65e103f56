//! The OpenAPI document covers the URL table, and the real server's responses
//! validate against it.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};

crate::both_backends!(every_route_of_the_url_table_is_documented, real_responses_validate_against_the_document,);

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

async fn every_route_of_the_url_table_is_documented(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1: {}", doc["openapi"]);
    for (method, path) in missive::routes::ROUTES {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not in /openapi.json");
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, missive::routes::ROUTES.len(), "no documented route is missing from the URL table");
    let mut res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "Swagger UI is served");
    let page = res.body().await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("swagger"), "the Swagger UI page");
}

/// Validates `body` against the documented response of `method path` for `status`.
fn check(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.as_str()];
    assert!(response.is_object(), "{method} {path} does not document status {status}");
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        assert_eq!(body, &Value::Null, "{method} {path} {status} documents no body but one came: {body}");
        return;
    }
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("schema of {method} {path}: {e}"));
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {body}\ndoes not match the document: {errors:#?}");
}

async fn real_responses_validate_against_the_document(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let chats = "/v1/messaging/chats";
    let chat_t = "/v1/messaging/chats/{chat_id}";
    let msgs_t = "/v1/messaging/chats/{chat_id}/messages";
    let msg_t = "/v1/messaging/chats/{chat_id}/messages/{message_id}";

    let (status, chat) = app.post(chats, "alice", json!({"participants": ["bob"], "name": "Docs"})).await;
    check(&doc, "post", chats, status, &chat);
    let id = chat["id"].as_str().unwrap();
    let (status, body) = app.post(chats, "alice", json!({"participants": "bob"})).await;
    check(&doc, "post", chats, status, &body);
    let (status, body) = app.call("POST", chats, None, Some(json!({"participants": []}))).await;
    check(&doc, "post", chats, status, &body);

    let msgs = format!("{chats}/{id}/messages");
    let (status, first) =
        app.post(&msgs, "alice", json!({"content": "hi", "attachments": ["https://x.io/a.png"]})).await;
    check(&doc, "post", msgs_t, status, &first);
    let (status, reply) =
        app.post(&msgs, "bob", json!({"content": "re", "replyTo": first["id"], "clientMessageId": "c1"})).await;
    check(&doc, "post", msgs_t, status, &reply);
    let (status, again) = app.post(&msgs, "bob", json!({"content": "re", "clientMessageId": "c1"})).await;
    check(&doc, "post", msgs_t, status, &again);

    for (path, tmpl) in [(format!("{chats}?limit=1"), chats), (format!("{chats}/{id}"), chat_t)] {
        let (status, body) = app.get(&path, "bob").await;
        check(&doc, "get", tmpl, status, &body);
    }
    let (status, body) = app.get(&format!("{chats}/{id}"), "mallory").await;
    check(&doc, "get", chat_t, status, &body);
    let (status, body) = app.get(&format!("{msgs}?limit=1"), "bob").await;
    check(&doc, "get", msgs_t, status, &body);
    let (status, body) = app.get(&format!("{msgs}?limit=0"), "bob").await;
    check(&doc, "get", msgs_t, status, &body);

    let one = format!("{msgs}/{}", first["id"].as_str().unwrap());
    let (status, body) = app.call("PATCH", &one, Some("alice"), Some(json!({"content": "hello"}))).await;
    check(&doc, "patch", msg_t, status, &body);
    let (status, body) = app.call("PATCH", &one, Some("bob"), Some(json!({"content": "no"}))).await;
    check(&doc, "patch", msg_t, status, &body);
    let (status, body) = app.call("DELETE", &one, Some("alice"), None).await;
    check(&doc, "delete", msg_t, status, &body);

    let (status, body) = app.post(&format!("{chats}/{id}/read"), "alice", json!({"seq": 2})).await;
    check(&doc, "post", "/v1/messaging/chats/{chat_id}/read", status, &body);
    let (status, body) = app.post(&format!("{chats}/{id}/typing"), "alice", json!({"isTyping": true})).await;
    check(&doc, "post", "/v1/messaging/chats/{chat_id}/typing", status, &body);
    let (status, body) = app.get(&format!("{chats}/{id}/presence"), "alice").await;
    check(&doc, "get", "/v1/messaging/chats/{chat_id}/presence", status, &body);
    let (status, body) = app.post(&format!("{chats}/{id}/participants"), "bob", json!({"userIds": ["carol"]})).await;
    check(&doc, "post", "/v1/messaging/chats/{chat_id}/participants", status, &body);
    let (status, body) = app.call("DELETE", &format!("{chats}/{id}/participants/carol"), Some("bob"), None).await;
    check(&doc, "delete", "/v1/messaging/chats/{chat_id}/participants/{user_id}", status, &body);
    let (status, body) = app.call("DELETE", &format!("{chats}/{id}/participants/carol"), Some("bob"), None).await;
    check(&doc, "delete", "/v1/messaging/chats/{chat_id}/participants/{user_id}", status, &body);

    for path in ["/healthz", "/readyz"] {
        let (status, body) = app.call("GET", path, None, None).await;
        check(&doc, "get", path, status, &body);
    }
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_a_405_naming_the_methods_it_has() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, headers, body) = app.call_with_headers("PUT", "/v1/messaging/chats", Some("alice"), None).await;
    crate::helpers::assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(headers.get("allow").expect("Allow").to_str().unwrap(), "POST, GET");
    let chat = format!("/v1/messaging/chats/chat_{}/messages/msg_{}", "0".repeat(32), "1".repeat(32));
    let (status, headers, _) = app.call_with_headers("GET", &chat, Some("alice"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get("allow").expect("Allow").to_str().unwrap(), "PATCH, DELETE");
    let (status, body) = app.call("PUT", "/v1/nothing/here", Some("alice"), None).await;
    crate::helpers::assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}
