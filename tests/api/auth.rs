//! JWT authentication of REST calls (contract §2): where the token may come from, which
//! claims it needs, algorithm pinning (shared secret or public key), issuer and audience.

use actix_web::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;

use missive::config::Settings;
use missive::startup::Application;

use crate::helpers::{Backend, SECRET, TestApp, now_secs, spawn_app, spawn_app_with, token, token_with};

crate::both_backends!(
    a_valid_bearer_token_identifies_the_caller,
    a_token_with_user_id_instead_of_sub_is_accepted,
    sub_wins_over_user_id_when_both_are_present,
    the_s_access_token_cookie_authenticates_rest_calls,
    a_missing_token_is_refused_with_401,
    a_malformed_authorization_header_is_refused,
    a_token_without_sub_or_user_id_is_refused,
    an_expired_token_is_refused,
    a_token_without_exp_is_refused,
    an_alg_none_token_is_refused,
    a_token_with_a_tampered_payload_is_refused,
    an_hs384_token_signed_with_the_right_secret_is_refused,
    a_token_signed_with_another_secret_is_refused,
    a_token_whose_subject_is_not_a_valid_user_id_is_refused,
    tokens_with_the_configured_issuer_and_audience_are_accepted,
    tokens_with_a_wrong_issuer_or_audience_are_refused,
    tokens_without_the_configured_issuer_or_audience_are_refused,
    an_ed25519_public_key_verifies_eddsa_tokens_and_nothing_else,
    an_ec_p256_public_key_verifies_es256_tokens_and_nothing_else,
    an_rsa_public_key_verifies_rs256_tokens_and_nothing_else,
    a_secret_shorter_than_32_bytes_makes_the_build_fail,
    a_secret_of_exactly_32_bytes_is_accepted,
    configuring_both_a_secret_and_a_public_key_makes_the_build_fail,
);

const CHATS: &str = "/v1/messaging/chats";

/// base64url without padding, as JWTs use it.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
}

fn valid_claims(user: &str) -> Value {
    json!({"sub": user, "exp": now_secs() + 3600})
}

/// Sends a request with `Authorization: Bearer <token>`.
async fn call_with_bearer(app: &TestApp, method: &str, token: &str) -> (StatusCode, Value) {
    let req = match method {
        "POST" => app.client.post(app.url(CHATS)),
        _ => app.client.get(app.url(CHATS)),
    };
    let req = req.insert_header(("Authorization", format!("Bearer {token}")));
    let mut res = match method {
        "POST" => req.send_json(&json!({"participants": []})).await,
        _ => req.send().await,
    }
    .expect("request completes");
    let bytes = res.body().await.expect("body");
    (res.status(), serde_json::from_slice(&bytes).expect("JSON body"))
}

/// The token is accepted and names `user`: a chat it creates is created by `user`.
async fn assert_accepted_as(app: &TestApp, token: &str, user: &str) {
    let (status, chat) = call_with_bearer(app, "POST", token).await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    assert_eq!(chat["createdBy"], user, "{chat}");
    assert_eq!(chat["participants"], json!([user]));
    let (status, list) = call_with_bearer(app, "GET", token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["chats"][0]["id"], chat["id"], "{list}");
}

#[track_caller]
fn assert_unauthorized(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{what}: only error and message: {body}");
}

/// The token is refused with 401 `unauthorized` on a read and on a write, and the write
/// stored nothing.
async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let (status, body) = call_with_bearer(app, "GET", token).await;
    assert_unauthorized(status, &body, what);
    let (status, body) = call_with_bearer(app, "POST", token).await;
    assert_unauthorized(status, &body, what);
}

async fn a_valid_bearer_token_identifies_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_accepted_as(&app, &token("alice"), "alice").await;
    assert_accepted_as(&app, &token("user-123@example.com"), "user-123@example.com").await;
    // A lowercase scheme is common in hand-written clients.
    let mut res = app
        .client
        .get(app.url(CHATS))
        .insert_header(("Authorization", format!("bearer {}", token("alice"))))
        .send()
        .await
        .expect("request completes");
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.body().await);
}

async fn a_token_with_user_id_instead_of_sub_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = token_with(json!({"userId": "user-42", "exp": now_secs() + 3600}));
    assert_accepted_as(&app, &t, "user-42").await;
}

async fn sub_wins_over_user_id_when_both_are_present(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = token_with(json!({"sub": "alice", "userId": "mallory", "exp": now_secs() + 3600}));
    assert_accepted_as(&app, &t, "alice").await;
}

