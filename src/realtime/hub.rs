//! The registry of open connections: who is connected, which chats each connection
//! joined, which listen to all their chats. It knows nothing of the database and never
//! awaits: delivery is `try_send` into each connection's bounded outbox.
//!
//! Lock discipline: a DashMap guard is never held while another map is touched or while
//! anything is sent. Senders are copied out, the guard dropped, then the copies are used.
//! The one nesting is `evict`'s: a chat's entry, then a connection's `joined` set.

use bytestring::ByteString;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::{ChatId, UserId};

pub type ConnId = u64;

/// A frame queued for a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub frame: ByteString,
    /// The chat a chat-scoped frame belongs to. The writer writes such a frame only
    /// while the connection is a settled member of that chat (`ConnHandle::admit`):
    /// a subscription taken before the membership check, or one evicted after the frame
    /// was queued, never lets a frame through.
    pub chat: Option<ChatId>,
    /// The `seq` of a `new-message` frame, so the session can drop what a replay already
    /// delivered.
    pub seq: Option<i64>,
    /// When it was published, for the push latency histogram.
    pub queued_at: std::time::Instant,
    /// A presence change (`user-online`, `user-offline`): the writer may hold it for a
    /// short window to write it together with others (`SessionConfig::presence_batch`).
    pub lazy: bool,
}

impl Outbound {
    pub fn new(frame: ByteString, chat: Option<ChatId>, seq: Option<i64>) -> Self {
        let lazy = is_presence(&frame);
        Self { frame, chat, seq, queued_at: std::time::Instant::now(), lazy }
    }

    /// A frame for whoever it is queued to (no chat scope).
    pub fn unscoped(text: impl Into<ByteString>) -> Self {
        Self::new(text.into(), None, None)
    }
}

/// Whether an encoded frame is a presence change. Frames are encoded by this server
/// (locally or by another node), tag first, so the prefix is exact.
fn is_presence(frame: &str) -> bool {
    frame.starts_with(r#"{"event":"user-online""#) || frame.starts_with(r#"{"event":"user-offline""#)
}

impl From<&str> for Outbound {
    fn from(text: &str) -> Self {
        Self::unscoped(text.to_owned())
    }
}

impl From<String> for Outbound {
    fn from(text: String) -> Self {
        Self::unscoped(text)
    }
}

/// Where a connection stands in a chat it subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// Subscribed (so nothing committed from now on is missed) but the join is not
    /// complete: the membership check or the replay is under way. Its frames are held by
    /// the connection's writer until the join settles (then written above the floor, or
    /// dropped if it was refused).
    Pending { join: u64 },
    /// Joined: the highest `seq` of the chat this client has (replayed, reported as
    /// `lastSeq`, or written). A `new-message` at or below it is a duplicate.
    Member { floor: i64 },
}

/// What the connection's writer does with a queued frame now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Write,
    /// Its chat's join (this one) has not settled yet.
    Hold(u64),
    /// Not subscribed (never, or evicted or left since it was queued), or a duplicate.
    Drop,
}

/// Close code for a connection whose outbox overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4009;

/// One open WebSocket, as the registry sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: ConnId,
    pub user: UserId,
    /// Frames are shared by all their recipients: a slot is one pointer, so the first
    /// block of a new, idle outbox stays small.
    outbox: mpsc::Sender<Arc<Outbound>>,
    listening_all: AtomicBool,
    /// Chats this connection subscribed to, and where it stands in each; mirrors
    /// `Hub::chats`. The writer asks it before writing each chat-scoped frame.
    joined: Mutex<HashMap<ChatId, Membership>>,
    /// Frames the outbox took so far: a frame of the session's own (a reply) waits for
    /// the events queued before it.
    queued: AtomicU64,
    /// Joins started so far (each names its subscription, see `settle`).
    joins: AtomicU64,
    kill: CancellationToken,
    close_code: AtomicU16,
}

impl ConnHandle {
    fn new(id: ConnId, user: UserId, outbox: mpsc::Sender<Arc<Outbound>>) -> Self {
        Self {
            id,
            user,
            outbox,
            listening_all: AtomicBool::new(false),
            joined: Mutex::new(HashMap::new()),
            queued: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            kill: CancellationToken::new(),
            close_code: AtomicU16::new(0),
        }
    }

