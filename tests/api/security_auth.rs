//! Tokens that cannot wedge the server, complete JWT validation, safe defaults for dev
//! auth, data files and cookies, and `/metrics` on a listener of its own.

use actix_web::http::StatusCode;
use awc::error::WsClientError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::{Backend, SECRET, TestApp, WAIT, assert_error, now_secs, spawn_app, token, token_with};
use crate::process::{missive, start_with, token_for};

crate::both_backends!(
    a_token_valid_beyond_year_9999_neither_panics_nor_leaks_its_connection,
    nbf_is_enforced_with_the_exp_leeway,
    a_token_with_critical_header_extensions_is_refused,
    refusals_never_echo_the_token_library,
    a_cookie_alone_cannot_open_a_socket_from_a_browser_page_without_an_origin_list,
);

async fn a_token_valid_beyond_year_9999_neither_panics_nor_leaks_its_connection(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| s.max_connections_per_user = 1).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await.with_presence();
    let forever = token_with(json!({"sub": "alice", "exp": u64::MAX}));
    let mut ws = app.ws_raw(&format!("?token={forever}")).await.expect("upgrade");
    ws.expect("connected").await;
    assert_eq!(bob.expect("user-online").await["data"]["userId"], "alice");
    ws.join(&chat).await;
    let beyond = token_with(json!({"sub": "alice", "exp": 253_402_300_800u64 * 10}));
    ws.send_json(json!({"event": "refresh-token", "data": {"token": beyond}, "ref": "r"})).await;
    let refreshed = ws.expect("token-refreshed").await;
    assert_eq!(refreshed["data"]["expiresAt"], "9999-12-31T23:59:59.000Z", "clamped, never wrapped");
    ws.send_json(json!({"event": "ping", "data": {}, "ref": "p"})).await;
    assert_eq!(ws.expect("pong").await["ref"], "p", "the session is alive");
    drop(ws);
    // Unregistered when it closed: alice goes offline and her one connection slot is free.
    assert_eq!(bob.expect("user-offline").await["data"]["userId"], "alice");
    let mut again = app.ws("alice").await;
    again.expect_nothing_pending().await;
}

async fn nbf_is_enforced_with_the_exp_leeway(backend: Backend) {
    let app = spawn_app(backend).await;
    let later = token_with(json!({"sub": "alice", "exp": now_secs() + 3600, "nbf": now_secs() + 600}));
    let (status, body) = call_as(&app, &later).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("not valid yet"), "{body}");
    assert!(app.ws_raw(&format!("?token={later}")).await.is_err(), "the socket refuses it too");
    // Within the leeway (a few seconds of clock skew), and in the past: accepted.
    for nbf in [now_secs() + 2, now_secs() - 600] {
        let ok = token_with(json!({"sub": "alice", "exp": now_secs() + 3600, "nbf": nbf}));
        assert_eq!(call_as(&app, &ok).await.0, StatusCode::OK, "nbf {nbf}");
    }
}

async fn call_as(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let mut res = app.client.get(app.url("/v1/messaging/chats")).bearer_auth(token).send().await.expect("request");
    let body = res.json::<Value>().await.expect("JSON body");
    (res.status(), body)
}

async fn a_token_with_critical_header_extensions_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"sub": "alice", "exp": now_secs() + 3600});
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let critical = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let (status, body) = call_as(&app, &critical).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("crit"), "{body}");
    let plain = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    assert_eq!(call_as(&app, &plain).await.0, StatusCode::OK);
}

async fn refusals_never_echo_the_token_library(backend: Backend) {
    let app = spawn_app(backend).await;
    let good = token("alice");
    let (head, _) = good.rsplit_once('.').unwrap();
    let other_key = EncodingKey::from_secret(b"another-secret-another-secret-0123456789");
    let cases = [
        "not-a-token".to_owned(),
        "a.b.c".to_owned(),
        format!("{head}.AAAA"),
        format!("{head}.!!!"),
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &json!({"sub": "alice", "exp": 1}), &other_key).unwrap(),
        token_with(json!({"sub": "alice", "exp": "tomorrow"})),
        token_with(json!({"sub": "x".repeat(5000), "exp": now_secs() + 60})),
    ];
    for bad in cases {
        let (status, body) = call_as(&app, &bad).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("invalid token"), "{message}");
        assert!(message.len() < 120, "a short fixed sentence, never the input: {message}");
        for internal in ["Error", "Base64", "Json", "InvalidSignature", "line ", "column", "xxxx"] {
            assert!(!message.contains(internal), "{internal:?} in {message:?}");
        }
    }
}

