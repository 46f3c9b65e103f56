//! The browser `Origin` allow-list on the upgrade (issue point 6) and tokens on live
//! sockets (issue point 5): expiry closes with 4001 on time, `refresh-token` with a newer
//! token of the same user moves the expiry, and nothing else does.

use actix_web::http::StatusCode;
use awc::error::WsClientError;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helpers::{
    Backend, TestApp, WsClient, assert_error, now_secs, spawn_app, spawn_app_with, token, token_with,
};

crate::both_backends!(
    an_origin_on_the_allow_list_is_upgraded,
    an_origin_not_on_the_allow_list_is_refused_with_403_before_the_101,
    origins_are_matched_exactly_not_by_prefix_suffix_or_case,
    the_null_origin_is_refused_when_an_allow_list_is_set,
    a_client_without_an_origin_header_is_upgraded_when_an_allow_list_is_set,
    an_allowed_origin_still_needs_a_valid_token,
    without_an_allow_list_any_origin_is_upgraded,
    a_socket_is_closed_with_4001_at_its_token_exp_and_only_that_socket,
    a_refreshed_socket_outlives_the_old_exp,
    a_refreshed_socket_is_closed_at_the_new_exp,
    a_refresh_with_another_users_token_is_forbidden_and_keeps_the_original_exp,
    a_refresh_with_an_expired_token_is_unauthorized_and_keeps_the_original_exp,
);

const ALLOWED: &str = "https://app.example.com,https://admin.example.com";

async fn spawn_with_allow_list(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.allowed_origins = Some(ALLOWED.into())).await
}

/// Opens a WebSocket as `user` with this `Origin` header (None: no header at all).
async fn connect_from(app: &TestApp, user: &str, origin: Option<&str>) -> Result<WsClient, WsClientError> {
    let mut request = app.client.ws(app.ws_url(&format!("?token={}", token(user))));
    if let Some(origin) = origin {
        request = request.origin(origin);
    }
    app.ws_request(request).await
}

/// Asserts the upgrade succeeded and the connection works.
async fn assert_upgraded(result: Result<WsClient, WsClientError>, user: &str, what: &str) {
    let mut ws = result.unwrap_or_else(|e| panic!("{what}: the upgrade was refused: {e}"));
    let hello = ws.expect("connected").await;
    assert_eq!(hello["data"]["userId"], user, "{what}");
    ws.expect_nothing_pending().await;
}

/// The status a refused upgrade answered with; panics when the upgrade succeeded.
fn refused_status(result: Result<WsClient, WsClientError>, what: &str) -> StatusCode {
    match result {
        Ok(_) => panic!("{what}: the upgrade was accepted"),
        Err(WsClientError::InvalidResponseStatus(status)) => status,
        Err(other) => panic!("{what}: expected a refused upgrade, got {other}"),
    }
}

/// The refusal as a plain GET with the same `Origin`: the JSON error body a browser sees.
async fn refusal_body(app: &TestApp, origin: &str) -> (StatusCode, Value) {
    let mut res = app
        .client
        .get(app.ws_url(&format!("?token={}", token("alice"))).replacen("ws://", "http://", 1))
        .insert_header(("origin", origin))
        .send()
        .await
        .expect("request completes");
    let body = res.json::<Value>().await.expect("JSON body");
    (res.status(), body)
}

