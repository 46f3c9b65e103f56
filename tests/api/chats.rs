//! REST chats (contract §3): create, list with cursor paging, get by id.

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use crate::helpers::{Backend, TestApp, WAIT, assert_error, assert_timestamp, spawn_app, spawn_app_with, token};

crate::both_backends!(
    creating_a_chat_returns_201_with_the_full_chat_shape,
    a_participant_gets_the_chat_by_id_as_it_was_created,
    the_creator_comes_first_and_duplicate_participants_are_dropped,
    a_chat_created_without_a_name_has_a_null_name,
    a_chat_with_only_the_caller_is_allowed,
    an_invalid_participant_id_is_rejected_with_400,
    a_create_without_participants_is_rejected_with_400,
    a_create_with_wrongly_typed_json_is_rejected_with_400,
    a_create_with_a_non_json_content_type_is_rejected_with_415,
    a_create_body_over_the_size_limit_is_rejected_with_413,
    chat_calls_without_a_token_are_rejected_with_401,
    the_chat_list_holds_only_my_chats_newest_activity_first,
    posting_a_message_moves_its_chat_to_the_top_of_the_list,
    the_chat_list_counts_unread_messages_for_each_viewer,
    paging_the_chat_list_visits_every_chat_exactly_once,
    a_malformed_chat_list_cursor_is_rejected_with_400,
    a_chat_list_limit_outside_1_to_100_is_rejected_with_400,
    outsiders_get_404_for_a_chat,
    a_malformed_chat_id_gets_404,
    an_unknown_well_formed_chat_id_gets_404,
);

const CHATS: &str = "/v1/messaging/chats";

#[track_caller]
fn assert_keys(v: &Value, expected: &[&str]) {
    let mut keys: Vec<&str> =
        v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{v}");
}

fn ids(chats: &Value) -> Vec<String> {
    chats.as_array().expect("chats array").iter().map(|c| c["id"].as_str().expect("chat id").to_owned()).collect()
}

/// Returns once the wall clock is a millisecond past `timestamp`, so the next write the
/// server makes gets a later `updatedAt` (server and test share this machine's clock).
/// Not a wait for an event: it spins for at most about one millisecond.
async fn clock_past(timestamp: &Value) {
    let t = humantime::parse_rfc3339(timestamp.as_str().expect("timestamp")).expect("RFC 3339");
    let deadline = Instant::now() + WAIT;
    while SystemTime::now() < t + Duration::from_millis(1) {
        assert!(Instant::now() < deadline, "the clock did not move past {timestamp}");
        tokio::task::yield_now().await;
    }
}

/// Creates a chat as `creator` after the clock moved past `after` (if given).
async fn create_after(app: &TestApp, creator: &str, others: &[&str], after: Option<&Value>) -> Value {
    if let Some(t) = after {
        clock_past(t).await;
    }
    let (status, chat) = app.post(CHATS, creator, json!({"participants": others})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    chat
}

/// Sends `body` as-is with the given Content-Type, as alice.
async fn post_raw(app: &TestApp, content_type: &str, body: String) -> (StatusCode, Value) {
    let mut res = app
        .client
        .post(app.url(CHATS))
        .bearer_auth(token("alice"))
        .insert_header(("Content-Type", content_type))
        .send_body(body)
        .await
        .expect("request completes");
    let bytes = res.body().await.expect("body");
    (res.status(), serde_json::from_slice(&bytes).expect("JSON body"))
}

async fn creating_a_chat_returns_201_with_the_full_chat_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, chat) = app.post(CHATS, "alice", json!({"participants": ["bob"], "name": "Chat Test"})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_keys(
        &chat,
        &["id", "name", "participants", "createdBy", "createdAt", "updatedAt", "lastMessage", "lastSeq", "unreadCount"],
    );
    let id = chat["id"].as_str().expect("id is a string");
    let hex = id.strip_prefix("chat_").unwrap_or_else(|| panic!("{id} starts with chat_"));
    assert!(!hex.is_empty(), "{id}");
    assert_eq!(chat["name"], "Chat Test");
    assert_eq!(chat["participants"], json!(["alice", "bob"]));
    assert_eq!(chat["createdBy"], "alice");
    assert_timestamp(&chat["createdAt"]);
    assert_timestamp(&chat["updatedAt"]);
    assert_eq!(chat["lastMessage"], Value::Null);
    assert_eq!(chat["lastSeq"], 0);
    assert_eq!(chat["unreadCount"], 0);

    let (status, other) = app.post(CHATS, "alice", json!({"participants": ["bob"], "name": "Chat Test"})).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(other["id"], chat["id"], "every create makes a new chat");
}

