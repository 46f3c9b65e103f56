//! Presence spans the nodes: online at the first connection anywhere, offline at the last
//! one anywhere, and a dead node's users announced offline by the survivors.

use awc::ws;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Cluster, NODE_TIMEOUT_MS, until_ready};
use crate::helpers::{WsClient, connect_ws_raw, token};

async fn close(mut ws: WsClient) {
    ws.send_message(ws::Message::Close(None)).await;
    ws.expect_close().await;
}

/// Records what a presence event told.
fn note(told: &mut HashMap<String, String>, event: &serde_json::Value) {
    if let Some(kind @ ("user-online" | "user-offline")) = event["event"].as_str() {
        told.insert(event["data"]["userId"].as_str().unwrap_or_default().to_owned(), kind.to_owned());
    }
}

async fn online_on(node: &crate::harness::Node, chat: &str, user: &str) -> bool {
    let (status, body) = node.call("GET", &format!("/v1/messaging/chats/{chat}/presence"), "alice", None).await;
    assert_eq!(status, 200, "{body}");
    body["online"].as_array().expect("online").iter().any(|u| u == user)
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn online_at_the_first_connection_anywhere_and_offline_at_the_last() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut alice = a.ws("alice").await.with_presence();
    let bob_b = b.ws("bob").await;
    let online = alice.expect("user-online").await;
    assert_eq!(online["data"]["userId"], "bob");
    // A second connection, on the other node: bob was online already.
    let bob_a = a.ws("bob").await;
    alice.expect_nothing_pending().await;
    for node in [a, b] {
        assert!(online_on(node, &chat, "bob").await);
    }
    close(bob_b).await;
    // Still connected on A: no offline anywhere.
    for node in [a, b] {
        assert!(online_on(node, &chat, "bob").await);
    }
    alice.expect_nothing_pending().await;
    close(bob_a).await;
    let offline = alice.expect("user-offline").await;
    assert_eq!(offline["data"]["userId"], "bob");
    for node in [a, b] {
        assert!(!online_on(node, &chat, "bob").await);
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn a_killed_node_s_users_are_announced_offline_by_a_survivor_in_bounded_time() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut alice = a.ws("alice").await.with_presence();
    crate::harness::join(&mut alice, &chat).await;
    let _bob = b.ws("bob").await;
    alice.expect("user-online").await;
    // bob types through node B, which times the spell; then B dies.
    let typing = json!({"isTyping": true});
    let (status, _) = b.call("POST", &format!("/v1/messaging/chats/{chat}/typing"), "bob", Some(typing)).await;
    assert_eq!(status, 204);
    assert_eq!(alice.expect("user-typing").await["data"]["isTyping"], true);
    let killed = Instant::now();
    b.server.sigkill();
    let mut offline = None;
    let mut typing_ended = false;
    while offline.is_none() || !typing_ended {
        let event = alice.next_event().await;
        match event["event"].as_str() {
            Some("user-offline") => offline = Some(event),
            Some("user-typing") => {
                assert_eq!(event["data"]["isTyping"], false, "{event}");
                typing_ended = true;
            }
            _ => {}
        }
    }
    let offline = offline.unwrap();
    let took = killed.elapsed();
    assert_eq!(offline["data"]["userId"], "bob");
    assert!(offline["data"]["lastSeen"].is_string());
    // The lease lapses after NODE_TIMEOUT_MS; a survivor notices within a heartbeat.
    assert!(took < Duration::from_millis(NODE_TIMEOUT_MS * 3), "offline announced after {took:?}");
    assert!(!online_on(a, &chat, "bob").await);
    alice.expect_nothing_pending().await;
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn a_node_taken_for_dead_that_comes_back_announces_its_users_online_again() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob", "carol"]).await;
    let mut alice = a.ws("alice").await.with_presence();
    crate::harness::join(&mut alice, &chat).await;
    // What alice was last told of each user.
    let mut told: HashMap<String, String> = HashMap::new();
    let mut bob = b.ws("bob").await;
    let carol = b.ws("carol").await;
    while told.len() < 2 {
        note(&mut told, &alice.next_event().await);
    }
    // B stalls longer than its lease (a frozen VM, a long pause): A reaps it. carol leaves
    // meanwhile; B only learns it when it runs again.
    b.server.freeze(true);
    drop(carol);
    while told.get("bob").map(String::as_str) != Some("user-offline")
        || told.get("carol").map(String::as_str) != Some("user-offline")
    {
        note(&mut told, &alice.next_event().await);
    }
    assert!(!online_on(a, &chat, "bob").await);
    // B comes back with bob still connected: bob is online again, everywhere; carol, gone,
    // ends offline.
    b.server.freeze(false);
    while told.get("bob").map(String::as_str) != Some("user-online") {
        note(&mut told, &alice.next_event().await);
    }
    assert!(online_on(a, &chat, "bob").await);
    assert!(online_on(b, &chat, "bob").await);
    let started = Instant::now();
    while online_on(a, &chat, "carol").await {
        assert!(started.elapsed() < crate::helpers::WAIT, "carol stays online after she left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past B's next upkeep, whatever alice was told of carol last says offline.
    tokio::time::sleep(Duration::from_millis(3 * crate::harness::HEARTBEAT_MS)).await;
    for event in crate::harness::pending_events(&mut alice).await {
        note(&mut told, &event);
    }
    assert_ne!(told.get("carol").map(String::as_str), Some("user-online"), "carol left but alice was told online");
    // bob's connection lived through it (a resync may come first: B's subscription was
    // silent too).
    bob.send_json(json!({"event": "ping", "data": {}, "ref": "alive"})).await;
    while bob.next_event().await["event"] != "pong" {}
    // And his last connection closing still makes him offline.
    close(bob).await;
    while told.get("bob").map(String::as_str) != Some("user-offline") {
        note(&mut told, &alice.next_event().await);
    }
    assert!(!online_on(a, &chat, "bob").await);
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn the_connection_cap_counts_a_user_s_connections_on_every_node() {
    let cluster = Cluster::start(2, |_| vec![("MISSIVE_MAX_CONNECTIONS_PER_USER", "2".into())]);
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let _first = a.ws("bob").await;
    let _second = b.ws("bob").await;
    let url = format!("ws://{}/messaging?token={}", a.server.addr, token("bob"));
    let mut third = connect_ws_raw(&url).await;
    assert_eq!(third.expect_close().await, Some(4029));
    // Another user is not affected.
    let _carol = a.ws("carol").await;
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn a_joiner_on_one_node_is_told_of_a_spell_typed_through_another() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    // alice's spell runs on A; carol's... bob joins on B afterwards and hears of it.
    let mut alice = a.ws("alice").await;
    crate::harness::join(&mut alice, &chat).await;
    let (status, _) =
        a.call("POST", &format!("/v1/messaging/chats/{chat}/typing"), "alice", Some(json!({"isTyping": true}))).await;
    assert_eq!(status, 204);
    // The spell's envelope reached B once a message sent after it did.
    a.send("alice", &chat, "sync").await;
    let mut bob = b.ws("bob").await;
    crate::helpers::send_join(&mut bob, &chat, None).await;
    let mut told = false;
    loop {
        let event = bob.next_event().await;
        if event["event"] == "user-typing" {
            assert_eq!(event["data"]["userId"], "alice");
            assert_eq!(event["data"]["isTyping"], true);
            told = true;
        }
        if event["event"] == "chat-joined" {
            break;
        }
    }
    assert!(told, "the joiner was not told of the running spell");
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn rate_limits_hold_across_nodes_and_fall_back_to_each_node_while_redis_is_down() {
    let mut cluster =
        Cluster::start(2, |_| vec![("MISSIVE_POST_RATE_PER_SEC", "1".into()), ("MISSIVE_POST_RATE_BURST", "4".into())]);
    until_ready(&cluster).await;
    let chat = cluster.nodes[0].create_chat("alice", &["bob"]).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    let body = || Some(json!({"content": "hi"}));
    // Four back to back, alternating nodes, pass; the fifth, on either node, is 429.
    for i in 0..4 {
        let (status, answer) = cluster.nodes[i % 2].call("POST", &path, "alice", body()).await;
        assert_eq!(status, 201, "{answer}");
    }
    for node in &cluster.nodes {
        let (status, answer) = node.call("POST", &path, "alice", body()).await;
        assert_eq!(status, 429, "{answer}");
    }
    let mut ws = cluster.nodes[0].ws("alice").await;
    ws.send_json(json!({"event": "debug-status", "data": {}})).await;
    let status = ws.expect("debug-status").await;
    assert_eq!(status["data"]["cluster"], json!({"broker": "ok", "presence": "cluster", "limits": "cluster"}));
    // Redis down: each node limits on its own (a fresh burst per node) and says so.
    cluster.redis.stop();
    for node in &cluster.nodes {
        crate::harness::until_degraded(node).await;
    }
    let (status, answer) = cluster.nodes[1].call("POST", &path, "bob", body()).await;
    assert_eq!(status, 201, "{answer}");
    // The node notices within a heartbeat (its presence upkeep shares the connection).
    let started = Instant::now();
    loop {
        ws.send_json(json!({"event": "debug-status", "data": {}})).await;
        let status = ws.expect("debug-status").await;
        if status["data"]["cluster"]["limits"] == "node" {
            assert_eq!(status["data"]["cluster"]["presence"], "node", "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "limits never fell back: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
