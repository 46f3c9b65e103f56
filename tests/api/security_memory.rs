//! Resume replays cannot grow the server: one user's sockets that ask for a long history
//! and do not read it cost a bounded amount of memory (a page in hand, the replay's byte
//! limit in flight), not the whole history per socket.

use actix_web::http::StatusCode;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::WAIT;
use crate::process::{missive, start_with, token_for};
use crate::raw_ws::{RawWs, memory_kib};

/// Messages in the history, each 10,000 control characters: a 60 KB frame once escaped,
/// 24 MB for a whole replay.
const MESSAGES: usize = 400;
const CHARS: usize = 10_000;
/// One user's sockets (the per-user connection limit).
const SOCKETS: usize = 16;
/// Whole replays held at once would be 16 × 24 MB; bounded ones hold a page and at most
/// the byte limit (2 MiB) in flight per socket.
const PEAK_GROWTH_LIMIT_KIB: u64 = 96 * 1024;

#[actix_web::test]
async fn sockets_resuming_a_long_history_without_reading_keep_the_servers_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = missive(dir.path());
    cmd.env("MISSIVE_POST_RATE_PER_SEC", "1000000").env("MISSIVE_POST_RATE_BURST", "1000000");
    let server = start_with(cmd);
    let (alice, reader) = (token_for(dir.path(), "alice"), token_for(dir.path(), "reader"));
    let client = awc::Client::builder().timeout(WAIT).finish();
    let base = format!("http://{}/v1/messaging/chats", server.addr);
    let mut res = client.post(&base).bearer_auth(&alice).send_json(&json!({"participants": ["reader"]})).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let chat = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let messages = format!("{base}/{chat}/messages");
    let content = "\u{1}".repeat(CHARS);
    let posters = (0..4).map(|i| {
        let (client, messages, alice, content) = (&client, &messages, &alice, &content);
        async move {
            for _ in (i..MESSAGES).step_by(4) {
                let res = client.post(messages).bearer_auth(alice).send_json(&json!({"content": content})).await;
                assert_eq!(res.expect("posted").status(), StatusCode::CREATED);
            }
        }
    });
    join_all(posters).await;
    let (rss_before, _) = memory_kib(server.pid);

    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut ws = RawWs::connect(&server.addr, &reader).await;
        assert_eq!(ws.next_event().await["event"], "connected");
        ws.send_text(&json!({"event": "join-chat", "data": {"chatId": chat, "lastSeq": 0}}).to_string()).await;
        sockets.push(ws);
    }
    // Every socket then reads its replay to the end: the peak was reached while they
    // were not reading.
    let mut replayed = Vec::new();
    for ws in &mut sockets {
        let mut frames = 0;
        let joined = loop {
            let event = ws.next_event().await;
            match event["event"].as_str() {
                Some("new-message") => frames += 1,
                Some("chat-joined") => break event,
                _ => panic!("unexpected {event}"),
            }
        };
        assert_eq!(joined["data"]["resync"], true, "stopped by the byte limit: {joined}");
        assert_eq!(joined["data"]["lastSeq"], MESSAGES);
        replayed.push(frames);
    }
    let (rss_after, peak) = memory_kib(server.pid);
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "{SOCKETS} replays of {MESSAGES} × 60 KB frames: {replayed:?} frames each; RSS {rss_before} KiB -> \
         {rss_after} KiB, peak {peak} KiB"
    );
    assert!(replayed.iter().all(|f| (1..MESSAGES).contains(f)), "{replayed:?}");
    assert!(growth < PEAK_GROWTH_LIMIT_KIB, "the peak RSS grew by {growth} KiB (limit {PEAK_GROWTH_LIMIT_KIB} KiB)");
}
