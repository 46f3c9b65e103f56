//! A client-side WebSocket over a raw TCP socket: it reads only when told to (a slow
//! consumer the kernel cannot hide) and writes hand-made frames. Plus the server's memory
//! as the kernel reports it.

use actix_web::web::BytesMut;
use serde_json::Value;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::WAIT;
use crate::helpers::seq_of;

/// The receive buffer a raw client asks for (the kernel may double it; bounds use what it
/// reports): small, so the server's writes back up quickly.
pub(crate) const SLOW_RCVBUF: u32 = 16 * 1024;

/// `Sec-WebSocket-Key` from RFC 6455 §1.3 and the accept value it implies.
pub(crate) const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;
/// The FIN bit of a frame's first byte: the last (or only) fragment of a message.
pub(crate) const FIN: u8 = 0x80;

/// A client-side WebSocket over a raw TCP socket that reads only when told to.
pub(crate) struct RawWs {
    stream: TcpStream,
    buf: BytesMut,
    /// The receive buffer size the kernel reports for the socket.
    pub(crate) rcvbuf: usize,
}

impl RawWs {
    /// Connects with a small receive buffer, sends the upgrade request and reads exactly
    /// the 101 response headers (anything after them stays buffered, unparsed).
    pub(crate) async fn connect(addr: &str, token: &str) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(SLOW_RCVBUF).expect("SO_RCVBUF");
        let rcvbuf = socket.recv_buffer_size().expect("SO_RCVBUF") as usize;
        let addr = addr.parse().expect("socket address");
        let mut stream =
            tokio::time::timeout(WAIT, socket.connect(addr)).await.expect("connect in time").expect("connect");
        let request = format!(
            "GET /messaging?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send the upgrade request");
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let head_len = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(WAIT, stream.read_buf(&mut buf)).await.expect("101 in time").expect("read");
            assert!(n > 0, "connection closed during the upgrade: {:?}", String::from_utf8_lossy(&buf));
        };
        let head = String::from_utf8(buf.split_to(head_len).to_vec()).expect("ASCII headers");
        assert!(head.starts_with("HTTP/1.1 101"), "expected 101 Switching Protocols, got {head}");
        let accept = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-accept")))
            .map(|(_, v)| v.trim().to_owned());
        assert_eq!(accept.as_deref(), Some(WS_ACCEPT), "{head}");
        Self { stream, buf, rcvbuf }
    }

    /// Sends a masked text frame (clients must mask, RFC 6455 §5.3).
    pub(crate) async fn send_text(&mut self, text: &str) {
        let frame = masked_text_frame(text.as_bytes(), [0x37, 0xfa, 0x21, 0x3d]);
        self.stream.write_all(&frame).await.expect("send a frame");
    }

    /// Writes raw bytes (a piece of a frame, say) as one write.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send bytes");
        self.stream.flush().await.expect("flush");
        tokio::task::yield_now().await;
    }

    /// Sends one hand-made frame (see `masked_frame`).
    pub(crate) async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let frame = masked_frame(first, payload, [0x12, 0x34, 0x56, 0x78]);
        self.stream.write_all(&frame).await.expect("send a frame");
    }

    /// The next whole frame as (opcode, payload), reading as needed; `None` at end of stream.
    pub(crate) async fn next_frame(&mut self, deadline: Instant) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header, len)) = frame_header(&self.buf)
                && self.buf.len() >= header + len
            {
                let frame = self.buf.split_to(header + len);
                return Some((frame[0] & 0x0f, frame[header..].to_vec()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let read = tokio::time::timeout(left, self.stream.read_buf(&mut self.buf)).await;
            match read.expect("a frame before the deadline") {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next text frame as JSON, which must come before `WAIT`.
    pub(crate) async fn next_event(&mut self) -> Value {
        let (op, payload) = self.next_frame(Instant::now() + WAIT).await.expect("a frame, not the end of the stream");
        assert_eq!(op, OP_TEXT, "expected a text frame");
        serde_json::from_slice(&payload).expect("JSON frame")
    }

    /// Reads everything left up to the close frame: the `new-message` seqs (in arrival
    /// order), how many text frames there were, and the close code (`None` when the
    /// stream ended without a close frame).
    pub(crate) async fn drain_until_close(&mut self) -> (Vec<i64>, usize, Option<u16>) {
        let deadline = Instant::now() + WAIT;
        let (mut seqs, mut texts) = (Vec::new(), 0);
        while let Some((op, payload)) = self.next_frame(deadline).await {
            match op {
                OP_TEXT => {
                    texts += 1;
                    let event: Value = serde_json::from_slice(&payload).expect("JSON frame");
                    if event["event"] == "new-message" {
                        seqs.push(seq_of(&event["data"]["message"]));
                    }
                }
                OP_CLOSE => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return (seqs, texts, code);
                }
                _ => {} // pings: this client never answers
            }
        }
        (seqs, texts, None)
    }
}

/// FIN + text opcode, mask bit, the payload length, a 4-byte mask, the masked payload.
pub(crate) fn masked_text_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    masked_frame(0x80 | OP_TEXT, payload, mask)
}

/// Any client frame: `first` is the first byte as sent (FIN, RSV bits and opcode, valid
/// or not), then the mask bit, the payload length, the mask and the masked payload.
pub(crate) fn masked_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Header length and payload length of the (unmasked, server-sent) frame at the start of
/// `buf`, once the header is complete.
pub(crate) fn frame_header(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
    match buf[1] & 0x7f {
        126 if buf.len() >= 4 => Some((4, usize::from(u16::from_be_bytes([buf[2], buf[3]])))),
        127 if buf.len() >= 10 => Some((10, u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize)),
        126 | 127 => None,
        n => Some((2, usize::from(n))),
    }
}

#[test]
fn the_frame_encoder_masks_and_sizes_frames_as_rfc_6455_says() {
    // RFC 6455 §5.7: a masked "Hello".
    let frame = masked_text_frame(b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
    assert_eq!(frame, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    let long = masked_text_frame(&[0; 300], [0; 4]);
    assert_eq!(&long[..4], [0x81, 0x80 | 126, 0x01, 0x2c]);
    assert_eq!(frame_header(&[0x81, 0x05]), Some((2, 5)));
    assert_eq!(frame_header(&[0x81, 126, 0x01, 0x2c]), Some((4, 300)));
    assert_eq!(frame_header(&[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]), Some((10, 65536)));
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub(crate) fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}