async fn the_s_access_token_cookie_authenticates_rest_calls(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("bob", &["alice"]).await;
    let cookie = format!("theme=dark; sAccessToken={}; other=1", token("alice"));
    let mut res = app
        .client
        .get(app.url(&format!("{CHATS}/{chat}")))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .expect("request completes");
    let body: Value = serde_json::from_slice(&res.body().await.expect("body")).expect("JSON");
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    assert_eq!(body["id"], chat);

    let mut res = app
        .client
        .post(app.url(CHATS))
        .insert_header(("Cookie", cookie))
        .send_json(&json!({"participants": ["carol"]}))
        .await
        .expect("request completes");
    let body: Value = serde_json::from_slice(&res.body().await.expect("body")).expect("JSON");
    assert_eq!(res.status(), StatusCode::CREATED, "{body}");
    assert_eq!(body["createdBy"], "alice", "the cookie's user is the caller");

    // A cookie with a bad token is refused like a bad header.
    let mut res = app
        .client
        .get(app.url(CHATS))
        .insert_header(("Cookie", "sAccessToken=not.a.token"))
        .send()
        .await
        .expect("request completes");
    let body: Value = serde_json::from_slice(&res.body().await.expect("body")).expect("JSON");
    assert_unauthorized(res.status(), &body, "bad cookie");
}

async fn a_missing_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.call("GET", CHATS, None, None).await;
    assert_unauthorized(status, &body, "no token");
    let (status, body) = app.call("POST", CHATS, None, Some(json!({"participants": []}))).await;
    assert_unauthorized(status, &body, "no token");
    let (_, list) = app.get(CHATS, "alice").await;
    assert_eq!(list["chats"], json!([]), "the anonymous create stored nothing");
}

async fn a_malformed_authorization_header_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for header in ["Bearer not.a.jwt", "Bearer ", "Bearer", "Basic YWxpY2U6cHc=", token("alice").as_str()] {
        let mut res = app
            .client
            .get(app.url(CHATS))
            .insert_header(("Authorization", header))
            .send()
            .await
            .expect("request completes");
        let body: Value = serde_json::from_slice(&res.body().await.expect("body")).expect("JSON");
        assert_unauthorized(res.status(), &body, header);
    }
}

async fn a_token_without_sub_or_user_id_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_refused(&app, &token_with(json!({"exp": now_secs() + 3600})), "no subject").await;
    assert_refused(&app, &token_with(json!({"sub": null, "exp": now_secs() + 3600})), "null subject").await;
}

async fn an_expired_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for ago in [60, 3600] {
        let t = token_with(json!({"sub": "alice", "exp": now_secs() - ago}));
        assert_refused(&app, &t, &format!("expired {ago}s ago")).await;
    }
}

async fn a_token_without_exp_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_refused(&app, &token_with(json!({"sub": "alice"})), "no exp").await;
    assert_refused(&app, &token_with(json!({"sub": "alice", "exp": "tomorrow"})), "exp not a number").await;
}

async fn an_alg_none_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let payload = b64url(valid_claims("alice").to_string().as_bytes());
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None","typ":"JWT"}"#, r#"{"alg":"NONE"}"#] {
        let unsigned = format!("{}.{payload}.", b64url(header.as_bytes()));
        assert_refused(&app, &unsigned, header).await;
    }
    // The same claims, properly signed, pass: only the missing signature was refused.
    assert_accepted_as(&app, &token("alice"), "alice").await;
}

async fn a_token_with_a_tampered_payload_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let genuine = token("alice");
    assert_accepted_as(&app, &genuine, "alice").await;
    let parts: Vec<&str> = genuine.split('.').collect();
    assert_eq!(parts.len(), 3);
    let forged_payload = b64url(valid_claims("mallory").to_string().as_bytes());
    assert_ne!(forged_payload, parts[1]);
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&app, &forged, "payload changed, signature kept").await;
}

async fn an_hs384_token_signed_with_the_right_secret_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert_refused(&app, &sign(alg, &key, &valid_claims("alice")), &format!("{alg:?}")).await;
    }
    assert_accepted_as(&app, &sign(Algorithm::HS256, &key, &valid_claims("alice")), "alice").await;
}

async fn a_token_signed_with_another_secret_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = EncodingKey::from_secret(b"another-secret-another-secret-0123456789");
    assert_refused(&app, &sign(Algorithm::HS256, &key, &valid_claims("alice")), "other secret").await;
}

