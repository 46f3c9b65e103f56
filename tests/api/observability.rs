//! Metrics, health endpoints and logs.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, WAIT, connect_ws, spawn_app};
use crate::process::{missive, start_with, token_for};

crate::both_backends!(metrics_report_connections_messages_pushes_http_and_pool_waits, health_and_readiness_answer,);

async fn metrics_report_connections_messages_pushes_http_and_pool_waits(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    app.send("alice", &chat, "counted").await;
    bob.expect("new-message").await;
    bob.expect_nothing_pending().await; // the push latency is recorded once the frame is written

    let mut res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    for name in [
        "missive_ws_connections",
        "missive_messages_posted_total",
        "missive_events_pushed_total",
        "missive_outbox_overflows_total",
        "missive_slow_consumer_closes_total",
        "missive_push_latency_seconds_bucket",
        "missive_db_pool_wait_seconds_bucket",
        "missive_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let route = r#"route="/v1/messaging/chats/{chat_id}/messages""#;
    assert!(
        text.lines().any(|l| l.starts_with("missive_http_requests_total")
            && l.contains(route)
            && l.contains(r#"status="201""#)),
        "requests are counted by route pattern and status:\n{text}"
    );
    assert!(!text.contains(&chat), "route patterns, never concrete ids");
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}

#[actix_web::test]
async fn json_logs_have_one_line_per_request_and_never_a_token_or_query() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_for(dir.path(), "alice");
    let mut cmd = missive(dir.path());
    cmd.env("MISSIVE_LOG_FORMAT", "json");
    let server = start_with(cmd);
    for line in &server.startup_log {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    let ws = connect_ws(&format!("ws://{}/messaging?token={token}", server.addr)).await;
    let client = awc::Client::builder().timeout(WAIT).finish();
    let res = client.get(format!("http://{}/v1/messaging/chats?limit=5", server.addr)).bearer_auth(&token).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);
    drop(ws);
    // Read log lines as they arrive until both access lines are in (bounded).
    let mut lines = Vec::new();
    let mut found: Vec<Value> = Vec::new();
    while found.len() < 2 {
        let line = server.next_log_line(WAIT).expect("access log lines within the wait");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["target"] == "missive::access"
        {
            found.push(v);
        }
        lines.push(line);
    }
    let list = found.iter().find(|v| v["path"] == "/v1/messaging/chats").expect("an access line for the list");
    assert_eq!(list["route"], "/v1/messaging/chats");
    assert_eq!(list["status"], 200);
    assert!(list["duration_ms"].is_number());
    assert!(found.iter().any(|v| v["path"] == "/messaging" && v["status"] == 101), "the upgrade is logged");
    for line in &lines {
        assert!(!line.contains(&token), "a token leaked into the log: {line}");
        assert!(!line.contains("limit=5"), "a query string leaked into the log: {line}");
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
}
