//! The seam between publishing and the sockets. `Publisher` hands each committed event
//! here; a `Fanout` decides which connections get it. `LocalFanout` is one node, its hub;
//! the cluster fan-out (`crate::cluster`) carries each event to every node through a
//! broker, one broker message per event.
//!
//! Contract for implementations (as centrifuge's `Broker` states it): the events of one
//! chat's committed writes arrive in commit order on the node that committed them, because
//! the caller holds the chat's order stripe from before its commit until this call returns
//! (typing lapses, published by their own timers, are not writes). Every frame of a
//! chat-scoped event carries its chat (`Outbound::chat`) and, for `new-message`, its `seq`
//! (`Outbound::seq`); `Event::follows` says which message an event must not overtake, so a
//! receiving node can order and de-duplicate without parsing frames.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::hub::{Hub, Outbound, Target};
use super::protocol::{ChatUpdated, MessageEvent, MessageView, ServerEvent};
use super::publisher::Audience;
use crate::domain::{ChatId, UserId};

/// One committed event, as the publisher hands it over.
pub enum Event<'a> {
    /// `new-message` to the chat's joined connections, and `chat-updated` (each member's
    /// own unread count) to the members' listen-all connections. `members` are the
    /// participants when the message committed, with their read markers after it.
    NewMessage { chat: &'a ChatId, message: &'a MessageView, members: &'a [(UserId, i64)] },
    /// Any other event, to `audience`.
    Other { audience: &'a Audience, event: &'a ServerEvent },
}

impl Event<'_> {
    /// The chat a chat-scoped frame is limited to.
    pub fn chat(&self) -> Option<&ChatId> {
        match self {
            Event::NewMessage { chat, .. } => Some(chat),
            Event::Other { audience, .. } => audience.chat(),
        }
    }

    /// The `seq` of the message a chat-scoped event must not overtake: the edited or
    /// deleted message, the message a read marker moved to.
    pub fn follows(&self) -> Option<i64> {
        match self {
            Event::Other { event, audience } if audience.chat().is_some() => follows(event),
            _ => None,
        }
    }
}

/// See `Event::follows`.
pub fn follows(event: &ServerEvent) -> Option<i64> {
    match event {
        ServerEvent::MessageUpdated(m) => Some(m.message.seq),
        ServerEvent::MessageDeleted(m) => Some(m.seq),
        ServerEvent::MessageRead(m) => Some(m.last_read_seq),
        _ => None,
    }
}

pub trait Fanout: Send + Sync {
    /// Delivers `event` to the connections that should see it, on every node. Never
    /// waits.
    fn publish(&self, event: Event<'_>);
    /// Stops every connection of `user`, on every node, receiving `chat`.
    fn evict(&self, chat: &ChatId, user: &UserId);
    /// A connection here subscribed to `chat`, then read its last `seq` as `position`
    /// (frames above it must reach the connection). Only a fan-out that orders frames
    /// from several writers needs it; it answers where its live stream of the chat
    /// stands when that is past `position` (another connection started it later): the
    /// connection must then treat that as its position, replaying up to it.
    fn subscribed(&self, _chat: &ChatId, _position: i64) -> Option<i64> {
        None
    }
}

/// One node: the hub's registry is the whole audience.
pub struct LocalFanout {
    hub: Arc<Hub>,
}

impl LocalFanout {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Fanout for LocalFanout {
    fn publish(&self, event: Event<'_>) {
        match event {
            Event::NewMessage { chat, message, members } => {
                let frame = || new_message_frame(chat, message);
                deliver(&self.hub, &Audience::Chat(chat.clone()), frame);
                deliver_chat_updated(&self.hub, chat, message, members, |_| true);
            }
            Event::Other { audience, event } => {
                deliver(&self.hub, audience, || frame_of(audience, event));
            }
        }
    }

    fn evict(&self, chat: &ChatId, user: &UserId) {
        self.hub.evict(chat, user);
    }
}

/// The frame of a `new-message`.
pub fn new_message_frame(chat: &ChatId, message: &MessageView) -> Arc<Outbound> {
    let event = ServerEvent::NewMessage(MessageEvent { chat_id: chat.to_string(), message: message.clone() });
    Arc::new(Outbound::new(event.encode(), Some(chat.clone()), Some(message.seq)))
}

/// The frame of any other event; chat audiences scope it (the hub's subscription list
/// may hold a connection whose membership is not, or no longer, confirmed, and the
/// writer drops such frames before writing them).
pub fn frame_of(audience: &Audience, event: &ServerEvent) -> Arc<Outbound> {
    Arc::new(Outbound::new(event.encode(), audience.chat().cloned(), None))
}

/// Queues the frame `build` makes (only if someone here receives it) for this node's
/// connections in `audience`; returns how many took it.
pub fn deliver(hub: &Hub, audience: &Audience, build: impl FnOnce() -> Arc<Outbound>) -> usize {
    let mut recipients = hub.recipients(target(audience));
    if let Audience::ChatMembers(_, members) = audience
        && !recipients.is_empty()
    {
        // A set: chats reach 1,000 members, and each recipient is looked up.
        let members: HashSet<&UserId> = members.iter().collect();
        recipients.retain(|c| members.contains(&c.user));
    }
    if recipients.is_empty() {
        return 0;
    }
    let delivered = Hub::deliver(&recipients, &build());
    metrics::counter!("missive_events_pushed_total").increment(delivered as u64);
    delivered
}

/// `chat-updated` to this node's listen-all connections of the `members` that `keep`
/// accepts, each with that member's unread count; members with the same count share one
/// encoded frame, and nothing is encoded while nobody here listens to all chats.
pub fn deliver_chat_updated(
    hub: &Hub,
    chat: &ChatId,
    message: &MessageView,
    members: &[(UserId, i64)],
    keep: impl Fn(&UserId) -> bool,
) {
    let mut by_unread: BTreeMap<i64, Vec<UserId>> = BTreeMap::new();
    for (user, last_read) in members.iter().filter(|(u, _)| keep(u)) {
        by_unread.entry((message.seq - last_read).max(0)).or_default().push(user.clone());
    }
    for (unread_count, users) in by_unread {
        let audience = Audience::ListeningUsers(users);
        deliver(hub, &audience, || {
            let event = ServerEvent::ChatUpdated(ChatUpdated {
                chat_id: chat.to_string(),
                last_message: Some(message.clone()),
                unread_count,
            });
            frame_of(&audience, &event)
        });
    }
}

fn target(audience: &Audience) -> Target<'_> {
    match audience {
        Audience::Chat(chat) | Audience::ChatMembers(chat, _) => Target::Chat(chat),
        Audience::ChatExcept(chat, user) => Target::ChatExcept(chat, user),
        Audience::Users(users) => Target::Users(users),
        Audience::ListeningUsers(users) => Target::ListeningUsers(users),
    }
}
