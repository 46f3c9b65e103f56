//! REST messages (contract §3): post, validation, replies, idempotent retries, history.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_error, assert_timestamp, messages_path, spawn_app, spawn_app_with, token,
};

crate::both_backends!(
    posting_a_message_returns_201_with_the_full_message_shape,
    seq_starts_at_1_and_grows_by_one_per_message,
    an_outsider_cannot_post_and_nothing_is_stored,
    posting_to_an_unknown_or_malformed_chat_id_gets_404,
    empty_content_without_attachments_is_rejected_with_400,
    empty_content_with_an_attachment_is_accepted,
    content_over_the_character_limit_is_rejected_and_exactly_the_limit_is_accepted,
    content_with_a_nul_character_is_rejected_with_400,
    a_message_with_wrongly_typed_fields_is_rejected_with_400,
    plain_url_attachments_are_normalised_to_objects,
    attachment_objects_keep_their_type_name_and_size,
    attachments_without_an_http_or_https_url_are_rejected_with_400,
    more_attachments_than_the_limit_are_rejected_with_400,
    a_reply_to_a_message_of_the_same_chat_is_stored_with_reply_to,
    a_reply_to_a_message_of_another_chat_is_rejected_and_uses_no_seq,
    a_reply_to_an_unknown_message_is_rejected_and_uses_no_seq,
    resending_a_client_message_id_returns_the_original_with_200,
    the_same_client_message_id_from_another_sender_or_chat_is_a_new_message,
    history_defaults_to_the_newest_50_in_ascending_order,
    history_pages_backwards_with_before_and_forwards_with_after,
    history_with_both_before_and_after_is_rejected_with_400,
    a_history_limit_outside_1_to_200_or_not_a_number_is_rejected_with_400,
    outsiders_get_404_for_the_history,
    message_calls_without_a_token_are_rejected_with_401,
    sql_and_html_payloads_are_stored_and_served_verbatim,
    responses_carry_x_content_type_options_nosniff,
);

/// Asserts `id` is `msg_` followed by 32 lowercase hex digits.
#[track_caller]
fn assert_message_id(id: &Value) {
    let s = id.as_str().unwrap_or_else(|| panic!("id is not a string: {id}"));
    let hex = s.strip_prefix("msg_").unwrap_or_else(|| panic!("{s} starts with msg_"));
    assert_eq!(hex.len(), 32, "{s}");
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{s}");
}

async fn post(app: &TestApp, user: &str, chat: &str, body: Value) -> (StatusCode, Value) {
    app.post(&messages_path(chat), user, body).await
}

/// GET the history with `query` (e.g. `"?limit=3"`); asserts 200 and the page shape.
async fn history(app: &TestApp, user: &str, chat: &str, query: &str) -> Value {
    let (status, page) = app.get(&format!("{}{query}", messages_path(chat)), user).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    let mut keys: Vec<&str> = page.as_object().expect("page object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["hasMore", "messages"], "{page}");
    page
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"].as_array().expect("messages array").iter().map(|m| m["seq"].as_i64().expect("seq")).collect()
}

/// Sends `n` messages as alice ("m1", "m2", ...).
async fn send_many(app: &TestApp, chat: &str, n: usize) {
    for i in 1..=n {
        app.send("alice", chat, &format!("m{i}")).await;
    }
}

async fn posting_a_message_returns_201_with_the_full_message_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, m) = post(&app, "alice", &chat, json!({"content": "Hello, Bob"})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let mut keys: Vec<&str> = m.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attachments",
            "chatId",
            "clientMessageId",
            "content",
            "createdAt",
            "deletedAt",
            "editedAt",
            "id",
            "replyTo",
            "senderId",
            "seq"
        ],
        "{m}"
    );
    assert_message_id(&m["id"]);
    assert_eq!(m["chatId"], chat);
    assert_eq!(m["seq"], 1);
    assert_eq!(m["senderId"], "alice");
    assert_eq!(m["content"], "Hello, Bob");
    assert_eq!(m["attachments"], json!([]));
    assert_eq!(m["replyTo"], Value::Null);
    assert_eq!(m["clientMessageId"], Value::Null);
    assert_timestamp(&m["createdAt"]);
    assert_eq!(m["editedAt"], Value::Null);
    assert_eq!(m["deletedAt"], Value::Null);

    // What history serves is exactly what the post returned.
    let page = history(&app, "bob", &chat, "").await;
    assert_eq!(page, json!({"messages": [m], "hasMore": false}));
}

