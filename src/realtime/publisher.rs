//! The one entry point through which committed changes become pushed events.
//! Callers publish only after their transaction committed; a rolled-back write
//! publishes nothing. A cross-node broker (Redis) will sit behind `publish`: it already
//! receives everything a remote node would need (audience and encoded frame).

use std::borrow::Borrow;
use std::sync::Arc;

use super::hub::{Hub, Outbound, Target};
use super::protocol::ServerEvent;
use crate::domain::{ChatId, UserId};

/// Who should receive an event.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Connections joined to the chat.
    Chat(ChatId),
    /// Connections joined to the chat, except those of this user (typing indicators).
    ChatExcept(ChatId, UserId),
    /// Every connection of these users.
    Users(Vec<UserId>),
    /// Connections of these users that listen to all their chats.
    ListeningUsers(Vec<UserId>),
}

#[derive(Clone)]
pub struct Publisher {
    hub: Arc<Hub>,
}

impl Publisher {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Stops every connection of `user` receiving `chat` (they left or were removed).
    /// Behind the publisher because a cluster must evict on every node.
    pub fn evict(&self, chat: &ChatId, user: &UserId) {
        self.hub.evict(chat, user);
    }

    /// Whether `user` has an open connection (presence).
    pub fn is_online(&self, user: &UserId) -> bool {
        self.hub.is_online(user)
    }

    /// Serialises `event` once and queues the shared bytes for every recipient.
    /// Never waits: a recipient whose outbox is full is closed as a slow consumer.
    pub fn publish(&self, audience: &Audience, event: &ServerEvent) -> usize {
        self.publish_lazy(audience, || event)
    }

    /// Like `publish`, but the event is built only if this node has a recipient for it:
    /// the `chat-updated` frames of a busy chat cost nothing while nobody listens to all
    /// chats. (A cross-node broker will take every event whatever the local audience.)
    pub fn publish_lazy<E: Borrow<ServerEvent>>(&self, audience: &Audience, build: impl FnOnce() -> E) -> usize {
        let target = match audience {
            Audience::Chat(chat) => Target::Chat(chat),
            Audience::ChatExcept(chat, user) => Target::ChatExcept(chat, user),
            Audience::Users(users) => Target::Users(users),
            Audience::ListeningUsers(users) => Target::ListeningUsers(users),
        };
        let recipients = self.hub.recipients(target);
        if recipients.is_empty() {
            return 0;
        }
        let event = build();
        let event = event.borrow();
        // Chat audiences scope the frame: the hub's subscription list may hold a
        // connection whose membership is not (or no longer) confirmed, and the session
        // drops such frames before writing them.
        let chat = match audience {
            Audience::Chat(chat) | Audience::ChatExcept(chat, _) => Some(chat.clone()),
            Audience::Users(_) | Audience::ListeningUsers(_) => None,
        };
        let seq = match event {
            ServerEvent::NewMessage(m) => Some(m.message.seq),
            _ => None,
        };
        let frame = Arc::new(Outbound { frame: event.encode(), chat, seq, queued_at: std::time::Instant::now() });
        let delivered = Hub::deliver(&recipients, &frame);
        metrics::counter!("missive_events_pushed_total").increment(delivered as u64);
        delivered
    }
}