async fn a_cookie_alone_cannot_open_a_socket_from_a_browser_page_without_an_origin_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = format!("sAccessToken={}", token("alice"));
    let from = |origin: Option<&str>, with_cookie: bool, query: bool| {
        let url = if query { app.ws_url(&format!("?token={}", token("alice"))) } else { app.ws_url("") };
        let mut req = app.client.ws(url);
        if with_cookie {
            req = req.header("Cookie", cookie.clone());
        }
        if let Some(origin) = origin {
            req = req.origin(origin);
        }
        app.ws_request(req)
    };
    match from(Some("https://evil.example"), true, false).await {
        Err(WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, StatusCode::FORBIDDEN),
        other => panic!("a cross-site page riding the cookie was upgraded: {:?}", other.err()),
    }
    // Not a browser (no Origin), or a token the page itself had: upgraded.
    for (origin, with_cookie, query) in [(None, true, false), (Some("https://evil.example"), true, true)] {
        let mut ws = from(origin, with_cookie, query).await.expect("upgraded");
        assert_eq!(ws.expect("connected").await["data"]["userId"], "alice");
    }
    // With an allow-list, the cookie works from the listed origin.
    let listed = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.allowed_origins = Some("https://app.example".into());
    })
    .await;
    let req = listed.client.ws(listed.ws_url("")).header("Cookie", cookie.clone()).origin("https://app.example");
    let mut ws = listed.ws_request(req).await.expect("upgraded from the listed origin");
    ws.expect("connected").await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[actix_web::test]
async fn data_files_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh").join("data");
    // `missive` started by a shell whose umask takes nothing away.
    let mut cmd = Command::new("sh");
    let prepared = missive(&data);
    cmd.args(["-c", "umask 000; exec \"$0\"", prepared.get_program().to_str().unwrap()]);
    for (key, value) in prepared.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let server = start_with(cmd);
    let token = token_for(&data, "alice");
    let client = awc::Client::builder().timeout(WAIT).finish();
    let url = format!("http://{}/v1/messaging/chats", server.addr);
    let res = client.post(url).bearer_auth(&token).send_json(&json!({"participants": ["bob"]})).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "a write, so the -wal and -shm files exist");
    assert_eq!(mode(&data), 0o700, "data directory");
    for file in ["missive.db", "missive.db-wal", "missive.db-shm", "dev-jwt-secret"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[actix_web::test]
async fn dev_auth_refuses_to_listen_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let settings = missive::config::Settings {
        bind: "0.0.0.0:0".into(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(dir.path().join("test.db").to_string_lossy().into_owned()),
        ..Default::default()
    };
    let error = match missive::startup::Application::build(settings).await {
        Ok(_) => panic!("dev auth started on 0.0.0.0"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("0.0.0.0:") && error.contains("MISSIVE_JWT_SECRET"), "{error}");
    assert!(!dir.path().join("test.db").exists(), "refused before any database work");
    // A configured secret may listen anywhere.
    let settings = missive::config::Settings {
        bind: "0.0.0.0:0".into(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(dir.path().join("test.db").to_string_lossy().into_owned()),
        jwt_secret: Some(SECRET.into()),
        workers: Some(1),
        ..Default::default()
    };
    let app = missive::startup::Application::build(settings).await.expect("a configured secret listens anywhere");
    app.run_until_stopped(async {}).await.expect("stops");
}

#[actix_web::test]
async fn metrics_can_move_to_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = missive(dir.path());
    cmd.env("MISSIVE_METRICS_BIND", "127.0.0.1:0");
    let server = start_with(cmd);
    let log = server.startup_log.join("\n");
    let metrics = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the startup log names the metrics listener:\n{log}"))
        .to_owned();
    let client = awc::Client::builder().timeout(WAIT).finish();
    let mut res = client.get(format!("http://{metrics}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(text.contains("missive_ws_connections"), "{text}");
    let mut res = client.get(format!("http://{}/metrics", server.addr)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "not on the main listener");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let api = client.get(format!("http://{metrics}/v1/messaging/chats")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND, "the metrics listener serves nothing else");
}