async fn seq_starts_at_1_and_grows_by_one_per_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("alice", &["bob"]).await;
    let mut got = Vec::new();
    for (user, text) in [("alice", "a"), ("bob", "b"), ("alice", "c"), ("bob", "d")] {
        got.push(app.send(user, &chat, text).await["seq"].as_i64().unwrap());
    }
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(app.send("bob", &other, "elsewhere").await["seq"], 1, "seq is per chat");
    let page = history(&app, "alice", &chat, "").await;
    assert_eq!(seqs(&page), [1, 2, 3, 4]);
    let contents: Vec<&str> =
        page["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["a", "b", "c", "d"]);
}

async fn an_outsider_cannot_post_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = post(&app, "mallory", &chat, json!({"content": "let me in"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let page = history(&app, "alice", &chat, "").await;
    assert_eq!(page, json!({"messages": [], "hasMore": false}));
    let (_, fetched) = app.get(&format!("/v1/messaging/chats/{chat}"), "alice").await;
    assert_eq!(fetched["lastSeq"], 0, "{fetched}");
    assert_eq!(fetched["lastMessage"], Value::Null);
    assert_eq!(app.send("alice", &chat, "first").await["seq"], 1);
}

async fn posting_to_an_unknown_or_malformed_chat_id_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = format!("chat_{}", uuid::Uuid::now_v7().simple());
    for chat in [unknown.as_str(), "nonsense", "chat_123"] {
        let (status, body) = post(&app, "alice", chat, json!({"content": "hi"})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

async fn empty_content_without_attachments_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for body in
        [json!({"content": ""}), json!({"content": "  \n\t "}), json!({}), json!({"content": "", "attachments": []})]
    {
        let (status, res) = post(&app, "alice", &chat, body.clone()).await;
        assert_error(status, &res, StatusCode::BAD_REQUEST, "validation_failed");
    }
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([]));
}

async fn empty_content_with_an_attachment_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let body = json!({"content": "", "attachments": ["https://files.example.com/a.png"]});
    let (status, m) = post(&app, "alice", &chat, body).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["content"], "");
    assert_eq!(m["attachments"], json!([{"url": "https://files.example.com/a.png"}]));
}

async fn content_over_the_character_limit_is_rejected_and_exactly_the_limit_is_accepted(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_message_chars = 10).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for over in ["a".repeat(11), "é".repeat(11)] {
        let (status, body) = post(&app, "alice", &chat, json!({"content": over})).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
    // The limit counts characters, not bytes: ten two-byte characters fit.
    for (seq, exact) in [(1, "a".repeat(10)), (2, "é".repeat(10))] {
        let (status, m) = post(&app, "alice", &chat, json!({"content": exact})).await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        assert_eq!(m["content"], exact);
        assert_eq!(m["seq"], seq);
    }
    assert_eq!(seqs(&history(&app, "alice", &chat, "").await), [1, 2]);
}

async fn content_with_a_nul_character_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = post(&app, "alice", &chat, json!({"content": "a\u{0}b"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([]));
}

async fn a_message_with_wrongly_typed_fields_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    for body in [
        json!({"content": 5}),
        json!({"content": "hi", "attachments": "https://x.io/a"}),
        json!({"content": "hi", "attachments": [42]}),
        json!({"content": "hi", "attachments": [{"url": "https://x.io/a", "size": -1}]}),
        json!({"content": "hi", "attachments": [{"name": "no url"}]}),
        json!({"content": "hi", "replyTo": 1}),
        json!({"content": "hi", "clientMessageId": ""}),
        json!({"content": "hi", "clientMessageId": "a\nb"}),
        json!(["hi"]),
    ] {
        let (status, res) = post(&app, "alice", &chat, body.clone()).await;
        assert_error(status, &res, StatusCode::BAD_REQUEST, "validation_failed");
    }
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([]));
}