async fn a_token_whose_subject_is_not_a_valid_user_id_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_long = "x".repeat(129);
    for sub in ["a b", "", "bob/1", "é", "<script>", too_long.as_str()] {
        assert_refused(&app, &token(sub), &format!("sub {sub:?}")).await;
        let t = token_with(json!({"userId": sub, "exp": now_secs() + 3600}));
        assert_refused(&app, &t, &format!("userId {sub:?}")).await;
    }
    assert_refused(&app, &token_with(json!({"sub": 42, "exp": now_secs() + 3600})), "numeric sub").await;
}

const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "missive-api";

async fn issuer_and_audience_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.jwt_issuer = Some(ISSUER.into());
        s.jwt_audience = Some(AUDIENCE.into());
    })
    .await
}

async fn tokens_with_the_configured_issuer_and_audience_are_accepted(backend: Backend) {
    let app = issuer_and_audience_app(backend).await;
    let exp = now_secs() + 3600;
    let t = token_with(json!({"sub": "alice", "exp": exp, "iss": ISSUER, "aud": AUDIENCE}));
    assert_accepted_as(&app, &t, "alice").await;
    let t = token_with(json!({"sub": "bob", "exp": exp, "iss": ISSUER, "aud": [AUDIENCE]}));
    assert_accepted_as(&app, &t, "bob").await;
}

async fn tokens_with_a_wrong_issuer_or_audience_are_refused(backend: Backend) {
    let app = issuer_and_audience_app(backend).await;
    let exp = now_secs() + 3600;
    let cases = [
        ("wrong iss", json!({"sub": "alice", "exp": exp, "iss": "https://evil.example.com/", "aud": AUDIENCE})),
        ("wrong aud", json!({"sub": "alice", "exp": exp, "iss": ISSUER, "aud": "another-api"})),
        ("wrong aud list", json!({"sub": "alice", "exp": exp, "iss": ISSUER, "aud": ["another-api"]})),
    ];
    for (what, claims) in cases {
        assert_refused(&app, &token_with(claims), what).await;
    }
}

async fn tokens_without_the_configured_issuer_or_audience_are_refused(backend: Backend) {
    let app = issuer_and_audience_app(backend).await;
    let exp = now_secs() + 3600;
    let cases = [
        ("missing iss", json!({"sub": "alice", "exp": exp, "aud": AUDIENCE})),
        ("missing aud", json!({"sub": "alice", "exp": exp, "iss": ISSUER})),
        ("missing both", json!({"sub": "alice", "exp": exp})),
    ];
    // Every case first, so a failure names all the claims that were let through.
    let mut statuses = Vec::new();
    for (what, claims) in &cases {
        statuses.push((*what, call_with_bearer(&app, "GET", &token_with(claims.clone())).await.0.as_u16()));
    }
    let expected: Vec<_> = cases.iter().map(|(what, _)| (*what, 401)).collect();
    assert_eq!(statuses, expected);
    for (what, claims) in cases {
        assert_refused(&app, &token_with(claims), what).await;
    }
}

/// Starts a server verifying with the public key `<name>-public.pem` (algorithm pinned
/// or inferred), and checks: tokens signed with the matching private key pass; an HS256
/// token signed with the public key's bytes as the secret (algorithm confusion), an
/// HS256 token with the test secret, tokens of the other key types, and expired tokens
/// are all refused.
async fn check_public_key_mode(backend: Backend, name: &str, alg: Algorithm, pinned: Option<&str>) {
    let public = fixture(&format!("{name}-public.pem"));
    let public_bytes = read_fixture(&format!("{name}-public.pem"));
    let pinned = pinned.map(str::to_owned);
    let app = spawn_app_with(backend, |s| {
        s.jwt_secret = None;
        s.jwt_public_key = Some(public);
        s.jwt_algorithm = pinned;
    })
    .await;
    let private = read_fixture(&format!("{name}-private.pem"));
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&private),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&private),
        _ => EncodingKey::from_rsa_pem(&private),
    }
    .expect("fixture private key");
    assert_accepted_as(&app, &sign(alg, &key, &valid_claims("alice")), "alice").await;
    let t = sign(alg, &key, &json!({"userId": "bob", "exp": now_secs() + 60}));
    assert_accepted_as(&app, &t, "bob").await;

    let expired = sign(alg, &key, &json!({"sub": "alice", "exp": now_secs() - 60}));
    assert_refused(&app, &expired, "expired").await;
    let no_exp = sign(alg, &key, &json!({"sub": "alice"}));
    assert_refused(&app, &no_exp, "no exp").await;

    // Algorithm confusion: the public key is public, so it must never work as an HMAC secret.
    for secret in [public_bytes.as_slice(), public_bytes.trim_ascii()] {
        let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(secret), &valid_claims("mallory"));
        assert_refused(&app, &confused, "HS256 signed with the public key").await;
    }
    assert_refused(&app, &token("mallory"), "HS256 with the test secret").await;

    let others = [
        ("ed25519", Algorithm::EdDSA, EncodingKey::from_ed_pem(&read_fixture("ed25519-private.pem"))),
        ("es256", Algorithm::ES256, EncodingKey::from_ec_pem(&read_fixture("es256-private.pem"))),
        ("rs256", Algorithm::RS256, EncodingKey::from_rsa_pem(&read_fixture("rs256-private.pem"))),
    ];
    for (other, other_alg, other_key) in others {
        if other != name {
            let t = sign(other_alg, &other_key.expect("fixture private key"), &valid_claims("mallory"));
            assert_refused(&app, &t, &format!("{other} token on a {name} server")).await;
        }
    }
    // Same key, another algorithm of its family.
    if alg == Algorithm::RS256 {
        assert_refused(&app, &sign(Algorithm::RS512, &key, &valid_claims("mallory")), "RS512").await;
        assert_refused(&app, &sign(Algorithm::PS256, &key, &valid_claims("mallory")), "PS256").await;
    }
}

