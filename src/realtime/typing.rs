//! Typing indicators. A client may call `typing` on every keystroke: only the start of
//! a typing spell is pushed; calls inside the window just extend it. When the typist is
//! quiet for the window, or goes offline, the server pushes `isTyping: false` itself.

use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

use super::protocol::{ServerEvent, UserTyping};
use super::publisher::{Audience, Publisher};
use crate::domain::{ChatId, UserId};

type Key = (ChatId, UserId);

pub struct Typing {
    /// Who is typing where, until when.
    deadlines: DashMap<Key, Instant>,
    publisher: Publisher,
    window: Duration,
}

impl Typing {
    pub fn new(publisher: Publisher, window: Duration) -> Arc<Self> {
        Arc::new(Self { deadlines: DashMap::new(), publisher, window })
    }

    /// Records a typing call; pushes only when the state changes.
    pub fn set(self: &Arc<Self>, chat: &ChatId, user: &UserId, is_typing: bool) {
        let key = (chat.clone(), user.clone());
        if !is_typing {
            if self.deadlines.remove(&key).is_some() {
                self.push(&key, false);
            }
            return;
        }
        let deadline = Instant::now() + self.window;
        let started = match self.deadlines.entry(key.clone()) {
            dashmap::Entry::Occupied(mut e) => {
                *e.get_mut() = deadline;
                false
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(deadline);
                true
            }
        };
        if started {
            self.push(&key, true);
            tokio::spawn(self.clone().expire(key));
        }
    }

    /// Ends every typing spell of `user` (they went offline or left).
    pub fn clear_user(&self, user: &UserId, chat: Option<&ChatId>) {
        let keys: Vec<Key> = self
            .deadlines
            .iter()
            .filter(|e| e.key().1 == *user && chat.is_none_or(|c| e.key().0 == *c))
            .map(|e| e.key().clone())
            .collect();
        for key in keys {
            if self.deadlines.remove(&key).is_some() {
                self.push(&key, false);
            }
        }
    }

    /// Sleeps until the spell's deadline, following extensions, then ends it.
    async fn expire(self: Arc<Self>, key: Key) {
        loop {
            let Some(deadline) = self.deadlines.get(&key).map(|d| *d) else { return };
            sleep_until(deadline).await;
            if self.deadlines.remove_if(&key, |_, d| *d <= Instant::now()).is_some() {
                self.push(&key, false);
                return;
            }
        }
    }

    fn push(&self, (chat, user): &Key, is_typing: bool) {
        let event =
            ServerEvent::UserTyping(UserTyping { chat_id: chat.to_string(), user_id: user.to_string(), is_typing });
        self.publisher.publish(&Audience::ChatExcept(chat.clone(), user.clone()), &event);
    }
}