async fn plain_url_attachments_are_normalised_to_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let body = json!({"content": "files", "attachments": ["https://files.example.com/doc.pdf", "http://cdn.example.org/a.png"]});
    let (status, m) = post(&app, "alice", &chat, body).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let expected = json!([{"url": "https://files.example.com/doc.pdf"}, {"url": "http://cdn.example.org/a.png"}]);
    assert_eq!(m["attachments"], expected);
    assert_eq!(history(&app, "bob", &chat, "").await["messages"][0]["attachments"], expected);
}

async fn attachment_objects_keep_their_type_name_and_size(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let full = json!({"url": "https://files.example.com/a.png", "type": "image/png", "name": "a.png", "size": 12345});
    let bare = json!({"url": "https://files.example.com/b"});
    let body = json!({"content": "pics", "attachments": [full, bare, "https://files.example.com/c"]});
    let (status, m) = post(&app, "alice", &chat, body).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let expected = json!([full, bare, {"url": "https://files.example.com/c"}]);
    assert_eq!(m["attachments"], expected);
    assert_eq!(history(&app, "bob", &chat, "").await["messages"][0]["attachments"], expected);
}

async fn attachments_without_an_http_or_https_url_are_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let bad_urls = [
        "javascript:alert(1)",
        "ftp://files.example.com/a",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "not a url",
        "https://",
    ];
    for url in bad_urls {
        for attachment in [json!(url), json!({"url": url, "name": "x"})] {
            let body = json!({"content": "x", "attachments": ["https://ok.example.com/a", attachment]});
            let (status, res) = post(&app, "alice", &chat, body).await;
            assert_error(status, &res, StatusCode::BAD_REQUEST, "validation_failed");
        }
    }
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([]));
}

async fn more_attachments_than_the_limit_are_rejected_with_400(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_attachments = 3).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let urls: Vec<String> = (0..4).map(|i| format!("https://files.example.com/{i}")).collect();
    let (status, body) = post(&app, "alice", &chat, json!({"content": "x", "attachments": urls})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    let (status, m) = post(&app, "alice", &chat, json!({"content": "x", "attachments": &urls[..3]})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["attachments"].as_array().map(Vec::len), Some(3));
    assert_eq!(m["seq"], 1);
}