/// Asserts `origin` is refused with 403 before the 101, with a `forbidden` JSON body.
async fn assert_origin_refused(app: &TestApp, origin: &str) {
    let status = refused_status(connect_from(app, "alice", Some(origin)).await, origin);
    assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
    let (status, body) = refusal_body(app, origin).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

// ---------------------------------------------------------------------------------------
// Origin.

async fn an_origin_on_the_allow_list_is_upgraded(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    for origin in ["https://app.example.com", "https://admin.example.com"] {
        assert_upgraded(connect_from(&app, "alice", Some(origin)).await, "alice", origin).await;
    }
}

async fn an_origin_not_on_the_allow_list_is_refused_with_403_before_the_101(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    assert_origin_refused(&app, "https://evil.example.com").await;
    // The refusal is not sticky: the same user from an allowed page connects.
    assert_upgraded(connect_from(&app, "alice", Some("https://app.example.com")).await, "alice", "allowed").await;
}

async fn origins_are_matched_exactly_not_by_prefix_suffix_or_case(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    for origin in [
        "https://app.example.com.evil.com",
        "https://APP.example.com",
        "https://evil-app.example.com",
        "https://app.example.co",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com/",
        "https://app.example.com,https://admin.example.com",
        "app.example.com",
        "",
    ] {
        assert_origin_refused(&app, origin).await;
    }
}

async fn the_null_origin_is_refused_when_an_allow_list_is_set(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    // Sandboxed iframes and file:// pages send `Origin: null`.
    assert_origin_refused(&app, "null").await;
}

async fn a_client_without_an_origin_header_is_upgraded_when_an_allow_list_is_set(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    assert_upgraded(connect_from(&app, "alice", None).await, "alice", "no Origin").await;
}

async fn an_allowed_origin_still_needs_a_valid_token(backend: Backend) {
    let app = spawn_with_allow_list(backend).await;
    let request = app.client.ws(app.ws_url("")).origin("https://app.example.com");
    assert_eq!(refused_status(app.ws_request(request).await, "no token"), StatusCode::UNAUTHORIZED);
    let request = app.client.ws(app.ws_url("?token=garbage")).origin("https://app.example.com");
    assert_eq!(refused_status(app.ws_request(request).await, "bad token"), StatusCode::UNAUTHORIZED);
}

async fn without_an_allow_list_any_origin_is_upgraded(backend: Backend) {
    let app = spawn_app(backend).await;
    for origin in ["https://evil.example.com", "null", "http://localhost:3000"] {
        assert_upgraded(connect_from(&app, "alice", Some(origin)).await, "alice", origin).await;
    }
    assert_upgraded(connect_from(&app, "alice", None).await, "alice", "no Origin").await;
}

// ---------------------------------------------------------------------------------------
// Tokens on live sockets.

fn unix_ms_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis()
}

/// Opens a socket as `user` with a token expiring at `exp` (Unix seconds).
async fn connect_until(app: &TestApp, user: &str, exp: u64) -> WsClient {
    let short = token_with(json!({"sub": user, "exp": exp}));
    let mut ws = app.ws_raw(&format!("?token={short}")).await.expect("a token not yet expired is accepted");
    assert_eq!(ws.expect("connected").await["data"]["userId"], user);
    ws
}

/// Waits for the close and asserts it is 4001, sent at `exp` (server and test share this
/// machine's clock; the server closes on the exact second, no leeway) and within a few
/// seconds of it.
async fn assert_closed_with_4001_at(ws: &mut WsClient, exp: u64) {
    assert_eq!(ws.expect_close().await, Some(4001));
    let closed_at = unix_ms_now();
    let exp_ms = u128::from(exp) * 1000;
    assert!(closed_at + 20 >= exp_ms, "closed {} ms before the token's exp", exp_ms - closed_at);
    assert!(closed_at <= exp_ms + 3000, "closed {} ms after the token's exp", closed_at - exp_ms);
}

/// Sleeps until the wall clock is `ms` past Unix second `exp`. Time itself is the condition.
async fn sleep_past(exp: u64, ms: u64) {
    let target = u128::from(exp) * 1000 + u128::from(ms);
    let now = unix_ms_now();
    if target > now {
        tokio::time::sleep(Duration::from_millis((target - now) as u64)).await;
    }
}

async fn refresh(ws: &mut WsClient, token: String, reference: &str) -> Value {
    ws.send_json(json!({"event": "refresh-token", "data": {"token": token}, "ref": reference})).await;
    let reply = ws.next_event().await;
    assert_eq!(reply["ref"], reference, "{reply}");
    reply
}

