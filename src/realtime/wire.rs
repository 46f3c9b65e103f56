//! The WebSocket framing every socket shares (the production session and the Autobahn
//! echo example): the stream's size limits, the reassembly of fragmented messages, and the
//! one mapping from framing errors to close codes.
//!
//! Fragments are reassembled here rather than by actix-ws's `aggregate_continuations`
//! because that reports invalid UTF-8 only once the last fragment arrived and as an
//! untyped I/O error, indistinguishable from a frame with reserved bits set (which needs
//! 1002, not 1007). Here text is validated as it arrives, so a message fails at the first
//! fragment that cannot be UTF-8, and every failure is a typed `WireError`.

use actix_ws::{CloseCode, CloseReason, Item, Message, MessageStream, ProtocolError};
use bytestring::ByteString;
use std::io;

use actix_web::web::{Bytes, BytesMut};

/// A whole message from the client.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<CloseReason>),
    /// A fragment of a message not complete yet. Reported so that every frame a client
    /// sends passes through its reader (rate limits count it), not only whole messages.
    Fragment,
}

/// Why the client's stream cannot go on.
#[derive(Debug)]
pub enum WireError {
    /// actix-http refused a frame (bad opcode, control frame too long, reserved bits…).
    Protocol(ProtocolError),
    /// A text message (or a fragment of one) that is not UTF-8.
    InvalidUtf8,
    /// A fragmented message past the size limit.
    MessageTooLarge,
}

/// A fragmented message being reassembled.
struct Partial {
    text: bool,
    bytes: BytesMut,
    /// Text: the prefix known to be valid UTF-8, so each fragment is checked once.
    valid_up_to: usize,
}

/// The client's messages, whole, with fragments reassembled and every limit applied.
pub struct Frames {
    stream: MessageStream,
    max_message: usize,
    partial: Option<Partial>,
}

impl Frames {
    /// A frame or a reassembled message larger than `max_bytes` closes the socket (1009).
    pub fn new(stream: MessageStream, max_bytes: usize) -> Self {
        Self { stream: stream.max_frame_size(max_bytes), max_message: max_bytes, partial: None }
    }

    /// The next message; `None` once the stream ended. Cancel-safe: between awaits, every
    /// fragment received is stored in `self`.
    pub async fn recv(&mut self) -> Option<Result<Inbound, WireError>> {
        loop {
            let message = match self.stream.recv().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(WireError::Protocol(e))),
            };
            let inbound = match message {
                Message::Text(text) => Inbound::Text(text),
                Message::Binary(bytes) => Inbound::Binary(bytes),
                Message::Ping(bytes) => Inbound::Ping(bytes),
                Message::Pong(bytes) => Inbound::Pong(bytes),
                Message::Close(reason) => Inbound::Close(reason),
                Message::Continuation(item) => match self.fragment(item) {
                    Ok(Some(whole)) => whole,
                    Ok(None) => Inbound::Fragment,
                    Err(e) => return Some(Err(e)),
                },
                Message::Nop => continue,
            };
            return Some(Ok(inbound));
        }
    }

    /// Adds a fragment; the whole message once the last one arrived. The codec has already
    /// checked the order (no `Continue` before a first fragment, no new first fragment).
    fn fragment(&mut self, item: Item) -> Result<Option<Inbound>, WireError> {
        let (first, last, bytes) = match item {
            Item::FirstText(b) => (Some(true), false, b),
            Item::FirstBinary(b) => (Some(false), false, b),
            Item::Continue(b) => (None, false, b),
            Item::Last(b) => (None, true, b),
        };
        if let Some(text) = first {
            self.partial = Some(Partial { text, bytes: BytesMut::new(), valid_up_to: 0 });
        }
        let partial = self.partial.as_mut().ok_or(WireError::Protocol(ProtocolError::ContinuationNotStarted))?;
        if partial.bytes.len() + bytes.len() > self.max_message {
            self.partial = None;
            return Err(WireError::MessageTooLarge);
        }
        partial.bytes.extend_from_slice(&bytes);
        if partial.text && !check_utf8(partial, last) {
            self.partial = None;
            return Err(WireError::InvalidUtf8);
        }
        if !last {
            return Ok(None);
        }
        let Partial { text, bytes, .. } =
            self.partial.take().ok_or(WireError::Protocol(ProtocolError::ContinuationNotStarted))?;
        let bytes = bytes.freeze();
        Ok(Some(if text {
            // Checked above: the whole message is valid UTF-8.
            Inbound::Text(ByteString::try_from(bytes).map_err(|_| WireError::InvalidUtf8)?)
        } else {
            Inbound::Binary(bytes)
        }))
    }
}

