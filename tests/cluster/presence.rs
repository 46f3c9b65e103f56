//! Presence spans the nodes: online at the first connection anywhere, offline at the last
//! one anywhere, and a dead node's users announced offline by the survivors.

use awc::ws;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, NODE_TIMEOUT_MS, until_ready};
use crate::helpers::WsClient;

async fn close(mut ws: WsClient) {
    ws.send_message(ws::Message::Close(None)).await;
    ws.expect_close().await;
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
    let _bob = b.ws("bob").await;
    alice.expect("user-online").await;
    let killed = Instant::now();
    b.server.sigkill();
    let offline = alice.expect("user-offline").await;
    let took = killed.elapsed();
    assert_eq!(offline["data"]["userId"], "bob");
    assert!(offline["data"]["lastSeen"].is_string());
    // The lease lapses after NODE_TIMEOUT_MS; a survivor notices within a heartbeat.
    assert!(took < Duration::from_millis(NODE_TIMEOUT_MS * 3), "offline announced after {took:?}");
    assert!(!online_on(a, &chat, "bob").await);
    alice.expect_nothing_pending().await;
}
