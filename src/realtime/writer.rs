//! The outbound half of a WebSocket: the response body the HTTP dispatcher polls. It reads
//! the connection's outbox (events from the hub) and the session's own frames (greeting,
//! replies, replays, pings, the close frame), applies each chat frame's membership and
//! floor at the moment it is written, and encodes what it writes in one buffer, so a burst
//! of events becomes one write. An event costs one channel hop and one wake-up: of the
//! dispatcher, which writes it. The session task wakes only for the client's frames and
//! its timers.
//!
//! Order: a frame of the session's own goes out after every event the outbox took before
//! it was queued (so an event committed before a client frame arrived precedes that
//! frame's reply), and a chat's events queued while its join is under way are held until
//! the join settles, after its replay (then written above the floor, or dropped).

use actix_http::ws::{Codec, Message};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::CloseReason;
use bytestring::ByteString;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

use super::hub::{Admit, CLOSE_SLOW_CONSUMER, ConnHandle, Outbound};
use crate::domain::ChatId;

/// Bytes encoded before they are handed to the dispatcher (it polls again at once while
/// its own buffer has room).
const CHUNK: usize = 32 * 1024;

/// A frame the session asks to write.
#[derive(Debug)]
pub enum Own {
    /// A greeting, a reply or an error.
    Text(ByteString),
    /// Only the conformance echo (`examples/autobahn_echo.rs`) sends these: Missive's
    /// protocol is JSON text.
    Binary(Bytes),
    /// A frame of join `1` of chat `0` (a replayed message, a typist): written only while
    /// that join is under way (not left, evicted or superseded since).
    Joining(ChatId, u64, ByteString),
    /// Join `join` of `chat` ends: the subscription becomes a member's at `floor` and
    /// `joined` is written, then the events held for it follow. If the subscription is
    /// gone (refused, left or evicted meanwhile), `refused` is written instead and the
    /// held events are dropped.
    Settle {
        chat: ChatId,
        join: u64,
        floor: i64,
        joined: ByteString,
        refused: ByteString,
    },
    /// Fired once every event queued before it was taken: the session waits for it before
    /// it unsubscribes (so events committed before `leave-chat` arrived still go out) or
    /// reads the membership the writer keeps.
    Barrier(tokio::sync::oneshot::Sender<()>),
    Ping(Bytes),
    Pong(Bytes),
    /// The last frame: the body ends once it is written.
    Close(Option<CloseReason>),
}

/// An `Own` frame and how many events the outbox had taken when it was queued. Boxed: a
/// channel allocates its slots 32 at a time with the channel, and every socket has one.
#[derive(Debug)]
pub(super) struct Stamped {
    after: u64,
    own: Box<Own>,
}

/// The session's handle on its writer.
#[derive(Clone)]
pub struct Mouth {
    conn: Arc<ConnHandle>,
    tx: mpsc::Sender<Stamped>,
}

impl Mouth {
    /// Queues `own`, waiting while the writer is `OWN_QUEUE` frames behind (a client that
    /// does not read). `Err` when the writer is gone (the connection closed).
    pub async fn send(&self, own: Own) -> Result<(), ()> {
        self.tx.send(Stamped { after: self.conn.queued(), own: Box::new(own) }).await.map_err(|_| ())
    }
}

/// Frames of the session's own waiting for the writer at most.
const OWN_QUEUE: usize = 32;

pub struct Writer {
    conn: Arc<ConnHandle>,
    outbox: mpsc::Receiver<Arc<Outbound>>,
    own: mpsc::Receiver<Stamped>,
    /// An own frame waiting for the events queued before it.
    next_own: Option<Stamped>,
    /// Events taken from the outbox so far.
    taken: u64,
    /// Events of chats whose join is under way, in order, with the join they wait for.
    held: VecDeque<(u64, Arc<Outbound>)>,
    /// Held events at most before the connection counts as a slow consumer (the outbox's
    /// capacity: they would have waited there).
    max_held: usize,
    codec: Codec,
    buf: BytesMut,
    /// Presence frames held back to go out together, and when they must go at the latest
    /// (`batch` after the first). Written before any other frame, so order is kept.
    lazy: BytesMut,
    lazy_until: Option<Pin<Box<tokio::time::Sleep>>>,
    batch: Duration,
    /// The session's first frame (the greeting, or a refusal's close) went out: events
    /// wait for it, so `connected` is always the first frame.
    greeted: bool,
    closed: bool,
    /// actix-ws's own response body, never polled: dropping it (with this writer, when the
    /// connection ends) is what ends the session's inbound stream.
    _inbound: BoxBody,
}

