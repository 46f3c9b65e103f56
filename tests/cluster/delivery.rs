//! Every event crosses nodes, to exactly the connections one node would have reached;
//! order and exactly-once with several writers; resume on any node; removal.

use serde_json::{Value, json};
use std::time::Duration;

use crate::harness::{Cluster, assert_in_order, collect_seqs, until_ready};
use crate::helpers::{WsClient, send_join};
use crate::process;

#[test]
fn cluster_mode_refuses_to_start_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = process::missive(dir.path())
        .env("MISSIVE_BIND", "127.0.0.1:0")
        .env("MISSIVE_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .expect("run missive");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster mode (MISSIVE_REDIS_URL) needs PostgreSQL"), "{stderr}");
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn events_cross_nodes_to_the_connections_one_node_would_reach() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut alice = a.ws("alice").await;
    let mut bob = b.ws("bob").await;
    let mut bob_list = a.ws("bob").await;
    bob_list.listen_all().await;

    // chat-created reaches bob's sockets on both nodes.
    let chat = a.create_chat("alice", &["bob"]).await;
    assert_eq!(alice.expect("chat-created").await["data"]["chat"]["id"], chat.as_str());
    assert_eq!(bob.expect("chat-created").await["data"]["chat"]["id"], chat.as_str());
    bob_list.expect("chat-created").await;
    crate::harness::join(&mut alice, &chat).await;
    crate::harness::join(&mut bob, &chat).await;

    // A message through node A reaches bob on node B, and bob's list socket on A gets
    // chat-updated with bob's own unread count.
    a.send("alice", &chat, "hello from A").await;
    let event = bob.expect("new-message").await;
    assert_eq!(event["data"]["message"]["content"], "hello from A");
    assert_eq!(alice.expect("new-message").await["data"]["message"]["seq"], 1);
    let updated = bob_list.expect("chat-updated").await;
    assert_eq!(updated["data"]["unreadCount"], 1);

    // And back: through B to alice on A; bob's list socket hears it too (unread 0: his own).
    let sent = b.send("bob", &chat, "hello from B").await;
    assert_eq!(alice.expect("new-message").await["data"]["message"]["id"], sent["id"]);
    bob.expect("new-message").await;
    assert_eq!(bob_list.expect("chat-updated").await["data"]["unreadCount"], 0);

    // Edits, deletes and read markers cross too.
    let id = sent["id"].as_str().unwrap();
    let path = format!("/v1/messaging/chats/{chat}/messages/{id}");
    let (status, body) = b.call("PATCH", &path, "bob", Some(json!({"content": "edited"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.expect("message-updated").await["data"]["message"]["content"], "edited");
    bob.expect("message-updated").await;
    let (status, _) = b.call("DELETE", &path, "bob", None).await;
    assert_eq!(status, 204);
    assert_eq!(alice.expect("message-deleted").await["data"]["seq"], 2);
    bob.expect("message-deleted").await;
    let (status, _) =
        a.call("POST", &format!("/v1/messaging/chats/{chat}/read"), "alice", Some(json!({"seq": 2}))).await;
    assert_eq!(status, 200);
    let read = bob.expect("message-read").await;
    assert_eq!(read["data"]["userId"], "alice");
    assert_eq!(read["data"]["lastReadSeq"], 2);
    assert_eq!(alice.expect("message-read").await["data"]["lastReadSeq"], 2);
    alice.expect("unread-count-updated").await;

    // Typing on A reaches bob on B.
    let (status, _) =
        a.call("POST", &format!("/v1/messaging/chats/{chat}/typing"), "alice", Some(json!({"isTyping": true}))).await;
    assert_eq!(status, 204);
    let typing = bob.expect("user-typing").await;
    assert_eq!(typing["data"]["isTyping"], true);
    // Membership: carol, added through B, hears chat-created on A; the members hear
    // participant-added on both nodes.
    let mut carol = a.ws("carol").await;
    let path = format!("/v1/messaging/chats/{chat}/participants");
    let (status, body) = b.call("POST", &path, "bob", Some(json!({"userIds": ["carol"]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(carol.expect("chat-created").await["data"]["chat"]["id"], chat.as_str());
    for ws in [&mut alice, &mut bob] {
        let added = ws.expect("participant-added").await;
        assert_eq!(added["data"]["userId"], "carol");
    }
    bob.expect_nothing_pending().await;
    alice.expect_nothing_pending().await;
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn two_nodes_writing_one_chat_deliver_in_seq_order_once_everywhere_even_when_one_node_lags() {
    // Node A holds every published batch back, so B's later messages overtake A's earlier
    // ones on the way to the other node.
    let cluster =
        Cluster::start(3, |i| if i == 0 { vec![("MISSIVE_FAULT_PUBLISH_DELAY_MS", "150".into())] } else { Vec::new() });
    until_ready(&cluster).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let chat = b.create_chat("alice", &["bob", "carol"]).await;
    let mut receivers = Vec::new();
    for (node, user) in [(a, "carol"), (b, "carol"), (c, "carol")] {
        let mut ws = node.ws(user).await;
        crate::harness::join(&mut ws, &chat).await;
        receivers.push(ws);
    }
    const EACH: usize = 60;
    let post_a = async {
        for i in 0..EACH {
            a.send("alice", &chat, &format!("a{i}")).await;
        }
    };
    let post_b = async {
        for i in 0..EACH {
            b.send("bob", &chat, &format!("b{i}")).await;
        }
    };
    futures_util::join!(post_a, post_b);
    for ws in &mut receivers {
        let seqs = collect_seqs(ws, &chat, 2 * EACH).await;
        assert_in_order(&seqs, 1, 2 * EACH as i64);
        ws.expect_nothing_pending().await;
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn lost_envelopes_are_repaired_from_the_database_including_the_last_one() {
    // Node B drops every third envelope it receives from another node.
    let cluster =
        Cluster::start(2, |i| if i == 1 { vec![("MISSIVE_FAULT_DROP_EVERY", "3".into())] } else { Vec::new() });
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut bob = b.ws("bob").await;
    crate::harness::join(&mut bob, &chat).await;
    for i in 0..40 {
        a.send("alice", &chat, &format!("m{i}")).await;
    }
    let seqs = collect_seqs(&mut bob, &chat, 40).await;
    assert_in_order(&seqs, 1, 40);
    // Then quiet: the last message alone, whether or not its envelope is the dropped one,
    // still arrives (the heartbeat shows the loss).
    for i in 40..43 {
        a.send("alice", &chat, &format!("m{i}")).await;
        let seqs = collect_seqs(&mut bob, &chat, 1).await;
        assert_eq!(seqs, vec![i as i64 + 1]);
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn resume_on_another_node_is_gap_free_and_duplicate_free_while_posting_continues() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    for i in 0..30 {
        a.send("alice", &chat, &format!("before {i}")).await;
    }
    let mut bob = b.ws("bob").await;
    let posting = async {
        for i in 0..30 {
            a.send("alice", &chat, &format!("during {i}")).await;
            if i % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let resuming = async {
        send_join(&mut bob, &chat, Some(10)).await;
        let mut seqs = Vec::new();
        let mut joined = false;
        while seqs.len() < 50 {
            let event = bob.next_event().await;
            match event["event"].as_str() {
                Some("new-message") => seqs.push(event["data"]["message"]["seq"].as_i64().unwrap()),
                Some("chat-joined") => joined = true,
                _ => {}
            }
        }
        assert!(joined);
        seqs
    };
    let ((), seqs) = futures_util::join!(posting, resuming);
    assert_in_order(&seqs, 11, 60);
    bob.expect_nothing_pending().await;
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn a_participant_removed_through_one_node_gets_nothing_committed_after_on_any_node() {
    let cluster =
        Cluster::start(
            2,
            |i| if i == 0 { vec![("MISSIVE_FAULT_PUBLISH_DELAY_MS", "1500".into())] } else { Vec::new() },
        );
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob", "carol"]).await;
    let mut bob = b.ws("bob").await;
    let mut carol = b.ws("carol").await;
    let mut alice = b.ws("alice").await;
    crate::harness::join(&mut bob, &chat).await;
    crate::harness::join(&mut carol, &chat).await;
    crate::harness::join(&mut alice, &chat).await;
    a.send("alice", &chat, "before").await;
    assert_eq!(collect_seqs(&mut bob, &chat, 1).await, vec![1]);
    assert_eq!(collect_seqs(&mut carol, &chat, 1).await, vec![1]);
    // The removal commits on A, whose envelopes are 1.5 s late; through B, carol then
    // types, reads, posts, edits, adds someone and deletes. B's own events reach B's
    // sockets at once, before A's eviction does: only the members at commit may get them.
    let (status, _) = a.call("DELETE", &format!("/v1/messaging/chats/{chat}/participants/bob"), "alice", None).await;
    assert_eq!(status, 204);
    let (status, _) =
        b.call("POST", &format!("/v1/messaging/chats/{chat}/typing"), "carol", Some(json!({"isTyping": true}))).await;
    assert_eq!(status, 204);
    // Alice, a member, sees carol typing (and bob must not).
    let typing = until(&mut alice, "user-typing").await;
    assert_eq!((typing["data"]["userId"].as_str(), typing["data"]["isTyping"].as_bool()), (Some("carol"), Some(true)));
    let (status, _) =
        b.call("POST", &format!("/v1/messaging/chats/{chat}/read"), "carol", Some(json!({"seq": 1}))).await;
    assert_eq!(status, 200);
    let after = b.send("carol", &chat, "after").await;
    let id = after["id"].as_str().unwrap().to_owned();
    let message = format!("/v1/messaging/chats/{chat}/messages/{id}");
    let (status, _) = b.call("PATCH", &message, "carol", Some(json!({"content": "after, edited"}))).await;
    assert_eq!(status, 200);
    let (status, _) = b
        .call("POST", &format!("/v1/messaging/chats/{chat}/participants"), "carol", Some(json!({"userIds": ["dave"]})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = b.call("DELETE", &message, "carol", None).await;
    assert_eq!(status, 204);
    // Carol, a member, gets each of them (the removal may come in between).
    for name in ["message-read", "new-message", "message-updated", "participant-added", "message-deleted"] {
        let event = until(&mut carol, name).await;
        assert_eq!(event["data"]["chatId"], chat.as_str());
    }
    // Until bob hears of his removal (or, should the broker have lost it, is told to
    // resync), then up to a ping round trip: nothing committed after it.
    let leaked = |event: &Value| {
        ["new-message", "message-updated", "message-deleted", "message-read", "participant-added", "user-typing"]
            .contains(&event["event"].as_str().unwrap_or(""))
    };
    loop {
        let event = bob.next_event().await;
        assert!(!leaked(&event), "bob got an event committed after his removal: {event}");
        if event["event"] == "participant-removed" || event["event"] == "resync" {
            break;
        }
    }
    for event in crate::harness::pending_events(&mut bob).await {
        assert!(!leaked(&event), "bob got an event committed after his removal: {event}");
    }
}

/// The next `name` event, skipping others.
async fn until(ws: &mut WsClient, name: &str) -> Value {
    loop {
        let event = ws.next_event().await;
        if event["event"] == name {
            return event;
        }
    }
}

#[actix_web::test]
#[cfg_attr(not(missive_postgres_tests), ignore = "set MISSIVE_TEST_POSTGRES_URL to run it")]
async fn outsiders_joining_a_busy_chat_on_another_node_get_nothing_and_leave_no_state_behind() {
    let cluster = Cluster::start(2, |_| Vec::new());
    until_ready(&cluster).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let chat = a.create_chat("alice", &["bob"]).await;
    let mut bob = b.ws("bob").await;
    crate::harness::join(&mut bob, &chat).await;
    // mallory has a valid token and the chat's id, and tries it (and made-up chats) over
    // and over on B while A commits into the chat.
    let mut mallory = b.ws("mallory").await;
    let mut sent = 0;
    for round in 0..150 {
        let target = if round % 2 == 0 { chat.clone() } else { format!("chat_{}", uuid::Uuid::new_v4().simple()) };
        mallory.send_json(json!({"event": "join-chat", "data": {"chatId": target}})).await;
        if round % 10 == 0 {
            a.send("alice", &chat, &format!("m{round}")).await;
            sent += 1;
        }
        let event = mallory.next_event().await;
        assert_eq!(event["event"], "error", "mallory got {event}");
        assert_eq!(event["data"]["code"], "not_found");
    }
    mallory.expect_nothing_pending().await;
    let seqs = collect_seqs(&mut bob, &chat, sent).await;
    assert_in_order(&seqs, 1, sent as i64);
    // B keeps the order of the one chat a member follows there, not of what was tried.
    let started = std::time::Instant::now();
    while b.metric("missive_cluster_chats_followed").await != 1.0 {
        assert!(started.elapsed() < crate::helpers::WAIT, "B still follows chats nobody joined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