async fn a_participant_gets_the_chat_by_id_as_it_was_created(backend: Backend) {
    let app = spawn_app(backend).await;
    // Not in alphabetical order: the chat reads back with the participants as created.
    let (status, chat) = app.post(CHATS, "mia", json!({"participants": ["zoe", "bob"], "name": "Chat Test"})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["participants"], json!(["mia", "zoe", "bob"]));
    let path = format!("{CHATS}/{}", chat["id"].as_str().unwrap());
    for user in ["mia", "zoe", "bob"] {
        let (status, fetched) = app.get(&path, user).await;
        assert_eq!(status, StatusCode::OK, "{user}: {fetched}");
        assert_eq!(fetched, chat, "{user}");
        let (status, list) = app.get(CHATS, user).await;
        assert_eq!(status, StatusCode::OK, "{user}: {list}");
        assert_eq!(list["chats"], json!([chat]), "{user}");
    }
}

async fn the_creator_comes_first_and_duplicate_participants_are_dropped(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"participants": ["bob", "alice", "carol", "bob", "carol"], "name": "dupes"});
    let (status, chat) = app.post(CHATS, "alice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["participants"], json!(["alice", "bob", "carol"]));
    let (status, fetched) = app.get(&format!("{CHATS}/{}", chat["id"].as_str().unwrap()), "carol").await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["participants"], json!(["alice", "bob", "carol"]));
}

async fn a_chat_created_without_a_name_has_a_null_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, chat) = app.post(CHATS, "alice", json!({"participants": ["bob"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["name"], Value::Null);
    assert!(chat.as_object().unwrap().contains_key("name"), "name is present as null: {chat}");
    let (status, chat) = app.post(CHATS, "alice", json!({"participants": ["bob"], "name": null})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["name"], Value::Null);
}

async fn a_chat_with_only_the_caller_is_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, chat) = app.post(CHATS, "alice", json!({"participants": []})).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["participants"], json!(["alice"]));
}

async fn an_invalid_participant_id_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for bad in ["not valid", "", "bob/1", "é"] {
        let (status, body) = app.post(CHATS, "alice", json!({"participants": ["bob", bad]})).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
    let too_long = "x".repeat(129);
    let (status, body) = app.post(CHATS, "alice", json!({"participants": [too_long]})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    // Nothing was created by the refused calls.
    let (status, list) = app.get(CHATS, "alice").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["chats"], json!([]));
}

async fn a_create_without_participants_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.post(CHATS, "alice", json!({"name": "lonely"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    let (status, body) = app.post(CHATS, "alice", json!({})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
}

async fn a_create_with_wrongly_typed_json_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"participants": "bob"}),
        json!({"participants": [1, 2]}),
        json!({"participants": ["bob"], "name": 5}),
        json!(["bob"]),
        json!("bob"),
    ] {
        let (status, res) = app.post(CHATS, "alice", body.clone()).await;
        assert_error(status, &res, StatusCode::BAD_REQUEST, "validation_failed");
    }
    let (status, res) = post_raw(&app, "application/json", r#"{"participants": ["bob""#.into()).await;
    assert_error(status, &res, StatusCode::BAD_REQUEST, "validation_failed");
}

