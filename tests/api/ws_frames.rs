//! Hand-made frames over a plain TCP stream against the real `/messaging`: each framing
//! error closes the socket with the code RFC 6455 §7.4.1 gives it, pings are answered with
//! their payload, and a client's close code is echoed.

use std::time::Instant;

use crate::helpers::{Backend, TestApp, WAIT, spawn_app, token};
use crate::raw_ws::{FIN, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RawWs};

/// A raw socket to `app` whose greeting was read.
async fn connect(app: &TestApp) -> RawWs {
    let mut ws = RawWs::connect(&format!("127.0.0.1:{}", app.port), &token("alice")).await;
    assert_eq!(ws.next_event().await["event"], "connected");
    ws
}

/// The code of the server's close frame, skipping anything before it; `None` when the
/// stream ended without one.
async fn close_code(ws: &mut RawWs) -> Option<u16> {
    let deadline = Instant::now() + WAIT;
    while let Some((op, payload)) = ws.next_frame(deadline).await {
        if op == OP_CLOSE {
            assert!(payload.len() >= 2, "a close frame with a code");
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
    None
}

/// Frames to send, each as (first byte, payload).
type Frames<'a> = Vec<(u8, &'a [u8])>;

/// Sends `frames` on a fresh socket and returns the close code they earned.
async fn closed_by(app: &TestApp, frames: &[(u8, &[u8])]) -> Option<u16> {
    let mut ws = connect(app).await;
    for (first, payload) in frames {
        ws.send_frame(*first, payload).await;
    }
    close_code(&mut ws).await
}

#[actix_web::test]
async fn framing_errors_close_with_their_rfc_6455_codes() {
    let app = spawn_app(Backend::Sqlite).await;
    let over = vec![b'x'; 64 * 1024 + 1];
    let half = vec![b'x'; 40 * 1024];
    let close_1005 = 1005u16.to_be_bytes();
    let close_999 = 999u16.to_be_bytes();
    let cases: Vec<(&str, Frames, u16)> = vec![
        ("RSV1 set", vec![(FIN | 0x40 | OP_TEXT, b"hi")], 1002),
        ("RSV3 set", vec![(FIN | 0x10 | OP_TEXT, b"hi")], 1002),
        ("invalid UTF-8 in one frame", vec![(FIN | OP_TEXT, b"ok \xff\xfe")], 1007),
        ("invalid UTF-8 in a fragment", vec![(OP_TEXT, b"hello "), (FIN | OP_CONTINUATION, b"\xc3\x28")], 1007),
        ("a character cut by the last fragment", vec![(OP_TEXT, b"caf"), (FIN | OP_CONTINUATION, b"\xc3")], 1007),
        ("reserved data opcode 3", vec![(FIN | 0x3, b"")], 1002),
        ("reserved control opcode 0xB", vec![(FIN | 0xB, b"")], 1002),
        ("a ping of 126 bytes", vec![(FIN | OP_PING, &[0u8; 126])], 1002),
        ("a fragmented ping", vec![(OP_PING, b"part")], 1002),
        ("a continuation with nothing to continue", vec![(FIN | OP_CONTINUATION, b"x")], 1002),
        ("a new message inside a fragmented one", vec![(OP_TEXT, b"a"), (FIN | OP_TEXT, b"b")], 1002),
        ("a frame over the limit", vec![(FIN | OP_TEXT, &over)], 1009),
        ("a fragmented message over the limit", vec![(OP_TEXT, &half), (FIN | OP_CONTINUATION, &half)], 1009),
        ("close code 1005 (never sent)", vec![(FIN | OP_CLOSE, &close_1005)], 1002),
        ("close code 999", vec![(FIN | OP_CLOSE, &close_999)], 1002),
        ("a one-byte close payload", vec![(FIN | OP_CLOSE, b"\x03")], 1002),
    ];
    for (what, frames, expected) in cases {
        assert_eq!(closed_by(&app, &frames).await, Some(expected), "{what}");
    }
}

#[actix_web::test]
async fn invalid_utf8_fails_at_the_first_bad_fragment_not_at_the_end() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ws = connect(&app).await;
    ws.send_frame(OP_TEXT, b"hello ").await;
    ws.send_frame(OP_CONTINUATION, b"\xff").await;
    // No last fragment is ever sent: the close comes anyway.
    assert_eq!(close_code(&mut ws).await, Some(1007));
}

#[actix_web::test]
async fn fragments_count_toward_the_frame_rate_limit() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        (s.ws_rate_per_sec, s.ws_rate_burst, s.ws_abuse_limit) = (5, 10, 20);
    })
    .await;
    let mut ws = connect(&app).await;
    // A message that never ends: each fragment is a frame the server reads.
    ws.send_frame(OP_TEXT, b"{").await;
    for _ in 0..200 {
        ws.send_frame(OP_CONTINUATION, b"").await;
    }
    assert_eq!(close_code(&mut ws).await, Some(4008));
}

#[actix_web::test]
async fn a_ping_payload_comes_back_in_the_pong_and_a_close_code_is_echoed() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ws = connect(&app).await;
    ws.send_frame(FIN | OP_PING, b"are you there?").await;
    let (op, payload) = ws.next_frame(Instant::now() + WAIT).await.expect("a pong");
    assert_eq!((op, payload.as_slice()), (OP_PONG, &b"are you there?"[..]));
    // A fragmented message with a ping between its fragments is fine (§5.4).
    ws.send_frame(OP_TEXT, br#"{"event":"ping","#).await;
    ws.send_frame(FIN | OP_PING, b"between").await;
    ws.send_frame(FIN | OP_CONTINUATION, br#""data":{},"ref":"frag"}"#).await;
    let (op, payload) = ws.next_frame(Instant::now() + WAIT).await.expect("a pong");
    assert_eq!((op, payload.as_slice()), (OP_PONG, &b"between"[..]));
    let reply = ws.next_event().await;
    assert_eq!((reply["event"].as_str(), reply["ref"].as_str()), (Some("pong"), Some("frag")), "{reply}");
    let mut close = 4321u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    ws.send_frame(FIN | OP_CLOSE, &close).await;
    assert_eq!(close_code(&mut ws).await, Some(4321));
}
