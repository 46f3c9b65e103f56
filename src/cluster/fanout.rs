//! The cluster fan-out: each event is delivered here at once (through the same per-chat
//! sequencer as remote ones, so a local `seq 6` never overtakes a remote `seq 5`) and
//! handed to the broker as one envelope; envelopes from other nodes come back in through
//! `receive`. A gap in a chat's `seq` is waited out briefly, then filled from PostgreSQL.

use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

use super::envelope::{Header, Kind, WireAudience};
use crate::db::{self, Db};
use crate::domain::{ChatId, UserId};
use crate::realtime::fanout::{Event, deliver, deliver_chat_updated, frame_of, new_message_frame};
use crate::realtime::protocol::{Resync, ServerEvent};
use crate::realtime::sequencer::{ChatSequencer, Verdict};
use crate::realtime::{Audience, Fanout, Hub, Outbound, Typing, typing};
use crate::views::MessageView;

/// Rows read per gap fill.
const FILL_PAGE: i64 = 256;
/// Bytes of envelopes waiting for the publisher at most (while Redis is down they pile up);
/// past it they are dropped and their numbers skipped, so receivers repair.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Chats whose latest `chat-updated` is remembered (to drop a stale one) at most.
const MAX_CHAT_UPDATES: usize = 100_000;

/// An envelope waiting for the publisher task (which numbers it).
pub struct Outgoing {
    pub kind: Kind,
    pub frame: bytestring::ByteString,
    /// Roughly what it weighs in the queue.
    pub bytes: usize,
}

/// What a chat's sequencer holds: a frame and who gets it.
#[derive(Debug)]
struct Item {
    audience: Audience,
    frame: Arc<Outbound>,
    /// For a message: the members when it committed; only their connections get it.
    /// A set: each recipient is looked up in it (chats reach 1,000 members).
    members: Option<Arc<HashSet<UserId>>>,
}

/// A typing spell running on another node.
struct RemoteSpell {
    origin: String,
    /// When to stop trusting it if its end never comes.
    until: std::time::Instant,
}

#[derive(Default)]
struct ChatState {
    sequencer: ChatSequencer<Item>,
    /// A fill task is scheduled or running.
    filling: bool,
}

pub struct ClusterFanout {
    pub(super) hub: Arc<Hub>,
    pub(super) db: Db,
    pub(super) node: String,
    out: mpsc::Sender<Outgoing>,
    /// Envelopes dropped because the publisher's queue was full: the publisher skips
    /// their numbers, so receivers see the loss.
    pub(super) skipped: Arc<AtomicU64>,
    chats: DashMap<ChatId, ChatState>,
    gap_wait: Duration,
    /// Typing spells running on other nodes (their origin, and when to stop trusting
    /// them if the "stopped" envelope never comes): a joiner here is told of them, and
    /// when their node dies a survivor ends them.
    remote_typing: DashMap<(ChatId, UserId), RemoteSpell>,
    /// This node's spells, ended when an eviction from another node arrives (set once at
    /// startup: typing publishes through this fan-out, so it is built after it).
    typing: std::sync::OnceLock<std::sync::Weak<Typing>>,
    typing_window: Duration,
    /// Bytes in the publisher's queue, and its bound.
    pub(super) queued_bytes: std::sync::atomic::AtomicUsize,
    max_queued_bytes: usize,
    /// The `seq` of the latest `chat-updated` sent here per chat: messages from several
    /// nodes may arrive out of order, and an older last message must not replace a newer.
    chat_updates: DashMap<ChatId, i64>,
}

