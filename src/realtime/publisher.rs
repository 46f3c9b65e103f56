//! The one entry point through which committed changes become pushed events.
//! Callers publish only after their transaction committed; a rolled-back write
//! publishes nothing. Where events go is the `Fanout`'s business (this node's hub today,
//! a broker in cluster mode).

use std::borrow::Borrow;
use std::sync::Arc;

use super::fanout::Fanout;
use super::hub::Outbound;
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

/// Encodes each event once and hands it to the fan-out (see `fanout`). Callers publish
/// only after their transaction committed, holding the chat's order stripe.
#[derive(Clone)]
pub struct Publisher {
    fanout: Arc<dyn Fanout>,
}

impl Publisher {
    pub fn new(fanout: Arc<dyn Fanout>) -> Self {
        Self { fanout }
    }

    /// Stops every connection of `user` receiving `chat` (they left or were removed).
    pub fn evict(&self, chat: &ChatId, user: &UserId) {
        self.fanout.evict(chat, user);
    }

    /// Serialises `event` once and queues the shared bytes for every recipient.
    /// Never waits: a recipient whose outbox is full is closed as a slow consumer.
    pub fn publish(&self, audience: &Audience, event: &ServerEvent) -> usize {
        self.publish_lazy(audience, || event)
    }

    /// Like `publish`, but the event is built only if the fan-out may have a recipient:
    /// on one node, the `chat-updated` frames of a busy chat cost nothing while nobody
    /// listens to all chats.
    pub fn publish_lazy<E: Borrow<ServerEvent>>(&self, audience: &Audience, build: impl FnOnce() -> E) -> usize {
        let frame = move || {
            let event = build();
            let event = event.borrow();
            // Chat audiences scope the frame: the hub's subscription list may hold a
            // connection whose membership is not (or no longer) confirmed, and the
            // session drops such frames before writing them.
            let chat = match audience {
                Audience::Chat(chat) | Audience::ChatExcept(chat, _) => Some(chat.clone()),
                Audience::Users(_) | Audience::ListeningUsers(_) => None,
            };
            let seq = match event {
                ServerEvent::NewMessage(m) => Some(m.message.seq),
                _ => None,
            };
            Arc::new(Outbound { frame: event.encode(), chat, seq, queued_at: std::time::Instant::now() })
        };
        let delivered = self.fanout.deliver(audience, Box::new(frame));
        if delivered > 0 {
            metrics::counter!("missive_events_pushed_total").increment(delivered as u64);
        }
        delivered
    }
}