async fn an_ed25519_public_key_verifies_eddsa_tokens_and_nothing_else(backend: Backend) {
    check_public_key_mode(backend.clone(), "ed25519", Algorithm::EdDSA, None).await;
    check_public_key_mode(backend, "ed25519", Algorithm::EdDSA, Some("EdDSA")).await;
}

async fn an_ec_p256_public_key_verifies_es256_tokens_and_nothing_else(backend: Backend) {
    check_public_key_mode(backend.clone(), "es256", Algorithm::ES256, None).await;
    check_public_key_mode(backend, "es256", Algorithm::ES256, Some("ES256")).await;
}

async fn an_rsa_public_key_verifies_rs256_tokens_and_nothing_else(backend: Backend) {
    check_public_key_mode(backend.clone(), "rs256", Algorithm::RS256, None).await;
    check_public_key_mode(backend, "rs256", Algorithm::RS256, Some("RS256")).await;
}

/// Settings as the harness makes them, with a database that is never created: these
/// builds must fail on the auth configuration, before any database work.
fn settings_for(backend: &Backend, dir: &std::path::Path) -> Settings {
    let database_url = match backend {
        Backend::Sqlite => dir.join("test.db").to_string_lossy().into_owned(),
        Backend::Postgres(admin) => {
            let base = admin.split('?').next().unwrap_or(admin);
            let root =
                base.rsplit_once('/').filter(|(r, _)| r.contains("://") && !r.ends_with('/')).map_or(base, |(r, _)| r);
            format!("{root}/missive_never_created_{}", uuid::Uuid::new_v4().simple())
        }
    };
    Settings {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url: Some(database_url),
        jwt_secret: Some(SECRET.into()),
        workers: Some(1),
        ..Settings::default()
    }
}

async fn build_error(settings: Settings) -> String {
    match Application::build(settings).await {
        Ok(app) => panic!("the build succeeded (auth: {})", app.describe_auth()),
        Err(e) => e.to_string(),
    }
}

async fn a_secret_shorter_than_32_bytes_makes_the_build_fail(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    for secret in ["0123456789", "0123456789012345678901234567890"] {
        let mut settings = settings_for(&backend, dir.path());
        settings.jwt_secret = Some(secret.into());
        let error = build_error(settings).await;
        assert!(error.contains("32 bytes"), "{} bytes: {error}", secret.len());
    }
}

async fn a_secret_of_exactly_32_bytes_is_accepted(backend: Backend) {
    const SECRET_32: &str = "0123456789abcdef0123456789abcdef";
    assert_eq!(SECRET_32.len(), 32);
    let app = spawn_app_with(backend, |s| s.jwt_secret = Some(SECRET_32.into())).await;
    let key = EncodingKey::from_secret(SECRET_32.as_bytes());
    assert_accepted_as(&app, &sign(Algorithm::HS256, &key, &valid_claims("alice")), "alice").await;
    assert_refused(&app, &token("alice"), "signed with the harness secret").await;
}

async fn configuring_both_a_secret_and_a_public_key_makes_the_build_fail(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = settings_for(&backend, dir.path());
    settings.jwt_public_key = Some(fixture("ed25519-public.pem"));
    let error = build_error(settings).await;
    assert!(error.contains("only one"), "{error}");
}