/// A connection's writer and the session's handle on it.
pub(super) fn writer(
    conn: Arc<ConnHandle>,
    outbox: mpsc::Receiver<Arc<Outbound>>,
    max_held: usize,
    batch: Duration,
    inbound: BoxBody,
) -> (Writer, Mouth) {
    let (tx, own) = mpsc::channel(OWN_QUEUE);
    let writer = Writer {
        conn: conn.clone(),
        outbox,
        own,
        next_own: None,
        taken: 0,
        held: VecDeque::new(),
        max_held: max_held.max(1),
        codec: Codec::new(),
        buf: BytesMut::new(),
        lazy: BytesMut::new(),
        lazy_until: None,
        batch,
        greeted: false,
        closed: false,
        _inbound: inbound,
    };
    (writer, Mouth { conn, tx })
}

/// A writer outside the hub, for the conformance echo: it frames exactly as a
/// connection's writer does, with nothing but what is sent through its `Mouth`.
pub fn standalone(inbound: BoxBody) -> (Writer, Mouth) {
    let (conn, outbox) = super::hub::Hub::unlisted(crate::domain::UserId::from_trusted("echo".into()));
    writer(conn, outbox, 1, Duration::ZERO, inbound)
}

impl Writer {
    fn encode(&mut self, message: Message) {
        self.release_lazy();
        // Text, control frames with payloads the session bounds, and a close reason of
        // ours: encoding into memory cannot fail.
        let _ = self.codec.encode(message, &mut self.buf);
    }

    /// Holds a presence frame for the batch window (or writes it now without one).
    fn encode_lazy(&mut self, frame: ByteString) {
        if self.batch.is_zero() {
            return self.encode(Message::Text(frame));
        }
        let _ = self.codec.encode(Message::Text(frame), &mut self.lazy);
        if self.lazy_until.is_none() {
            self.lazy_until = Some(Box::pin(tokio::time::sleep(self.batch)));
        }
    }

    /// What presence frames are held goes into the output now. On every frame's path:
    /// a window is running exactly while something is held, so that is the quick check.
    fn release_lazy(&mut self) {
        if self.lazy_until.is_none() {
            return;
        }
        if self.buf.is_empty() {
            std::mem::swap(&mut self.buf, &mut self.lazy);
        } else if !self.lazy.is_empty() {
            self.buf.extend_from_slice(&self.lazy);
            self.lazy = BytesMut::new();
        }
        self.lazy_until = None;
    }

    /// An event from the outbox, written, held or dropped as its chat stands now.
    fn event(&mut self, out: Arc<Outbound>) {
        if let Some(chat) = &out.chat {
            match self.conn.admit(chat, out.seq) {
                Admit::Write => {}
                Admit::Drop => return,
                Admit::Hold(join) => {
                    if self.held.len() >= self.max_held {
                        self.conn.kill(CLOSE_SLOW_CONSUMER);
                        return;
                    }
                    self.held.push_back((join, out));
                    return;
                }
            }
        }
        if out.lazy {
            // Its latency is the batch window's, by design: not a push latency sample.
            return self.encode_lazy(out.frame.clone());
        }
        self.encode(Message::Text(out.frame.clone()));
        metrics::histogram!("missive_push_latency_seconds").record(out.queued_at.elapsed().as_secs_f64());
    }

    fn own(&mut self, own: Own) {
        match own {
            Own::Text(frame) => self.encode(Message::Text(frame)),
            Own::Binary(bytes) => self.encode(Message::Binary(bytes)),
            Own::Joining(chat, join, frame) => {
                if self.conn.is_joining(&chat, join) {
                    self.encode(Message::Text(frame));
                }
            }
            Own::Settle { chat, join, floor, joined, refused } => {
                let settled = self.conn.settle(&chat, join, floor);
                self.encode(Message::Text(if settled { joined } else { refused }));
                // What waited for this join goes out now (or never), in order, through
                // the same check; other joins' events stay held.
                let (ours, others): (VecDeque<_>, VecDeque<_>) =
                    std::mem::take(&mut self.held).into_iter().partition(|(j, _)| *j == join);
                self.held = others;
                if settled {
                    for (_, out) in ours {
                        self.event(out);
                    }
                }
            }
            Own::Barrier(done) => {
                let _ = done.send(());
            }
            Own::Ping(payload) => self.encode(Message::Ping(payload)),
            Own::Pong(payload) => self.encode(Message::Pong(payload)),
            Own::Close(reason) => {
                self.encode(Message::Close(reason));
                self.closed = true;
            }
        }
    }