#[track_caller]
fn assert_error_frame(frame: &Value, code: &str) {
    assert_eq!(frame["event"], "error", "{frame}");
    assert_eq!(frame["data"]["code"], code, "{frame}");
    assert_eq!(frame["data"]["event"], "refresh-token", "{frame}");
    assert!(frame["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
}

fn rfc3339_of(exp: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_secs(exp)).to_string()
}

async fn a_socket_is_closed_with_4001_at_its_token_exp_and_only_that_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    let exp = now_secs() + 2;
    let mut short = connect_until(&app, "alice", exp).await;
    let mut long = app.ws("alice").await;
    assert_closed_with_4001_at(&mut short, exp).await;
    // The user's other connection, with a token valid for an hour, is untouched.
    long.expect_nothing_pending().await;
}

async fn a_refreshed_socket_outlives_the_old_exp(backend: Backend) {
    let app = spawn_app(backend).await;
    let old_exp = now_secs() + 2;
    let mut ws = connect_until(&app, "alice", old_exp).await;
    let new_exp = now_secs() + 3600;
    let reply = refresh(&mut ws, token_with(json!({"sub": "alice", "exp": new_exp})), "r1").await;
    assert_eq!(reply["event"], "token-refreshed", "{reply}");
    assert_eq!(reply["data"], json!({"expiresAt": rfc3339_of(new_exp)}));
    // Past the old exp and the server's check of it, the socket still answers...
    sleep_past(old_exp, 500).await;
    ws.expect_nothing_pending().await;
    // ...and a second later it is still up.
    sleep_past(old_exp, 1500).await;
    ws.expect_nothing_pending().await;
    ws.send_json(json!({"event": "debug-status", "data": {}})).await;
    assert_eq!(ws.expect("debug-status").await["data"]["userId"], "alice");
}

async fn a_refreshed_socket_is_closed_at_the_new_exp(backend: Backend) {
    let app = spawn_app(backend).await;
    let old_exp = now_secs() + 2;
    let mut ws = connect_until(&app, "alice", old_exp).await;
    let new_exp = old_exp + 2;
    let reply = refresh(&mut ws, token_with(json!({"sub": "alice", "exp": new_exp})), "r1").await;
    assert_eq!(reply["data"], json!({"expiresAt": rfc3339_of(new_exp)}), "{reply}");
    assert_closed_with_4001_at(&mut ws, new_exp).await;
}

async fn a_refresh_with_another_users_token_is_forbidden_and_keeps_the_original_exp(backend: Backend) {
    let app = spawn_app(backend).await;
    let exp = now_secs() + 2;
    let mut ws = connect_until(&app, "alice", exp).await;
    let reply = refresh(&mut ws, token_with(json!({"sub": "mallory", "exp": now_secs() + 3600})), "r1").await;
    assert_error_frame(&reply, "forbidden");
    // The connection stays up and stays alice's...
    ws.send_json(json!({"event": "debug-status", "data": {}})).await;
    assert_eq!(ws.expect("debug-status").await["data"]["userId"], "alice");
    // ...until the original exp: the refused token extended nothing.
    assert_closed_with_4001_at(&mut ws, exp).await;
}

async fn a_refresh_with_an_expired_token_is_unauthorized_and_keeps_the_original_exp(backend: Backend) {
    let app = spawn_app(backend).await;
    let exp = now_secs() + 2;
    let mut ws = connect_until(&app, "alice", exp).await;
    let expired = token_with(json!({"sub": "alice", "exp": now_secs() - 60}));
    assert_error_frame(&refresh(&mut ws, expired, "r1").await, "unauthorized");
    // A token of alice signed with another secret is no better.
    let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-0123456789");
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": now_secs() + 3600}),
        &key,
    )
    .expect("sign");
    assert_error_frame(&refresh(&mut ws, forged, "r2").await, "unauthorized");
    ws.expect_nothing_pending().await;
    assert_closed_with_4001_at(&mut ws, exp).await;
}
