//! The demo page at `/`, and the dev token endpoint it signs in with.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

crate::both_backends!(
    the_page_and_its_assets_are_served_under_a_strict_policy,
    a_dev_token_asked_from_loopback_works_on_rest_and_websocket,
    the_dev_token_endpoint_does_not_exist_with_a_configured_secret,
    an_invalid_user_id_gets_no_dev_token,
    forwarded_or_rebound_requests_get_no_dev_token,
);

/// A server in dev auth: no secret configured, so it generates one.
async fn spawn_dev_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.jwt_secret = None).await
}

/// GETs `path` anonymously: status, Content-Type, Content-Security-Policy and body text.
async fn fetch(app: &TestApp, path: &str) -> (StatusCode, String, String, String) {
    let mut res = app.client.get(app.url(path)).send().await.expect("request completes");
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (content_type, csp) = (header("content-type"), header("content-security-policy"));
    let body = String::from_utf8(res.body().await.expect("body").to_vec()).expect("UTF-8");
    (res.status(), content_type, csp, body)
}

async fn ask_token(app: &TestApp, user: &str) -> (StatusCode, Value) {
    app.call("POST", "/dev/token", None, Some(json!({"userId": user}))).await
}

async fn the_page_and_its_assets_are_served_under_a_strict_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, content_type, csp, page) = fetch(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(page.contains(r#"<script src="/demo.js""#) && page.contains(r#"href="/demo.css""#), "{page}");
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(csp.contains(&format!("ws://127.0.0.1:{}", app.port)), "the socket's origin is allowed: {csp}");
    assert!(!csp.contains("unsafe"), "nothing inline: {csp}");

    let (status, content_type, _, script) = fetch(&app, "/demo.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/javascript"), "{content_type}");
    assert!(script.contains("new WebSocket"));
    let (status, content_type, _, _) = fetch(&app, "/demo.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/css"), "{content_type}");
}

async fn a_dev_token_asked_from_loopback_works_on_rest_and_websocket(backend: Backend) {
    let app = spawn_dev_app(backend).await;
    let (status, body) = ask_token(&app, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("a token");
    assert!(body["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");

    let res = app.client.get(app.url("/v1/messaging/chats")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the token works on REST");
    let mut ws = app.ws_raw(&format!("?token={token}")).await.expect("the token opens a socket");
    assert_eq!(ws.expect("connected").await["data"]["userId"], "alice");
}

async fn the_dev_token_endpoint_does_not_exist_with_a_configured_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = ask_token(&app, "alice").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "not_found", "message": "no route for POST /dev/token"}),
        "an unknown route's 404"
    );
}

async fn an_invalid_user_id_gets_no_dev_token(backend: Backend) {
    let app = spawn_dev_app(backend).await;
    for user in ["", "al ice", "<script>"] {
        let (status, body) = ask_token(&app, user).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{user:?}: {body}");
        assert_eq!(body["error"], "validation_failed");
    }
    let (status, body) = app.call("POST", "/dev/token", None, Some(json!({"user": "alice"}))).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("validation_failed")), "{body}");
}

/// A proxy on this machine makes every caller look local, and a page whose DNS name was
/// rebound to 127.0.0.1 reaches the server with its own Host: neither gets a token.
async fn forwarded_or_rebound_requests_get_no_dev_token(backend: Backend) {
    let app = spawn_dev_app(backend).await;
    let port = app.port;
    let cases = [
        ("x-forwarded-for", "203.0.113.9".to_owned()),
        ("forwarded", "for=203.0.113.9".to_owned()),
        ("host", format!("evil.example:{port}")),
        ("origin", "http://evil.example".to_owned()),
    ];
    for (name, value) in cases {
        let req = app.client.post(app.url("/dev/token")).insert_header((name, value.as_str()));
        let res = req.send_json(&json!({"userId": "alice"})).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}: {value}");
    }
    let same_origin =
        app.client.post(app.url("/dev/token")).insert_header(("origin", format!("http://127.0.0.1:{port}")));
    let res = same_origin.send_json(&json!({"userId": "alice"})).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the page's own origin is fine");
}
