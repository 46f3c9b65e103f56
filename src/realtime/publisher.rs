//! The one entry point through which committed changes become pushed events.
//! Callers publish only after their transaction committed; a rolled-back write
//! publishes nothing. Where events go is the `Fanout`'s business (this node's hub, or
//! every node through a broker in cluster mode).

use std::sync::Arc;

use super::fanout::{Event, Fanout};
use super::protocol::{MessageView, ServerEvent};
use crate::domain::{ChatId, UserId};

/// Who should receive an event.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Connections joined to the chat.
    Chat(ChatId),
    /// Connections joined to the chat, except those of this user.
    ChatExcept(ChatId, UserId),
    /// Connections joined to the chat whose user is among these: the members when the
    /// event committed, read in its transaction. In cluster mode a removal committed
    /// through another node may not have reached this node's connections yet; this
    /// keeps a later event from reaching the removed user meanwhile.
    ChatMembers(ChatId, Vec<UserId>),
    /// Every connection of these users.
    Users(Vec<UserId>),
    /// Connections of these users that listen to all their chats.
    ListeningUsers(Vec<UserId>),
}

/// Hands each event to the fan-out (see `fanout`). Callers publish only after their
/// transaction committed, holding the chat's order stripe.
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

    /// `event` to `audience`. Never waits: a recipient whose outbox is full is closed as a
    /// slow consumer.
    pub fn publish(&self, audience: &Audience, event: &ServerEvent) {
        self.fanout.publish(Event::Other { audience, event });
    }

    /// A committed message: `new-message` to the chat, `chat-updated` to the `members`'
    /// listen-all connections with their own unread counts.
    pub fn publish_new_message(&self, chat: &ChatId, message: &MessageView, members: &[(UserId, i64)]) {
        self.fanout.publish(Event::NewMessage { chat, message, members });
    }
}

impl Audience {
    /// The chat a chat-scoped audience is limited to.
    pub fn chat(&self) -> Option<&ChatId> {
        match self {
            Audience::Chat(chat) | Audience::ChatExcept(chat, _) | Audience::ChatMembers(chat, _) => Some(chat),
            Audience::Users(_) | Audience::ListeningUsers(_) => None,
        }
    }
}