    /// Takes what is ready, in order, until the chunk is full or nothing is ready: an
    /// own frame as soon as the events queued before it were taken, events up to it (or
    /// all of them while no own frame waits). `true` once the session is gone and nothing
    /// more will come.
    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        // Once per pass (it takes a lock): a kill during one is seen at the next.
        let killed = self.conn.killed().is_cancelled();
        while !self.closed && self.buf.len() < CHUNK {
            if self.next_own.is_none() {
                match self.own.poll_recv(cx) {
                    Poll::Ready(Some(next)) => self.next_own = Some(next),
                    Poll::Ready(None) => return true,
                    Poll::Pending => {}
                }
            }
            // The first own frame (the greeting) precedes every event; after a kill the
            // rest of the outbox is dropped: only the close frame is still to come.
            if let Some(next) = &self.next_own
                && (next.after <= self.taken || killed || !self.greeted)
                && let Some(next) = self.next_own.take()
            {
                self.greeted = true;
                self.own(*next.own);
                continue;
            }
            if !self.greeted {
                break;
            }
            match self.outbox.poll_recv(cx) {
                Poll::Ready(Some(out)) => {
                    self.taken += 1;
                    if !killed {
                        self.event(out);
                    }
                }
                // The hub keeps the sender as long as this writer holds the connection.
                // `Pending` while an own frame waits is brief: what it waits for was
                // offered (a concurrent offer still writing its slot wakes this writer,
                // as does tokio's budget).
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        false
    }
}

impl MessageBody for Writer {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let session_gone = this.fill(cx);
        // Held presence goes when its window ends, or with the last frame.
        let due = this.lazy_until.as_mut().is_some_and(|until| until.as_mut().poll(cx).is_ready());
        if due || this.closed || session_gone {
            this.release_lazy();
        }
        if !this.buf.is_empty() {
            // Taken whole: an idle connection keeps no buffer.
            return Poll::Ready(Some(Ok(std::mem::take(&mut this.buf).freeze())));
        }
        if this.closed || session_gone {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use crate::realtime::hub::{Hub, Target};

    /// Everything the writer hands the dispatcher now, as one string (frames' text shows
    /// through their small headers).
    fn drain(writer: &mut Writer) -> String {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(bytes))) = Pin::new(&mut *writer).poll_next(&mut cx) {
            out.extend_from_slice(&bytes);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn message(chat: &ChatId, seq: i64) -> Arc<Outbound> {
        Arc::new(Outbound::new(format!("m{seq}").into(), Some(chat.clone()), Some(seq)))
    }

    /// A connection joined to nothing, whose greeting went out.
    async fn greeted(hub: &Hub, max_held: usize) -> (Arc<ConnHandle>, Writer, Mouth) {
        let (conn, rx, _) = hub.register(UserId::from_trusted("alice".into()), 64, 4).unwrap();
        let (mut writer, mouth) = writer(conn.clone(), rx, max_held, Duration::ZERO, BoxBody::new(()));
        mouth.send(Own::Text("hello".into())).await.unwrap();
        assert!(drain(&mut writer).contains("hello"));
        (conn, writer, mouth)
    }

    #[tokio::test]
    async fn events_of_a_join_under_way_are_held_then_written_above_the_floor_after_the_reply() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (conn, mut writer, mouth) = greeted(&hub, 8).await;
        let join = hub.join(&conn, &chat).unwrap();
        for seq in 1..=3 {
            Hub::deliver(&hub.recipients(Target::Chat(&chat)), &message(&chat, seq));
        }
        assert_eq!(drain(&mut writer), "", "held while the join is under way");
        let settle = Own::Settle { chat, join, floor: 2, joined: "joined".into(), refused: "refused".into() };
        mouth.send(settle).await.unwrap();
        let out = drain(&mut writer);
        let (joined, m3) = (out.find("joined").unwrap(), out.find("m3").unwrap());
        assert!(joined < m3, "the reply first: {out:?}");
        assert!(!out.contains("m1") && !out.contains("m2"), "at or below the floor: {out:?}");
    }

    #[tokio::test]
    async fn held_events_past_the_outbox_capacity_close_the_connection_as_a_slow_consumer() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (conn, mut writer, _mouth) = greeted(&hub, 2).await;
        hub.join(&conn, &chat).unwrap();
        for seq in 1..=3 {
            Hub::deliver(&hub.recipients(Target::Chat(&chat)), &message(&chat, seq));
        }
        drain(&mut writer);
        assert!(conn.killed().is_cancelled());
        assert_eq!(conn.close_code(), CLOSE_SLOW_CONSUMER);
    }
}
