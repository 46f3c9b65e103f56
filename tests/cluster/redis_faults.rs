//! Redis pub/sub loses messages; nothing acknowledged may be lost with it.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, assert_in_order, collect_seqs, until_broker_ok, until_ready};
use crate::helpers::WAIT;

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn redis_stopped_and_restarted_empty_under_load_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let chat = cluster.nodes[0].create_chat("alice", &["bob", "carol"]).await;
    let mut receivers = Vec::new();
    for i in 0..2 {
        let mut ws = cluster.nodes[i].ws("carol").await;
        ws.join(&chat).await;
        receivers.push(ws);
    }
    const PHASE: usize = 20;
    let mut sent = 0;
    async fn post_round(cluster: &Cluster, chat: &str, n: usize) {
        let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
        for i in 0..n {
            a.send("alice", chat, &format!("a{i}")).await;
            b.send("bob", chat, &format!("b{i}")).await;
        }
    }
    post_round(&cluster, &chat, PHASE).await;
    sent += 2 * PHASE;

    cluster.redis.stop();
    // Posts still commit and answer; the nodes say the broker is degraded but stay ready.
    post_round(&cluster, &chat, PHASE).await;
    sent += 2 * PHASE;
    let started = Instant::now();
    loop {
        let (status, body) = cluster.nodes[0].call("GET", "/readyz", "alice", None).await;
        assert_eq!(status, 200, "{body}");
        if body["broker"] == "degraded" {
            break;
        }
        assert!(started.elapsed() < WAIT, "never degraded: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post_round(&cluster, &chat, PHASE).await;
    sent += 2 * PHASE;

    cluster.redis.resume();
    post_round(&cluster, &chat, PHASE).await;
    sent += 2 * PHASE;
    for node in &cluster.nodes {
        until_broker_ok(node).await;
    }
    post_round(&cluster, &chat, PHASE).await;
    sent += 2 * PHASE;
    for ws in &mut receivers {
        let seqs = collect_seqs(ws, &chat, sent).await;
        assert_in_order(&seqs, 1, sent as i64);
    }
}