async fn a_create_with_a_non_json_content_type_is_rejected_with_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"participants": ["bob"]}).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, res) = post_raw(&app, content_type, body.clone()).await;
        assert_error(status, &res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // The same body with the right type passes: the type alone was refused.
    let (status, res) = post_raw(&app, "application/json", body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
}

async fn a_create_body_over_the_size_limit_is_rejected_with_413(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_body_bytes = 200).await;
    let small = json!({"participants": ["bob"]});
    assert!(small.to_string().len() <= 200);
    let (status, chat) = app.post(CHATS, "alice", small).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");

    let many: Vec<String> = (0..40).map(|i| format!("user-{i:03}")).collect();
    let big = json!({"participants": many});
    assert!(big.to_string().len() > 200);
    let (status, body) = app.post(CHATS, "alice", big).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (status, list) = app.get(CHATS, "alice").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["chats"].as_array().map(Vec::len), Some(1), "the big create stored nothing: {list}");
}

async fn chat_calls_without_a_token_are_rejected_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = app.call("POST", CHATS, None, Some(json!({"participants": ["bob"]}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = app.call("GET", CHATS, None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = app.call("GET", &format!("{CHATS}/{chat}"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn the_chat_list_holds_only_my_chats_newest_activity_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let c1 = create_after(&app, "alice", &["bob"], None).await;
    let c2 = create_after(&app, "alice", &["carol"], Some(&c1["updatedAt"])).await;
    let c3 = create_after(&app, "bob", &["alice"], Some(&c2["updatedAt"])).await;
    let c4 = create_after(&app, "carol", &["dave"], Some(&c3["updatedAt"])).await;

    let (status, list) = app.get(CHATS, "alice").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_keys(&list, &["chats", "nextCursor"]);
    assert_eq!(ids(&list["chats"]), ids(&json!([c3, c2, c1])));
    assert_eq!(list["nextCursor"], Value::Null);
    // Each entry is the chat as alice sees it.
    assert_eq!(list["chats"][0], c3);

    let (_, list) = app.get(CHATS, "bob").await;
    assert_eq!(ids(&list["chats"]), ids(&json!([c3, c1])));
    let (_, list) = app.get(CHATS, "carol").await;
    assert_eq!(ids(&list["chats"]), ids(&json!([c4, c2])));
    let (_, list) = app.get(CHATS, "erin").await;
    assert_eq!(list, json!({"chats": [], "nextCursor": null}));
}

async fn posting_a_message_moves_its_chat_to_the_top_of_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let c1 = create_after(&app, "alice", &["bob"], None).await;
    let c2 = create_after(&app, "alice", &["bob"], Some(&c1["updatedAt"])).await;
    let c3 = create_after(&app, "alice", &["bob"], Some(&c2["updatedAt"])).await;
    let (_, list) = app.get(CHATS, "alice").await;
    assert_eq!(ids(&list["chats"]), ids(&json!([c3, c2, c1])));

    clock_past(&c3["updatedAt"]).await;
    let message = app.send("bob", c1["id"].as_str().unwrap(), "bump").await;
    for user in ["alice", "bob"] {
        let (status, list) = app.get(CHATS, user).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(ids(&list["chats"]), ids(&json!([c1, c3, c2])), "{user}");
        let top = &list["chats"][0];
        assert_eq!(top["lastMessage"], message, "{user}");
        assert_eq!(top["lastSeq"], 1);
        assert_eq!(top["updatedAt"], message["createdAt"], "activity time is the message time");
        assert_eq!(top["createdAt"], c1["createdAt"], "creation time does not move");
    }
}

async fn the_chat_list_counts_unread_messages_for_each_viewer(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "one").await;
    let second = app.send("alice", &chat, "two").await;

    let unread_of = |list: &Value, id: &str| {
        let entry = list["chats"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned();
        entry.unwrap_or_else(|| panic!("{id} in {list}"))
    };
    let (_, bob) = app.get(CHATS, "bob").await;
    let entry = unread_of(&bob, &chat);
    assert_eq!(entry["unreadCount"], 2, "{entry}");
    assert_eq!(entry["lastSeq"], 2);
    assert_eq!(entry["lastMessage"], second);
    assert_eq!(unread_of(&bob, &other)["unreadCount"], 0);
    let (_, alice) = app.get(CHATS, "alice").await;
    let entry = unread_of(&alice, &chat);
    assert_eq!(entry["unreadCount"], 0, "own messages are not unread: {entry}");
    assert_eq!(entry["lastMessage"], second);
    let (_, single) = app.get(&format!("{CHATS}/{chat}"), "bob").await;
    assert_eq!(single["unreadCount"], 2, "{single}");
    assert_eq!(single["lastMessage"], second);

    // Bob answering moves his own read marker to his message; alice now has one unread.
    app.send("bob", &chat, "three").await;
    let (_, bob) = app.get(CHATS, "bob").await;
    assert_eq!(unread_of(&bob, &chat)["unreadCount"], 0);
    let (_, alice) = app.get(CHATS, "alice").await;
    assert_eq!(unread_of(&alice, &chat)["unreadCount"], 1);
}

async fn paging_the_chat_list_visits_every_chat_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = HashSet::new();
    for _ in 0..5 {
        created.insert(app.create_chat("alice", &["bob"]).await);
    }
    app.create_chat("carol", &["bob"]).await;
    let (_, all) = app.get(&format!("{CHATS}?limit=100"), "alice").await;
    let all = ids(&all["chats"]);
    assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), created);

    let mut walked = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => format!("{CHATS}?limit=2"),
            Some(c) => format!(
                "{CHATS}?limit=2&before={}",
                url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ),
        };
        let (status, page) = app.get(&path, "alice").await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let page_ids = ids(&page["chats"]);
        sizes.push(page_ids.len());
        walked.extend(page_ids);
        match &page["nextCursor"] {
            Value::Null => break,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("nextCursor is a string or null, got {other}"),
        }
    }
    assert_eq!(sizes, [2, 2, 1], "pages of at most 2, ending with nextCursor null");
    assert_eq!(walked, all, "the walk visits every chat once, in list order");
}

