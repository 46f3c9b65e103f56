//! The HTTP/1 transport as a client can cut it: requests and frames arriving a byte at a
//! time or in odd pieces, bodies larger than any read, two requests in one write. Missive
//! carries a patch of actix-http's read path (buffers allocated only when data comes:
//! vendor/actix-http/PATCH.md); these are the shapes of input that path must keep whole.

use serde_json::{Value, json};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, WAIT, spawn_app, token};
use crate::raw_ws::RawWs;

/// A client socket that sends each write as its own segment.
async fn connect(app: &TestApp) -> TcpStream {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", app.port)))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Writes `bytes` in pieces of `piece` bytes, each its own write (and, with
/// `TCP_NODELAY`, usually its own segment and its own read on the server).
async fn write_in_pieces(stream: &mut TcpStream, bytes: &[u8], piece: usize) {
    for chunk in bytes.chunks(piece) {
        stream.write_all(chunk).await.expect("write");
        stream.flush().await.expect("flush");
        tokio::task::yield_now().await;
    }
}

/// Reads `count` HTTP responses (each with a `Content-Length` body) off `stream`: their
/// status codes and bodies as JSON (`Null` when the body is not JSON).
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(u16, Value)> {
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let mut responses = Vec::new();
    while responses.len() < count {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).expect("ASCII head");
            let status: u16 = head[9..12].parse().expect("status code");
            let length: usize = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                .map(|(_, v)| v.trim().parse().expect("a length"))
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                responses.push((status, body));
                buf.drain(..end + 4 + length);
                continue;
            }
        }
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk)).await.expect("a response in time").expect("read");
        assert!(n > 0, "the server closed after {} responses: {:?}", responses.len(), String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    responses
}

fn post_request(app: &TestApp, path: &str, user: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        app.port,
        token(user),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

crate::both_backends!(
    a_request_sent_a_byte_at_a_time_then_in_odd_pieces_arrives_whole,
    two_requests_in_one_write_get_two_answers_in_order,
    a_websocket_message_larger_than_a_read_sent_in_pieces_arrives_whole,
);

/// Headers a byte at a time, then a body larger than the server's first read (1 KiB)
/// and its buffer (8 KiB) in 700-byte pieces: the message is stored exactly.
async fn a_request_sent_a_byte_at_a_time_then_in_odd_pieces_arrives_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let content: String = (0..9_500).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let request =
        post_request(&app, &format!("/v1/messaging/chats/{chat}/messages"), "alice", &json!({"content": content}));
    let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let mut stream = connect(&app).await;
    write_in_pieces(&mut stream, &request[..head_end], 1).await;
    write_in_pieces(&mut stream, &request[head_end..], 700).await;
    let responses = read_responses(&mut stream, 1).await;
    assert_eq!(responses[0].0, 201, "{:?}", responses[0].1);
    assert_eq!(responses[0].1["content"], content.as_str());
    let history = app.history("bob", &chat).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["content"], content.as_str());
}

/// Pipelining: both requests in one segment, the second answered after the first, on
/// the same connection; then a third after the connection went quiet.
async fn two_requests_in_one_write_get_two_answers_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");
    let mut both = post_request(&app, &path, "alice", &json!({"content": "first"}));
    both.extend(post_request(&app, &path, "alice", &json!({"content": "second"})));
    let mut stream = connect(&app).await;
    stream.write_all(&both).await.expect("write");
    let responses = read_responses(&mut stream, 2).await;
    assert_eq!((responses[0].0, responses[1].0), (201, 201));
    assert_eq!((responses[0].1["content"].as_str(), responses[0].1["seq"].as_i64()), (Some("first"), Some(1)));
    assert_eq!((responses[1].1["content"].as_str(), responses[1].1["seq"].as_i64()), (Some("second"), Some(2)));
    stream.write_all(&post_request(&app, &path, "alice", &json!({"content": "third"}))).await.expect("write");
    let responses = read_responses(&mut stream, 1).await;
    assert_eq!((responses[0].0, responses[0].1["seq"].as_i64()), (201, Some(3)));
}

/// A WebSocket text message of 5,000 bytes written in 300-byte pieces after the socket
/// sat idle (no read buffer): one reply, to the whole message.
async fn a_websocket_message_larger_than_a_read_sent_in_pieces_arrives_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ws = RawWs::connect(&format!("127.0.0.1:{}", app.port), &token("alice")).await;
    assert_eq!(ws.next_event().await["event"], "connected");
    // Valid JSON padded with whitespace: a ping whose reply carries the `ref`.
    let text = format!("{{\"event\":\"ping\",{}\"data\":{{}},\"ref\":\"r-5000\"}}", " ".repeat(4_950));
    let frame = crate::raw_ws::masked_text_frame(text.as_bytes(), [1, 2, 3, 4]);
    for piece in frame.chunks(300) {
        ws.send_raw(piece).await;
    }
    let reply = ws.next_event().await;
    assert_eq!(reply["event"], "pong", "{reply}");
    assert_eq!(reply["ref"], "r-5000");
}