    /// Asks the connection's task to close with `code`. The first reason wins.
    pub fn kill(&self, code: u16) {
        let _ = self.close_code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.kill.cancel();
    }
    pub fn killed(&self) -> &CancellationToken {
        &self.kill
    }
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Acquire)
    }
    pub fn is_listening_all(&self) -> bool {
        self.listening_all.load(Ordering::Relaxed)
    }
    /// The chats this connection joined (settled), sorted.
    pub fn joined_chats(&self) -> Vec<String> {
        let joined = self.joined_lock();
        let mut chats: Vec<_> =
            joined.iter().filter(|(_, m)| matches!(m, Membership::Member { .. })).map(|(c, _)| c.to_string()).collect();
        chats.sort();
        chats
    }
    /// The floor of a joined chat (`None`: not joined, or the join is not settled).
    pub fn floor(&self, chat: &ChatId) -> Option<i64> {
        match self.joined_lock().get(chat) {
            Some(Membership::Member { floor }) => Some(*floor),
            _ => None,
        }
    }
    /// Whether the connection is still subscribed to `chat` (a join under way stops
    /// replaying once it is not: the user was removed meanwhile).
    pub fn is_subscribed(&self, chat: &ChatId) -> bool {
        self.joined_lock().contains_key(chat)
    }
    /// Whether join `join` of `chat` is under way (not settled, not superseded, and
    /// the subscription stands): its replay may be written.
    pub fn is_joining(&self, chat: &ChatId, join: u64) -> bool {
        self.joined_lock().get(chat) == Some(&Membership::Pending { join })
    }
    /// Whether a frame of `chat` (a `new-message` with `seq`) may be written now, and
    /// moves the floor past it if so.
    pub fn admit(&self, chat: &ChatId, seq: Option<i64>) -> Admit {
        match (self.joined_lock().get_mut(chat), seq) {
            (None, _) => Admit::Drop,
            (Some(Membership::Pending { join }), _) => Admit::Hold(*join),
            (Some(Membership::Member { .. }), None) => Admit::Write,
            (Some(Membership::Member { floor }), Some(seq)) if seq > *floor => {
                *floor = seq;
                Admit::Write
            }
            (Some(Membership::Member { .. }), Some(_)) => Admit::Drop,
        }
    }
    /// Completes join `join` (what `Hub::join` returned) at `floor`, unless the
    /// subscription is gone or belongs to a later join (the client left, or the user was
    /// removed, meanwhile). True when it did.
    pub fn settle(&self, chat: &ChatId, join: u64, floor: i64) -> bool {
        match self.joined_lock().get_mut(chat) {
            Some(m) if *m == (Membership::Pending { join }) => {
                *m = Membership::Member { floor };
                true
            }
            _ => false,
        }
    }
    /// How many frames the outbox took so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }
    fn joined_lock(&self) -> MutexGuard<'_, HashMap<ChatId, Membership>> {
        // A poisoned set is still a valid set: the panicking holder only inserted or removed.
        self.joined.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Queues a frame without waiting. A full outbox marks a slow consumer.
    fn offer(&self, frame: &Arc<Outbound>) -> bool {
        match self.outbox.try_send(frame.clone()) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("missive_outbox_overflows_total").increment(1);
                tracing::warn!(conn = self.id, user = %self.user, "outbox full: closing slow consumer");
                self.kill(CLOSE_SLOW_CONSUMER);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Who receives a frame.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// Connections that joined the chat.
    Chat(&'a ChatId),
    /// Connections that joined the chat, except those of one user.
    ChatExcept(&'a ChatId, &'a UserId),
    /// Every connection of these users.
    Users(&'a [UserId]),
    /// Connections of these users that sent `listen-all-chats`.
    ListeningUsers(&'a [UserId]),
}

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    users: DashMap<UserId, Vec<Arc<ConnHandle>>>,
    chats: DashMap<ChatId, HashMap<ConnId, Arc<ConnHandle>>>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection with an outbox of `capacity` frames, unless the user already has
    /// `max_per_user` open. The flag is true for the user's first open connection (the
    /// user just came online).
    pub fn register(
        &self,
        user: UserId,
        capacity: usize,
        max_per_user: usize,
    ) -> Option<(Arc<ConnHandle>, mpsc::Receiver<Arc<Outbound>>, bool)> {
        let mut conns = self.users.entry(user.clone()).or_default();
        if conns.len() >= max_per_user {
            return None;
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let conn = Arc::new(ConnHandle::new(self.next_id.fetch_add(1, Ordering::Relaxed) + 1, user, tx));
        let first = conns.is_empty();
        conns.push(conn.clone());
        Some((conn, rx, first))
    }

    /// A connection outside the registry, for a socket refused before it counted (too
    /// many connections): it only gets its close frame.
    pub fn unlisted(user: UserId) -> (Arc<ConnHandle>, mpsc::Receiver<Arc<Outbound>>) {
        let (tx, rx) = mpsc::channel(1);
        (Arc::new(ConnHandle::new(0, user, tx)), rx)
    }

    /// Removes a connection and all its subscriptions. True when it was the user's last
    /// open connection (the user just went offline).
    pub fn unregister(&self, conn: &ConnHandle) -> bool {
        self.leave_all(conn);
        self.users
            .remove_if_mut(&conn.user, |_, conns| {
                conns.retain(|c| c.id != conn.id);
                conns.is_empty()
            })
            .is_some()
    }

    /// Subscribes to a chat's events, pending the join (`ConnHandle::settle`); the
    /// join's number, or `None` when already subscribed.
    pub fn join(&self, conn: &Arc<ConnHandle>, chat: &ChatId) -> Option<u64> {
        let join = conn.joins.fetch_add(1, Ordering::Relaxed) + 1;
        match conn.joined_lock().entry(chat.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => return None,
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Membership::Pending { join }),
        };
        self.chats.entry(chat.clone()).or_default().insert(conn.id, conn.clone());
        Some(join)
    }

    /// Unsubscribes from a chat; false when it was not joined.
    pub fn leave(&self, conn: &ConnHandle, chat: &ChatId) -> bool {
        if conn.joined_lock().remove(chat).is_none() {
            return false;
        }
        self.chats.remove_if_mut(chat, |_, conns| {
            conns.remove(&conn.id);
            conns.is_empty()
        });
        true
    }

    /// Leaves every chat and stops listening to all chats.
    pub fn leave_all(&self, conn: &ConnHandle) {
        conn.listening_all.store(false, Ordering::Relaxed);
        let chats: Vec<ChatId> = conn.joined_lock().drain().map(|(chat, _)| chat).collect();
        for chat in chats {
            self.chats.remove_if_mut(&chat, |_, conns| {
                conns.remove(&conn.id);
                conns.is_empty()
            });
        }
    }

    /// Unsubscribes every connection of `user` from `chat` (the user left or was removed).
    /// Both records go in one step (the connection's membership inside the chat's map
    /// entry): a `settle` racing with it sees the membership gone, never a connection
    /// removed from the chat but still joined. Lock order: a chat's entry, then a
    /// connection's `joined`; nothing takes them the other way round.
    pub fn evict(&self, chat: &ChatId, user: &UserId) {
        self.chats.remove_if_mut(chat, |_, conns| {
            conns.retain(|_, c| {
                let keep = c.user != *user;
                if !keep {
                    c.joined_lock().remove(chat);
                }
                keep
            });
            conns.is_empty()
        });
    }

    /// Unsubscribes every connection from `chat` and returns them (cluster mode: their
    /// stream of the chat broke, and they are told to join again).
    pub fn drop_chat(&self, chat: &ChatId) -> Vec<Arc<ConnHandle>> {
        let Some((_, conns)) = self.chats.remove(chat) else { return Vec::new() };
        conns
            .into_values()
            .inspect(|c| {
                c.joined_lock().remove(chat);
            })
            .collect()
    }

    /// Whether a connection here subscribed to `chat`.
    pub fn has_subscribers(&self, chat: &ChatId) -> bool {
        self.chats.contains_key(chat)
    }

    /// The chats with a subscriber here.
    pub fn subscribed_chats(&self) -> Vec<ChatId> {
        self.chats.iter().map(|e| e.key().clone()).collect()
    }

    /// Every open connection here.
    pub fn connections(&self) -> Vec<Arc<ConnHandle>> {
        self.users.iter().flat_map(|e| e.value().clone()).collect()
    }

    /// The users with a connection here, with how many.
    pub fn users_here(&self) -> Vec<(UserId, usize)> {
        self.users.iter().map(|e| (e.key().clone(), e.value().len())).collect()
    }

    /// Queues a frame for one connection; false when it did not take it.
    pub fn offer_to(conn: &ConnHandle, frame: &Arc<Outbound>) -> bool {
        conn.offer(frame)
    }

    pub fn listen_all(&self, conn: &ConnHandle) {
        conn.listening_all.store(true, Ordering::Relaxed);
    }

    /// The connections `target` names right now (copied out: no guard is kept).
    pub fn recipients(&self, target: Target<'_>) -> Vec<Arc<ConnHandle>> {
        match target {
            Target::Chat(chat) => self.chats.get(chat).map(|c| c.values().cloned().collect()).unwrap_or_default(),
            Target::ChatExcept(chat, user) => self
                .chats
                .get(chat)
                .map(|c| c.values().filter(|c| c.user != *user).cloned().collect())
                .unwrap_or_default(),
            Target::Users(users) => self.connections_of(users, false),
            Target::ListeningUsers(users) => self.connections_of(users, true),
        }
    }

    /// Queues `frame` for each of `recipients`; returns how many accepted it.
    pub fn deliver(recipients: &[Arc<ConnHandle>], frame: &Arc<Outbound>) -> usize {
        recipients.iter().filter(|c| c.offer(frame)).count()
    }

    fn connections_of(&self, users: &[UserId], listening_only: bool) -> Vec<Arc<ConnHandle>> {
        let mut out = Vec::new();
        for user in users {
            if let Some(conns) = self.users.get(user) {
                out.extend(conns.iter().filter(|c| !listening_only || c.is_listening_all()).cloned());
            }
        }
        out
    }

    pub fn is_online(&self, user: &UserId) -> bool {
        self.users.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    /// Users online, chats with a subscriber and open connections, read off the maps.
    fn sizes(hub: &Hub) -> (usize, usize, usize) {
        (hub.users.len(), hub.chats.len(), hub.users.iter().map(|e| e.value().len()).sum())
    }

    /// Joins and settles at once.
    fn settled(hub: &Hub, conn: &Arc<ConnHandle>, chat: &ChatId) {
        let join = hub.join(conn, chat).unwrap();
        assert!(conn.settle(chat, join, 0));
    }

    /// What the publisher does: resolve the target, then queue one shared frame.
    fn deliver(hub: &Hub, target: Target<'_>, text: impl Into<Outbound>) -> usize {
        Hub::deliver(&hub.recipients(target), &Arc::new(text.into()))
    }

    #[test]
    fn chat_frames_reach_only_joined_connections() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (a, mut rx_a, _) = hub.register(user("alice"), 8, 16).unwrap();
        let (_b, mut rx_b, _) = hub.register(user("bob"), 8, 16).unwrap();
        assert!(hub.join(&a, &chat).is_some());
        assert!(hub.join(&a, &chat).is_none(), "second join is a no-op");
        assert_eq!(deliver(&hub, Target::Chat(&chat), "hi"), 1);
        assert_eq!(rx_a.try_recv().unwrap().frame, "hi");
        assert!(rx_b.try_recv().is_err());
        assert!(hub.leave(&a, &chat));
        assert_eq!(deliver(&hub, Target::Chat(&chat), "again"), 0);
        assert_eq!(sizes(&hub).1, 0, "empty chat entries are removed");
    }

    #[test]
    fn every_device_of_a_user_gets_user_frames_and_listen_all_filters() {
        let hub = Hub::new();
        let (phone, mut rx_phone, first) = hub.register(user("alice"), 8, 16).unwrap();
        let (laptop, mut rx_laptop, second) = hub.register(user("alice"), 8, 16).unwrap();
        assert!(first && !second, "only the first device brings the user online");
        let users = [user("alice")];
        assert_eq!(deliver(&hub, Target::Users(&users), "x"), 2);
        assert_eq!(
            (rx_phone.try_recv().unwrap().frame.clone(), rx_laptop.try_recv().unwrap().frame.clone()),
            ("x".into(), "x".into())
        );
        hub.listen_all(&phone);
        assert_eq!(deliver(&hub, Target::ListeningUsers(&users), "y"), 1);
        assert_eq!(rx_phone.try_recv().unwrap().frame, "y");
        assert!(rx_laptop.try_recv().is_err());
        assert_eq!(sizes(&hub).0, 1);
        assert_eq!(sizes(&hub).2, 2);
        assert!(!hub.unregister(&phone), "laptop still online");
        assert!(hub.unregister(&laptop), "last device gone");
    }

    #[test]
    fn a_full_outbox_kills_only_that_connection() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (slow, _rx_slow_never_read, _) = hub.register(user("slow"), 2, 16).unwrap();
        let (fast, mut rx_fast, _) = hub.register(user("fast"), 16, 16).unwrap();
        settled(&hub, &slow, &chat);
        settled(&hub, &fast, &chat);
        for i in 0..3 {
            deliver(&hub, Target::Chat(&chat), format!("{i}"));
            assert_eq!(rx_fast.try_recv().unwrap().frame, format!("{i}"));
        }
        assert!(slow.killed().is_cancelled());
        assert_eq!(slow.close_code(), CLOSE_SLOW_CONSUMER);
        assert!(!fast.killed().is_cancelled());
    }

    #[test]
    fn evict_unsubscribes_every_device_of_one_user_only() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (a1, mut rx_a1, _) = hub.register(user("alice"), 8, 16).unwrap();
        let (a2, mut rx_a2, _) = hub.register(user("alice"), 8, 16).unwrap();
        let (b, mut rx_b, _) = hub.register(user("bob"), 8, 16).unwrap();
        for c in [&a1, &a2, &b] {
            settled(&hub, c, &chat);
        }
        hub.evict(&chat, &user("alice"));
        assert_eq!(deliver(&hub, Target::Chat(&chat), "m"), 1);
        assert!(rx_a1.try_recv().is_err() && rx_a2.try_recv().is_err());
        assert_eq!(rx_b.try_recv().unwrap().frame, "m");
        assert!(a1.joined_chats().is_empty());
        let alice = user("alice");
        assert_eq!(deliver(&hub, Target::ChatExcept(&chat, &alice), "n"), 1);
        let bob = user("bob");
        assert_eq!(deliver(&hub, Target::ChatExcept(&chat, &bob), "o"), 0);
    }

    #[test]
    fn frames_of_a_join_under_way_are_held_and_a_settle_completes_only_its_own_join() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (a, _rx, _) = hub.register(user("alice"), 8, 16).unwrap();
        assert_eq!(a.admit(&chat, Some(1)), Admit::Drop, "not subscribed");
        let join = hub.join(&a, &chat).unwrap();
        assert_eq!(a.admit(&chat, Some(1)), Admit::Hold(join), "subscribed, not yet settled");
        assert!(a.is_joining(&chat, join));
        assert!(a.joined_chats().is_empty());
        assert!(a.settle(&chat, join, 5));
        assert_eq!(a.joined_chats(), [chat.to_string()]);
        assert_eq!(a.admit(&chat, Some(5)), Admit::Drop, "at the floor: a duplicate");
        assert_eq!(a.admit(&chat, Some(6)), Admit::Write);
        assert_eq!(a.floor(&chat), Some(6));
        assert_eq!(a.admit(&chat, None), Admit::Write, "an event without seq");
        // Removed while a second join is under way: its settle finds nothing to complete.
        hub.evict(&chat, &user("alice"));
        assert_eq!(a.admit(&chat, Some(7)), Admit::Drop);
        let second = hub.join(&a, &chat).unwrap();
        hub.evict(&chat, &user("alice"));
        assert!(!a.settle(&chat, second, 7), "evicted before the settle");
        assert!(!a.is_subscribed(&chat));
        // Left and joined again before the first settle was applied: it is not the
        // current join's, which stays pending.
        let third = hub.join(&a, &chat).unwrap();
        hub.leave(&a, &chat);
        let fourth = hub.join(&a, &chat).unwrap();
        assert!(!a.settle(&chat, third, 9));
        assert_eq!(a.admit(&chat, Some(10)), Admit::Hold(fourth));
        assert!(!a.is_joining(&chat, third));
        assert!(a.settle(&chat, fourth, 9));
    }

    #[test]
    fn presence_frames_are_lazy_and_nothing_else_is() {
        use crate::realtime::protocol::{ServerEvent, UserOffline, UserOnline, UserTyping};
        let online = ServerEvent::UserOnline(UserOnline { user_id: "bob".into() }).encode();
        let offline = ServerEvent::UserOffline(UserOffline {
            user_id: "bob".into(),
            last_seen: "2026-12-01T00:00:00.000Z".into(),
        })
        .encode();
        let typing =
            ServerEvent::UserTyping(UserTyping { chat_id: "c".into(), user_id: "bob".into(), is_typing: true });
        assert!(Outbound::unscoped(online).lazy);
        assert!(Outbound::unscoped(offline).lazy);
        assert!(!Outbound::unscoped(typing.encode()).lazy);
    }

    #[test]
    fn connections_per_user_are_capped() {
        let hub = Hub::new();
        let _a = hub.register(user("alice"), 8, 2).unwrap();
        let _b = hub.register(user("alice"), 8, 2).unwrap();
        assert!(hub.register(user("alice"), 8, 2).is_none());
        assert!(hub.register(user("bob"), 8, 2).is_some());
    }

    #[test]
    fn unregister_removes_every_trace() {
        let hub = Hub::new();
        let chat = ChatId::generate();
        let (a, _rx, _) = hub.register(user("alice"), 8, 16).unwrap();
        hub.join(&a, &chat);
        assert!(hub.unregister(&a));
        assert_eq!(sizes(&hub), (0, 0, 0));
    }
}