impl ClusterFanout {
    pub fn new(
        hub: Arc<Hub>,
        db: Db,
        node: String,
        out: mpsc::Sender<Outgoing>,
        gap_wait: Duration,
        typing_window: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            hub,
            db,
            node,
            out,
            skipped: Arc::new(AtomicU64::new(0)),
            chats: DashMap::new(),
            gap_wait,
            remote_typing: DashMap::new(),
            typing: std::sync::OnceLock::new(),
            typing_window,
            queued_bytes: std::sync::atomic::AtomicUsize::new(0),
            max_queued_bytes: super::broker::Faults::from_env().queue_bytes.unwrap_or(MAX_QUEUED_BYTES),
            chat_updates: DashMap::new(),
        })
    }

    /// Who is typing in `chat` on other nodes.
    pub fn remote_typists(&self, chat: &ChatId) -> Vec<UserId> {
        let now = std::time::Instant::now();
        self.remote_typing
            .iter()
            .filter(|e| e.key().0 == *chat && e.value().until > now)
            .map(|e| e.key().1.clone())
            .collect()
    }

    /// Lets an eviction from another node end the evicted user's spell here, as a local
    /// removal does.
    pub fn end_typing_on_evict(&self, typing: &Arc<Typing>) {
        let _ = self.typing.set(Arc::downgrade(typing));
    }

    /// A node died: the spells it was timing end now, announced by this node to the
    /// chat's members (read now; a spell is a few seconds long and nodes rarely die).
    pub async fn end_spells_of(self: &Arc<Self>, origin: &str) {
        let ended: Vec<(ChatId, UserId)> =
            self.remote_typing.iter().filter(|e| e.value().origin == origin).map(|e| e.key().clone()).collect();
        let ended: Vec<(ChatId, UserId)> =
            ended.into_iter().filter(|key| self.remote_typing.remove(key).is_some()).collect();
        for (chat, user) in ended {
            let audience = match self.db.read(async |c| db::members::of_chat(c, &chat).await).await {
                Ok(members) => Audience::ChatMembers(chat.clone(), typing::others(members, &user)),
                Err(e) => {
                    let e: db::DbError = e;
                    tracing::warn!(error = %e, %chat, "cluster: a dead node's typing spell ends to the chat");
                    Audience::ChatExcept(chat.clone(), user.clone())
                }
            };
            let event = typing::event(&chat, &user, false);
            Fanout::publish(self, Event::Other { audience: &audience, event: &event });
        }
    }

    fn mirror_typing(&self, origin: &str, key: (ChatId, UserId), on: bool) {
        if on {
            // A spell lasts at most the window after its last start; a margin covers the
            // origin's timer and the broker hop.
            let until = std::time::Instant::now() + self.typing_window * 2;
            self.remote_typing.insert(key, RemoteSpell { origin: origin.to_owned(), until });
        } else {
            self.remote_typing.remove(&key);
        }
        if self.remote_typing.len() > 100_000 {
            let now = std::time::Instant::now();
            self.remote_typing.retain(|_, spell| spell.until > now);
        }
    }

    /// Runs `deliver` (a `chat-updated` for message `seq` of `chat`) only if it is newer
    /// than the last one here, under the chat's entry: a newer one cannot go out between
    /// the check and the delivery (which never waits).
    fn if_fresh_chat_update(&self, chat: &ChatId, seq: i64, deliver: impl FnOnce()) {
        if self.chat_updates.len() > MAX_CHAT_UPDATES {
            self.chat_updates.clear();
        }
        let mut latest = self.chat_updates.entry(chat.clone()).or_insert(0);
        if seq > *latest {
            *latest = seq;
            deliver();
        }
    }

    fn send(&self, kind: Kind, frame: bytestring::ByteString) {
        let bytes = frame.len() + kind.weight();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > self.max_queued_bytes || self.out.try_send(Outgoing { kind, frame, bytes }).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.skipped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("missive_broker_dropped_total", "side" => "publish").increment(1);
        }
    }

    /// An envelope from another node.
    pub fn receive(self: &Arc<Self>, header: Header, frame: bytestring::ByteString) {
        match header.kind {
            Kind::Message { c, s, m } => {
                let chat = ChatId::from_trusted(c);
                let members: Vec<(UserId, i64)> = m.into_iter().map(|(u, r)| (UserId::from_trusted(u), r)).collect();
                let outbound = Arc::new(Outbound::new(frame, Some(chat.clone()), Some(s)));
                self.offer_message(&chat, s, outbound.clone(), &members);
                self.remote_chat_updated(&chat, &outbound, &members);
            }
            Kind::Typing { c, u, on, m } => {
                let chat = ChatId::from_trusted(c);
                let members: Vec<UserId> = m.into_iter().map(UserId::from_trusted).collect();
                self.mirror_typing(&header.o, (chat.clone(), UserId::from_trusted(u)), on);
                let outbound = Arc::new(Outbound::new(frame, Some(chat.clone()), None));
                self.offer_event(Audience::ChatMembers(chat.clone(), members), Some(chat), None, outbound);
            }
            Kind::Event { a, f } => {
                let audience = Audience::from(a);
                let chat = audience.chat().cloned();
                let outbound = Arc::new(Outbound::new(frame, chat.clone(), None));
                self.offer_event(audience, chat, f, outbound);
            }
            Kind::Evict { c, u } => {
                let (chat, user) = (ChatId::from_trusted(c), UserId::from_trusted(u));
                self.hub.evict(&chat, &user);
                if let Some(typing) = self.typing.get().and_then(std::sync::Weak::upgrade) {
                    typing.clear_user(&user, Some(&chat));
                }
            }
            Kind::Heartbeat {} => {}
        }
    }

    /// `chat-updated` for this node's listen-all members of a remote message: only then is
    /// the frame parsed back for its message.
    fn remote_chat_updated(&self, chat: &ChatId, outbound: &Outbound, members: &[(UserId, i64)]) {
        let Some(seq) = outbound.seq else { return };
        self.if_fresh_chat_update(chat, seq, || {
            let users: Vec<UserId> = members.iter().map(|(u, _)| u.clone()).collect();
            if self.hub.recipients(crate::realtime::hub::Target::ListeningUsers(&users)).is_empty() {
                return;
            }
            let Ok(ServerEvent::NewMessage(event)) = serde_json::from_str::<ServerEvent>(&outbound.frame) else {
                tracing::warn!(%chat, "cluster: a new-message frame did not parse back");
                return;
            };
            deliver_chat_updated(&self.hub, chat, &event.message, members, |_| true);
        });
    }

    fn offer_message(self: &Arc<Self>, chat: &ChatId, seq: i64, frame: Arc<Outbound>, members: &[(UserId, i64)]) {
        let members: Arc<HashSet<UserId>> = Arc::new(members.iter().map(|(u, _)| u.clone()).collect());
        let item = Item { audience: Audience::Chat(chat.clone()), frame, members: Some(members) };
        self.with_chat(chat, |state, out| state.sequencer.message(seq, item, out));
    }

    fn offer_event(
        self: &Arc<Self>,
        audience: Audience,
        chat: Option<ChatId>,
        follows: Option<i64>,
        frame: Arc<Outbound>,
    ) {
        match (chat, follows) {
            (Some(chat), Some(seq)) => {
                let item = Item { audience, frame, members: None };
                self.with_chat(&chat, |state, out| state.sequencer.following(seq, item, out));
            }
            _ => {
                deliver(&self.hub, &audience, || frame);
            }
        }
    }

    /// Runs `offer` on the chat's sequencer and hands on what it released, under the
    /// chat's entry lock (delivery never waits), so releases keep their order. A chat with
    /// no sequencer and no local subscriber has nobody here to deliver to.
    fn with_chat(self: &Arc<Self>, chat: &ChatId, offer: impl FnOnce(&mut ChatState, &mut Vec<Item>) -> Verdict) {
        let mut out = Vec::new();
        let verdict = {
            let mut state = match self.chats.get_mut(chat) {
                Some(state) => state,
                None if self.hub.has_subscribers(chat) => self.chats.entry(chat.clone()).or_default(),
                None => return,
            };
            let verdict = offer(&mut state, &mut out);
            self.hand_on(out);
            if matches!(verdict, Verdict::Gap { .. }) && !state.filling {
                state.filling = true;
                self.spawn_fill(chat.clone());
            }
            verdict
        };
        if verdict == Verdict::Resync {
            self.resync_chat(chat, "the node fell too far behind in this chat");
        }
    }

    fn hand_on(&self, items: Vec<Item>) {
        for item in items {
            match &item.members {
                Some(members) => {
                    let Audience::Chat(chat) = &item.audience else { continue };
                    let recipients: Vec<_> = self
                        .hub
                        .recipients(crate::realtime::hub::Target::Chat(chat))
                        .into_iter()
                        .filter(|c| members.contains(&c.user))
                        .collect();
                    let n = Hub::deliver(&recipients, &item.frame);
                    metrics::counter!("missive_events_pushed_total").increment(n as u64);
                }
                None => {
                    deliver(&self.hub, &item.audience, || item.frame.clone());
                }
            }
        }
    }

    /// After a short wait (the late envelope is usually in flight), reads what is missing
    /// from the database. Twice failed, the chat's connections are told to rejoin.
    fn spawn_fill(self: &Arc<Self>, chat: ChatId) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.gap_wait).await;
            let mut failures = 0;
            loop {
                // Checked and cleared under one guard: a gap opened meanwhile either is
                // seen here or finds `filling` cleared and starts its own fill.
                let after = match this.chats.get_mut(&chat) {
                    Some(state) if state.sequencer.is_waiting() && state.sequencer.delivered().is_some() => {
                        state.sequencer.delivered()
                    }
                    Some(mut state) => {
                        state.filling = false;
                        None
                    }
                    None => None,
                };
                let Some(after) = after else { return };
                metrics::counter!("missive_cluster_gap_fills_total").increment(1);
                match this.read_after(&chat, after).await {
                    Ok((rows, markers)) => {
                        let full = rows.len() as i64 == FILL_PAGE;
                        let members: Arc<HashSet<UserId>> = Arc::new(markers.iter().map(|(u, _)| u.clone()).collect());
                        let views: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
                        let items = views.iter().map(|view| {
                            let frame = new_message_frame(&chat, view);
                            let item =
                                Item { audience: Audience::Chat(chat.clone()), frame, members: Some(members.clone()) };
                            (view.seq, item)
                        });
                        let mut verdict = Verdict::InOrder;
                        this.with_chat(&chat, |state, out| {
                            verdict = state.sequencer.fill(items, out);
                            verdict
                        });
                        // The lost envelopes' `chat-updated` too: the newest message is the
                        // one a chat list shows.
                        if let Some(newest) = views.last() {
                            this.if_fresh_chat_update(&chat, newest.seq, || {
                                deliver_chat_updated(&this.hub, &chat, newest, &markers, |_| true);
                            });
                        }
                        if verdict == Verdict::Resync {
                            return;
                        }
                        if !full && matches!(verdict, Verdict::Gap { .. }) {
                            // Held items wait for a message that is not committed yet as
                            // far as this read saw: look again after another wait.
                            tokio::time::sleep(this.gap_wait).await;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(%chat, error = %e, failures, "cluster: gap fill failed");
                        if failures >= 2 {
                            this.chats.remove(&chat);
                            this.resync_chat(&chat, "missed messages could not be read");
                            return;
                        }
                        tokio::time::sleep(this.gap_wait).await;
                    }
                }
            }
        });
    }

    async fn read_after(
        &self,
        chat: &ChatId,
        after: i64,
    ) -> Result<(Vec<db::models::MessageRow>, Vec<(UserId, i64)>), db::DbError> {
        self.db
            .read(async |c| {
                let rows = db::messages::after(c, chat, after, FILL_PAGE).await?;
                let markers = db::members::markers_of(c, chat).await?;
                Ok((rows, markers))
            })
            .await
    }

    /// Drops the chat here and tells its connections to join again (with their `lastSeq`).
    pub(super) fn resync_chat(&self, chat: &ChatId, reason: &str) {
        self.chats.remove(chat);
        let conns = self.hub.drop_chat(chat);
        metrics::counter!("missive_cluster_resyncs_total", "scope" => "chat").increment(1);
        tracing::warn!(%chat, connections = conns.len(), reason, "cluster: chat resync");
        let frame = Arc::new(Outbound::unscoped(
            ServerEvent::Resync(Resync { chat_id: Some(chat.to_string()), rejoin: true, reason: reason.into() })
                .encode(),
        ));
        for conn in conns {
            Hub::offer_to(&conn, &frame);
        }
    }

    /// Events may have been lost (a gap in an origin's counter, a broken subscription):
    /// messages are re-read for every chat followed here; the rest cannot be, so every
    /// connection is told to re-read its state.
    pub(super) async fn repair(self: &Arc<Self>, reason: &str) {
        metrics::counter!("missive_cluster_resyncs_total", "scope" => "node").increment(1);
        tracing::warn!(reason, "cluster: events may have been lost; repairing");
        self.catch_up().await;
        let frame = Arc::new(Outbound::unscoped(
            ServerEvent::Resync(Resync { chat_id: None, rejoin: false, reason: reason.into() }).encode(),
        ));
        for conn in self.hub.connections() {
            Hub::offer_to(&conn, &frame);
        }
    }

    /// Compares each followed chat's last `seq` in the database with what was delivered
    /// here, and fills what is behind (remote messages while the broker is down, or a lost
    /// last message).
    pub(super) async fn catch_up(self: &Arc<Self>) {
        let chats: Vec<ChatId> = self.chats.iter().map(|e| e.key().clone()).collect();
        if chats.is_empty() {
            return;
        }
        let positions = match self.db.read(async |c| db::chats::last_seqs(c, &chats).await).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: catch-up could not read positions");
                return;
            }
        };
        for (chat, last) in positions {
            // The missing range becomes a gap (even while a fill runs: it may have read
            // before the last message committed), and a fill reads it.
            let Some(mut state) = self.chats.get_mut(&chat) else { continue };
            if state.sequencer.delivered().is_some_and(|d| d < last) {
                state.sequencer.expect(last);
                if !state.filling {
                    state.filling = true;
                    drop(state);
                    self.spawn_fill(chat);
                }
            }
        }
    }

    /// Forgets chats nobody here follows any more, and typing spells long past.
    pub(super) fn sweep(&self) {
        let now = std::time::Instant::now();
        self.remote_typing.retain(|_, spell| spell.until > now);
        self.chats
            .retain(|chat, state| state.filling || state.sequencer.is_waiting() || self.hub.has_subscribers(chat));
        metrics::gauge!("missive_cluster_chats_followed").set(self.chats.len() as f64);
    }
}

