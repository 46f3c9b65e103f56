//! The one entry point through which committed changes become pushed events.
//! Callers publish only after their transaction committed; a rolled-back write
//! publishes nothing. A cross-node broker (Redis) will sit behind `publish`: it already
//! receives everything a remote node would need (audience and encoded frame).

use std::borrow::Borrow;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio::sync::{Mutex, MutexGuard};

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

/// Keeps a chat's events in commit order. Two sends into one chat commit one after the
/// other (the chat row is locked), but without this their publishes could swap. Holding
/// the chat's stripe from before the transaction until after the publish makes publish
/// order equal commit order. Striped so memory stays fixed whatever the number of chats;
/// two chats sharing a stripe only wait for each other.
pub struct ChatOrder {
    stripes: Vec<Mutex<()>>,
    hasher: RandomState,
}

impl ChatOrder {
    pub fn new(stripes: usize) -> Self {
        Self { stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(), hasher: RandomState::new() }
    }

    pub async fn lock(&self, chat: &ChatId) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(chat)].lock().await
    }

    /// Locks the stripes of several chats, in stripe order so that two callers locking
    /// overlapping sets cannot deadlock.
    pub async fn lock_all<'a>(&self, chats: impl Iterator<Item = &'a ChatId>) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = chats.map(|c| self.stripe(c)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    fn stripe(&self, chat: &ChatId) -> usize {
        self.hasher.hash_one(chat) as usize % self.stripes.len()
    }
}

impl Default for ChatOrder {
    fn default() -> Self {
        Self::new(1024)
    }
}