async fn a_malformed_chat_list_cursor_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let bad_cursors = [
        "garbage".to_owned(),
        "123".into(),
        "123.".into(),
        format!("abc.{chat}"),
        "123.chat_nothex".into(),
        format!("123.{}", chat.to_uppercase()),
    ];
    for bad in bad_cursors {
        let path =
            format!("{CHATS}?before={}", url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>());
        let (status, body) = app.get(&path, "alice").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
}

async fn a_chat_list_limit_outside_1_to_100_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_chat("alice", &["bob"]).await;
    for bad in ["0", "101", "-1", "abc", "1.5"] {
        let (status, body) = app.get(&format!("{CHATS}?limit={bad}"), "alice").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
    for ok in ["1", "100"] {
        let (status, body) = app.get(&format!("{CHATS}?limit={ok}"), "alice").await;
        assert_eq!(status, StatusCode::OK, "limit={ok}: {body}");
        assert_eq!(body["chats"].as_array().map(Vec::len), Some(1));
    }
}

async fn outsiders_get_404_for_a_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = app.get(&format!("{CHATS}/{chat}"), "mallory").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get(CHATS, "mallory").await;
    assert_eq!(list["chats"], json!([]));
}

async fn a_malformed_chat_id_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for bad in [
        "nonsense".to_owned(),
        "chat_123".into(),
        chat.to_uppercase(),
        format!("{chat}0"),
        "%27%20OR%201%3D1%20--".into(),
    ] {
        let (status, body) = app.get(&format!("{CHATS}/{bad}"), "alice").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

async fn an_unknown_well_formed_chat_id_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let unknown = format!("chat_{}", uuid::Uuid::now_v7().simple());
    assert_ne!(unknown, chat);
    let (status, body) = app.get(&format!("{CHATS}/{unknown}"), "alice").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}
