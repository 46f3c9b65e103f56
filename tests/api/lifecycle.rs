//! The `missive` binary as a user runs it: first start in dev auth, `missive token`,
//! `missive migrate`, and SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::helpers::{WAIT, connect_ws};
use crate::process::{missive, start, token_for};

#[actix_web::test]
async fn first_start_migrates_sqlite_uses_dev_auth_and_accepts_a_cli_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let log = server.startup_log.join("\n");
    assert!(log.contains("sqlite"), "startup log names the database:\n{log}");
    assert!(log.contains("DEV AUTH"), "startup log warns about dev auth:\n{log}");
    assert!(dir.path().join("missive.db").exists(), "SQLite file created in the data directory");
    let secret = dir.path().join("dev-jwt-secret");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);

    let token = token_for(dir.path(), "alice");
    let client = awc::Client::builder().timeout(WAIT).finish();
    let res =
        client.get(format!("http://{}/v1/messaging/chats", server.addr)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200, "the CLI token is accepted by the running server");
    let res =
        client.get(format!("http://{}/v1/messaging/chats", server.addr)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(res.status(), 401);

    let (status, _) = server.sigterm_and_wait(Duration::from_secs(5));
    assert!(status.success(), "clean exit: {status:?}");
}

#[actix_web::test]
async fn sigterm_closes_websockets_with_1001_and_exits_within_5_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = token_for(dir.path(), "alice");
    let mut first = connect_ws(&format!("ws://{}/messaging?token={token}", server.addr)).await;
    let mut second = connect_ws(&format!("ws://{}/messaging?token={token}", server.addr)).await;
    let (status, took) = server.sigterm_and_wait(Duration::from_secs(5));
    assert_eq!(first.expect_close().await, Some(1001));
    assert_eq!(second.expect_close().await, Some(1001));
    assert!(status.success(), "clean exit: {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn migrate_applies_pending_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = missive(dir.path()).arg("migrate").output().expect("missive migrate");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert!(first.starts_with("applied ") && !first.starts_with("applied 0"), "first run applies them: {first}");
    assert!(run().contains("applied 0 migration"), "second run has nothing to do");
    assert!(dir.path().join("missive.db").exists());
}

#[test]
fn token_command_rejects_an_invalid_user_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = missive(dir.path()).args(["token", "not valid"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid user id"));
}
