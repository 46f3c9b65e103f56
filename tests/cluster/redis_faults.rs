//! Redis pub/sub loses messages; nothing acknowledged may be lost with it.

use std::time::{Duration, Instant};

use crate::harness::{
    Cluster, assert_in_order, collect_seqs, pending_events, until_broker_ok, until_degraded, until_ready,
};

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn redis_stopped_and_restarted_empty_under_load_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let chat = cluster.nodes[0].create_chat("alice", &["bob", "carol"]).await;
    let mut receivers = Vec::new();
    for i in 0..2 {
        let mut ws = cluster.nodes[i].ws("carol").await;
        crate::harness::join(&mut ws, &chat).await;
        receivers.push(ws);
    }
    // bob is online through node B; alice watches presence from node A. Nothing about
    // either may change while Redis goes away and comes back empty.
    let mut watcher = cluster.nodes[0].ws("alice").await.with_presence();
    let _bob = cluster.nodes[1].ws("bob").await;
    loop {
        let event = watcher.next_event().await;
        if event["event"] == "user-online" && event["data"]["userId"] == "bob" {
            break;
        }
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
    for node in &cluster.nodes {
        until_degraded(node).await;
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
    // No spurious presence: a ping round trip shows what was pushed to the watcher.
    for event in pending_events(&mut watcher).await {
        assert!(!matches!(event["event"].as_str(), Some("user-online" | "user-offline")), "spurious: {event}");
    }
    for node in &cluster.nodes {
        let (status, body) = node.call("GET", &format!("/v1/messaging/chats/{chat}/presence"), "alice", None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["online"].as_array().unwrap().iter().any(|u| u == "bob"), "{body}");
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn a_subscription_that_goes_silent_is_replaced_and_nothing_is_lost() {
    // Node B's first subscription goes silent after 40 envelopes (about five seconds of
    // heartbeats) while its connection stays up: no error, no disconnection. B must
    // notice that its own heartbeats stopped coming back and subscribe again.
    let cluster =
        Cluster::start(2, |i| if i == 1 { vec![("MISSIVE_FAULT_WEDGE_AFTER", "40".into())] } else { Vec::new() });
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut bob = b.ws("bob").await;
    crate::harness::join(&mut bob, &chat).await;
    assert_eq!(b.metric("missive_broker_resubscribes_total").await, 0.0, "wedged before the first post");
    let started = Instant::now();
    let mut sent = 0;
    let mut replaced_after = None;
    // Posts through A until B replaced its subscription, and a little after.
    while replaced_after.is_none_or(|n| sent < n + 10) {
        a.send("alice", &chat, &format!("m{sent}")).await;
        sent += 1;
        if replaced_after.is_none() && b.metric("missive_broker_resubscribes_total").await >= 1.0 {
            replaced_after = Some(sent);
        }
        assert!(started.elapsed() < Duration::from_secs(40), "the silent subscription was never replaced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seqs = collect_seqs(&mut bob, &chat, sent).await;
    assert_in_order(&seqs, 1, sent as i64);
    // What the silence hid was repaired, and the clients were told.
    assert!(b.metric("missive_cluster_resyncs_total").await >= 1.0);
    // No duplicate after them (a resync may still be on its way).
    for event in pending_events(&mut bob).await {
        assert_ne!(event["event"], "new-message", "duplicate: {event}");
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn envelopes_dropped_from_a_full_publisher_queue_are_seen_as_lost_and_repaired() {
    // A's publisher holds each batch back 1.5 s and its queue holds a few kilobytes, while
    // Redis stays up: most of A's envelopes are dropped, their numbers skipped. B must see
    // the loss and repair it. Nothing acknowledged may be lost.
    let cluster = Cluster::start(2, |i| {
        if i == 0 {
            vec![("MISSIVE_FAULT_QUEUE_BYTES", "8192".into()), ("MISSIVE_FAULT_PUBLISH_DELAY_MS", "1500".into())]
        } else {
            Vec::new()
        }
    });
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut bob = b.ws("bob").await;
    crate::harness::join(&mut bob, &chat).await;
    let text = "x".repeat(1_000);
    let sent = 30;
    for _ in 0..sent {
        a.send("alice", &chat, &text).await;
    }
    let seqs = collect_seqs(&mut bob, &chat, sent).await;
    assert_in_order(&seqs, 1, sent as i64);
    assert!(a.metric("missive_broker_dropped_total").await > 0.0, "A's queue never overflowed");
    assert!(b.metric("missive_broker_gaps_total").await > 0.0, "B never saw the skipped numbers");
    for event in pending_events(&mut bob).await {
        assert_ne!(event["event"], "new-message", "duplicate: {event}");
    }
}