async fn a_reply_to_a_message_of_the_same_chat_is_stored_with_reply_to(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let question = app.send("alice", &chat, "lunch?").await;
    let (status, answer) = post(&app, "bob", &chat, json!({"content": "yes", "replyTo": question["id"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["replyTo"], question["id"]);
    assert_eq!(answer["seq"], 2);
    let page = history(&app, "alice", &chat, "").await;
    assert_eq!(page["messages"][1], answer);
}

async fn a_reply_to_a_message_of_another_chat_is_rejected_and_uses_no_seq(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let elsewhere = app.create_chat("alice", &["bob"]).await;
    let foreign = app.send("alice", &elsewhere, "over there").await;
    let first = app.send("alice", &chat, "here").await;
    assert_eq!(first["seq"], 1);

    let (status, body) = post(&app, "alice", &chat, json!({"content": "re", "replyTo": foreign["id"]})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");

    let page = history(&app, "alice", &chat, "").await;
    assert_eq!(page["messages"], json!([first]), "nothing stored");
    assert_eq!(app.send("alice", &chat, "next").await["seq"], 2, "no gap in seq");
    assert_eq!(seqs(&history(&app, "bob", &chat, "").await), [1, 2]);
}

async fn a_reply_to_an_unknown_message_is_rejected_and_uses_no_seq(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let first = app.send("alice", &chat, "here").await;
    let random = format!("msg_{}", uuid::Uuid::now_v7().simple());
    for reply_to in [random.as_str(), "hello", "msg_123", chat.as_str()] {
        let (status, body) = post(&app, "alice", &chat, json!({"content": "re", "replyTo": reply_to})).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([first]));
    assert_eq!(app.send("alice", &chat, "next").await["seq"], 2, "no gap in seq");
}

async fn resending_a_client_message_id_returns_the_original_with_200(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let body = json!({"content": "only once", "clientMessageId": "client-1"});
    let (status, original) = post(&app, "alice", &chat, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{original}");
    assert_eq!(original["clientMessageId"], "client-1");
    assert_eq!(original["seq"], 1);

    let (status, again) = post(&app, "alice", &chat, body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, original, "the retry answers with the original, byte for byte");

    // A retry whose body changed still answers with what was stored the first time.
    let (status, changed) =
        post(&app, "alice", &chat, json!({"content": "edited?", "clientMessageId": "client-1"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed, original);

    let page = history(&app, "bob", &chat, "").await;
    assert_eq!(page["messages"], json!([original]), "stored once");
    assert_eq!(app.send("alice", &chat, "next").await["seq"], 2, "retries use no seq");
}

async fn the_same_client_message_id_from_another_sender_or_chat_is_a_new_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let other = app.create_chat("alice", &["bob"]).await;
    let body = json!({"content": "hi", "clientMessageId": "same-id"});
    let (status, from_alice) = post(&app, "alice", &chat, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{from_alice}");
    let (status, from_bob) = post(&app, "bob", &chat, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{from_bob}");
    assert_ne!(from_bob["id"], from_alice["id"]);
    assert_eq!(from_bob["seq"], 2);
    assert_eq!(from_bob["senderId"], "bob");
    assert_eq!(from_bob["clientMessageId"], "same-id");
    let (status, in_other) = post(&app, "alice", &other, body).await;
    assert_eq!(status, StatusCode::CREATED, "{in_other}");
    assert_eq!(in_other["seq"], 1);
    assert_eq!(seqs(&history(&app, "alice", &chat, "").await), [1, 2]);
}

async fn history_defaults_to_the_newest_50_in_ascending_order(backend: Backend) {
    // 52 sends from one user: past the default burst of 50, so whether the last two were
    // refused would depend on how fast the machine is.
    let app = spawn_app_with(backend, crate::helpers::lift_rate_limits).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    send_many(&app, &chat, 52).await;
    let page = history(&app, "bob", &chat, "").await;
    assert_eq!(seqs(&page), (3..=52).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["messages"][0]["content"], "m3");
    assert_eq!(page["messages"][49]["content"], "m52");

    let older = history(&app, "bob", &chat, "?before=3").await;
    assert_eq!(seqs(&older), [1, 2]);
    assert_eq!(older["hasMore"], false);
    let all = history(&app, "bob", &chat, "?limit=200").await;
    assert_eq!(seqs(&all), (1..=52).collect::<Vec<_>>());
    assert_eq!(all["hasMore"], false);
}

async fn history_pages_backwards_with_before_and_forwards_with_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    send_many(&app, &chat, 7).await;
    let cases: [(&str, &[i64], bool); 12] = [
        ("?limit=3", &[5, 6, 7], true),
        ("?limit=3&before=5", &[2, 3, 4], true),
        ("?limit=3&before=2", &[1], false),
        ("?limit=3&before=4", &[1, 2, 3], false),
        ("?limit=3&before=1", &[], false),
        ("?limit=3&before=100", &[5, 6, 7], true),
        ("?limit=3&after=0", &[1, 2, 3], true),
        ("?limit=3&after=3", &[4, 5, 6], true),
        ("?limit=3&after=6", &[7], false),
        ("?limit=3&after=4", &[5, 6, 7], false),
        ("?limit=3&after=7", &[], false),
        ("?limit=7", &[1, 2, 3, 4, 5, 6, 7], false),
    ];
    for (query, expected, has_more) in cases {
        let page = history(&app, "bob", &chat, query).await;
        assert_eq!(seqs(&page), expected, "{query}");
        assert_eq!(page["hasMore"], has_more, "{query}");
    }

    // Walking backwards from the newest page and forwards from the start both visit 1..=7 once.
    let mut backwards = Vec::new();
    let mut query = "?limit=3".to_owned();
    for _ in 0..5 {
        let page = history(&app, "bob", &chat, &query).await;
        let mut s = seqs(&page);
        let oldest = s[0];
        s.append(&mut backwards);
        backwards = s;
        if page["hasMore"] == false {
            break;
        }
        query = format!("?limit=3&before={oldest}");
    }
    assert_eq!(backwards, (1..=7).collect::<Vec<_>>());
    let mut forwards = Vec::new();
    let mut after = 0;
    for _ in 0..5 {
        let page = history(&app, "bob", &chat, &format!("?limit=3&after={after}")).await;
        let s = seqs(&page);
        after = *s.last().expect("a page before the end is not empty");
        forwards.extend(s);
        if page["hasMore"] == false {
            break;
        }
    }
    assert_eq!(forwards, (1..=7).collect::<Vec<_>>());
}

async fn history_with_both_before_and_after_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    send_many(&app, &chat, 3).await;
    let (status, body) = app.get(&format!("{}?before=3&after=1", messages_path(&chat)), "alice").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
}

async fn a_history_limit_outside_1_to_200_or_not_a_number_is_rejected_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    send_many(&app, &chat, 2).await;
    for query in
        ["?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?limit=", "?before=abc", "?after=x", "?before=-1"]
    {
        let (status, body) = app.get(&format!("{}{query}", messages_path(&chat)), "alice").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
    }
    for query in ["?limit=1", "?limit=200"] {
        let page = history(&app, "alice", &chat, query).await;
        assert!(!seqs(&page).is_empty(), "{query}");
    }
}

async fn outsiders_get_404_for_the_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    app.send("alice", &chat, "secret").await;
    let (status, body) = app.get(&messages_path(&chat), "mallory").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let unknown = format!("chat_{}", uuid::Uuid::now_v7().simple());
    for chat in [unknown.as_str(), "nonsense"] {
        let (status, body) = app.get(&messages_path(chat), "alice").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

async fn message_calls_without_a_token_are_rejected_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let (status, body) = app.call("POST", &messages_path(&chat), None, Some(json!({"content": "anon"}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = app.call("GET", &messages_path(&chat), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(history(&app, "alice", &chat, "").await["messages"], json!([]));
}

async fn sql_and_html_payloads_are_stored_and_served_verbatim(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let payloads = [
        "'; DROP TABLE messages; --",
        "<script>alert(1)</script>",
        "\" OR 1=1 --",
        "  leading and trailing spaces  ",
        "emoji 🎉 and ünïcödé and \\ backslash and \u{202e} bidi",
        "line one\nline two\r\n\ttabbed",
    ];
    let mut sent = Vec::new();
    for text in payloads {
        let m = app.send("alice", &chat, text).await;
        assert_eq!(m["content"], text);
        sent.push(m);
    }
    let page = history(&app, "bob", &chat, "").await;
    assert_eq!(page["messages"], json!(sent));
    // The tables are still there: the chat works and a new chat can be made.
    assert_eq!(app.send("bob", &chat, "still here").await["seq"], payloads.len() + 1);
    app.create_chat("bob", &["carol"]).await;
    let (_, fetched) = app.get(&format!("/v1/messaging/chats/{chat}"), "alice").await;
    assert_eq!(fetched["lastMessage"]["content"], "still here");
}

async fn responses_carry_x_content_type_options_nosniff(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let url = app.url(&messages_path(&chat));
    let requests = [
        (
            "post 201",
            app.client.post(&url).bearer_auth(token("alice")).send_json(&json!({"content": "<b>hi</b>"})).await,
            201,
        ),
        ("history 200", app.client.get(&url).bearer_auth(token("alice")).send().await, 200),
        ("outsider 404", app.client.get(&url).bearer_auth(token("mallory")).send().await, 404),
        ("anonymous 401", app.client.get(&url).send().await, 401),
        (
            "invalid 400",
            app.client.post(&url).bearer_auth(token("alice")).send_json(&json!({"content": ""})).await,
            400,
        ),
    ];
    for (what, res, status) in requests {
        let res = res.expect("request completes");
        assert_eq!(res.status().as_u16(), status, "{what}");
        let nosniff = res.headers().get("x-content-type-options").map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(nosniff.as_deref(), Some("nosniff"), "{what}");
        let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(content_type.as_deref(), Some("application/json"), "{what}");
    }
}