/// Checks the bytes added since the last call. A sequence cut at the end of a fragment may
/// be completed by the next one; only the last fragment must end on a whole character.
fn check_utf8(partial: &mut Partial, last: bool) -> bool {
    match std::str::from_utf8(&partial.bytes[partial.valid_up_to..]) {
        Ok(_) => {
            partial.valid_up_to = partial.bytes.len();
            true
        }
        Err(e) => {
            partial.valid_up_to += e.valid_up_to();
            e.error_len().is_none() && !last
        }
    }
}

/// The close frame for a framing error (RFC 6455 §7.4.1), or `None` when the transport
/// itself failed and there is nobody to tell. Decided on types, never on message texts.
pub fn close_for(error: &WireError) -> Option<CloseReason> {
    let (code, text) = match error {
        WireError::InvalidUtf8 => (CloseCode::Invalid, "text must be UTF-8"),
        WireError::MessageTooLarge => (CloseCode::Size, "message too large"),
        WireError::Protocol(ProtocolError::Overflow) => (CloseCode::Size, "frame too large"),
        WireError::Protocol(ProtocolError::Io(e)) => return close_for_io(e),
        WireError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
    };
    Some(CloseReason { code, description: Some(text.to_owned()) })
}

/// actix reports three things as I/O errors: a single text frame that is not UTF-8 (the
/// `Utf8Error` inside), the connection failing (a `PayloadError` inside), and a frame with
/// reserved bits set (`InvalidData` with only a message: actix-http 3 has no variant yet).
fn close_for_io(e: &io::Error) -> Option<CloseReason> {
    let inner = e.get_ref();
    if inner.is_some_and(|i| i.is::<std::str::Utf8Error>()) {
        return close_for(&WireError::InvalidUtf8);
    }
    if inner.is_some_and(|i| i.is::<actix_web::error::PayloadError>()) {
        return None;
    }
    Some(CloseReason { code: CloseCode::Protocol, description: Some("protocol error".to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: WireError) -> Option<u16> {
        close_for(&error).map(|r| u16::from(r.code))
    }

    fn io(kind: io::ErrorKind, inner: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> WireError {
        WireError::Protocol(ProtocolError::Io(io::Error::new(kind, inner)))
    }

    #[test]
    fn each_framing_error_has_its_close_code() {
        let bytes = vec![0xff_u8];
        let utf8 = std::str::from_utf8(&bytes).unwrap_err();
        assert_eq!(code(WireError::InvalidUtf8), Some(1007));
        assert_eq!(code(io(io::ErrorKind::InvalidData, utf8)), Some(1007), "single text frame");
        assert_eq!(code(WireError::MessageTooLarge), Some(1009));
        assert_eq!(code(WireError::Protocol(ProtocolError::Overflow)), Some(1009));
        // actix-http's reserved-bits error: InvalidData, no typed cause.
        assert_eq!(code(io(io::ErrorKind::InvalidData, "Received a frame with non-zero reserved bits")), Some(1002));
        assert_eq!(code(io(io::ErrorKind::InvalidData, "anything else")), Some(1002), "the text is not read");
        let gone = actix_web::error::PayloadError::Incomplete(None);
        assert_eq!(code(io(io::ErrorKind::Other, gone)), None, "the connection failed: nobody to tell");
        for e in [
            ProtocolError::UnmaskedFrame,
            ProtocolError::InvalidOpcode(3),
            ProtocolError::InvalidLength(126),
            ProtocolError::BadOpCode,
            ProtocolError::ContinuationNotStarted,
            ProtocolError::ContinuationStarted,
        ] {
            let name = format!("{e:?}");
            assert_eq!(code(WireError::Protocol(e)), Some(1002), "{name}");
        }
    }

    fn partial(text: bool) -> Partial {
        Partial { text, bytes: BytesMut::new(), valid_up_to: 0 }
    }

    #[test]
    fn utf8_fails_at_the_first_impossible_byte_not_at_a_split_character() {
        let mut p = partial(true);
        // "é" is C3 A9: cut between two fragments, it is fine.
        p.bytes.extend_from_slice(b"caf\xc3");
        assert!(check_utf8(&mut p, false));
        p.bytes.extend_from_slice(b"\xa9 ok");
        assert!(check_utf8(&mut p, false));
        assert_eq!(p.valid_up_to, p.bytes.len());
        // A byte that can never start or continue a character fails at once.
        p.bytes.extend_from_slice(b"\xff");
        assert!(!check_utf8(&mut p, false));
        // A character cut by the end of the last fragment fails.
        let mut q = partial(true);
        q.bytes.extend_from_slice(b"caf\xc3");
        assert!(!check_utf8(&mut q, true));
    }
}