impl Fanout for Arc<ClusterFanout> {
    fn publish(&self, event: Event<'_>) {
        match event {
            Event::NewMessage { chat, message, members } => {
                let frame = new_message_frame(chat, message);
                self.offer_message(chat, message.seq, frame.clone(), members);
                self.if_fresh_chat_update(chat, message.seq, || {
                    deliver_chat_updated(&self.hub, chat, message, members, |_| true);
                });
                let m = members.iter().map(|(u, r)| (u.to_string(), *r)).collect();
                self.send(Kind::Message { c: chat.to_string(), s: message.seq, m }, frame.frame.clone());
            }
            Event::Other { audience, event: ev } => {
                let follows = event.follows();
                let chat = event.chat().cloned();
                let frame = frame_of(audience, ev);
                self.offer_event(audience.clone(), chat, follows, frame.clone());
                let kind = match (ev, audience) {
                    (ServerEvent::UserTyping(t), Audience::ChatMembers(c, m)) => Kind::Typing {
                        c: c.to_string(),
                        u: t.user_id.clone(),
                        on: t.is_typing,
                        m: m.iter().map(ToString::to_string).collect(),
                    },
                    _ => Kind::Event { a: WireAudience::from(audience), f: follows },
                };
                self.send(kind, frame.frame.clone());
            }
        }
    }

    fn evict(&self, chat: &ChatId, user: &UserId) {
        self.hub.evict(chat, user);
        self.send(Kind::Evict { c: chat.to_string(), u: user.to_string() }, bytestring::ByteString::new());
    }

    fn subscribed(&self, chat: &ChatId, position: i64) -> Option<i64> {
        let mut stream = None;
        self.with_chat(chat, |state, out| {
            let verdict = state.sequencer.position(position, out);
            stream = state.sequencer.delivered();
            verdict
        });
        stream
    }
}
