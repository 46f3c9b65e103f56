//! The one way a chat-scoped change is made: the database work runs as a task of its own
//! (a client that disconnects cannot cancel it between the commit and the publish), under
//! the chat's order stripe (so publish order is commit order), and the effects it returns
//! reach the push layer only after it committed. A rolled-back or refused write returns
//! an error and has no effect. The group-commit writer (`posting`) is the batched form of
//! the same rule. Routes describe effects; they never take a stripe or publish themselves.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio::sync::{Mutex, MutexGuard};

use crate::domain::{ChatId, UserId};
use crate::error::ApiError;
use crate::realtime::protocol::ServerEvent;
use crate::realtime::{Audience, Publisher, Typing};

/// What a committed write asks of the push layer, applied in order.
pub enum Effect {
    /// Boxed: events are large, and most writes return one or two effects.
    Publish(Audience, Box<ServerEvent>),
    /// The user left or was removed: their sockets stop receiving the chat at once, and
    /// their typing spell there ends.
    Evict(ChatId, UserId),
    /// A typing call of a participant.
    Typing(ChatId, UserId, bool),
}

impl Effect {
    pub fn publish(audience: Audience, event: ServerEvent) -> Self {
        Self::Publish(audience, Box::new(event))
    }
}

/// The write side's handle: ordering, then effects.
#[derive(Clone)]
pub struct Writes {
    order: Arc<ChatOrder>,
    publisher: Publisher,
    typing: Arc<Typing>,
}

impl Writes {
    pub fn new(order: Arc<ChatOrder>, publisher: Publisher, typing: Arc<Typing>) -> Self {
        Self { order, publisher, typing }
    }

    /// Runs `work` under `chat`'s order stripe (none for a chat being created, which
    /// nobody can write to yet), then applies the effects it returned.
    pub async fn run<T, Work>(&self, chat: Option<ChatId>, work: Work) -> Result<T, ApiError>
    where
        T: Send + 'static,
        Work: Future<Output = Result<(T, Vec<Effect>), ApiError>> + Send + 'static,
    {
        let this = self.clone();
        detached(async move {
            let _order = match &chat {
                Some(chat) => Some(this.order.lock(chat).await),
                None => None,
            };
            let (value, effects) = work.await?;
            for effect in effects {
                this.apply(effect);
            }
            Ok(value)
        })
        .await
    }

    fn apply(&self, effect: Effect) {
        match effect {
            Effect::Publish(audience, event) => {
                self.publisher.publish(&audience, &event);
            }
            Effect::Evict(chat, user) => {
                self.publisher.evict(&chat, &user);
                self.typing.clear_user(&user, Some(&chat));
            }
            Effect::Typing(chat, user, is_typing) => self.typing.set(&chat, &user, is_typing),
        }
    }
}

/// Runs `work` as its own task, so a client that disconnects mid-request cannot cancel it
/// between the commit and the publish (which would lose the push).
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}

/// Keeps a chat's events in commit order. Two writes into one chat commit one after the
/// other (the chat row is locked), but without this their publishes could swap. Holding
/// the chat's stripe from before the transaction until after the publish makes publish
/// order equal commit order. Striped so memory stays fixed whatever the number of chats;
/// two chats sharing a stripe only wait for each other. It belongs to the write side: the
/// push layer only ever sees events already in order.
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
