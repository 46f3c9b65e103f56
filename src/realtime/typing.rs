//! Typing indicators. A client may call `typing` on every keystroke: only the start of
//! a typing spell is pushed; calls inside the window just extend it. When the typist is
//! quiet for the window, says they stopped, or goes offline, the server pushes
//! `isTyping: false` itself.
//!
//! Coalesced: a spell lasts at least `MIN_SPELL` before its end is pushed, so a client
//! alternating `true` and `false` as fast as it can makes at most two frames per
//! `MIN_SPELL` per chat, whatever its request rate.

use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::protocol::{ServerEvent, UserTyping};
use super::publisher::{Audience, Publisher};
use crate::domain::{ChatId, UserId};

type Key = (ChatId, UserId);

/// The shortest spell whose start and end are both pushed.
const MIN_SPELL: Duration = Duration::from_secs(1);

/// One announced typing spell.
struct Spell {
    started: Instant,
    /// When `isTyping: false` is pushed, unless extended first.
    ends: Instant,
    /// Wakes the spell's task when `ends` moved earlier (the typist said they stopped).
    moved_earlier: Arc<Notify>,
}

pub struct Typing {
    spells: DashMap<Key, Spell>,
    publisher: Publisher,
    window: Duration,
}

impl Typing {
    pub fn new(publisher: Publisher, window: Duration) -> Arc<Self> {
        Arc::new(Self { spells: DashMap::new(), publisher, window })
    }

    /// Records a typing call; pushes only when a spell starts or ends.
    pub fn set(self: &Arc<Self>, chat: &ChatId, user: &UserId, is_typing: bool) {
        let key = (chat.clone(), user.clone());
        let now = Instant::now();
        if !is_typing {
            if let Some(mut spell) = self.spells.get_mut(&key) {
                spell.ends = now.max(spell.started + MIN_SPELL.min(self.window));
                spell.moved_earlier.notify_one();
            }
            return;
        }
        let wake = match self.spells.entry(key.clone()) {
            dashmap::Entry::Occupied(mut e) => {
                e.get_mut().ends = now + self.window;
                return;
            }
            dashmap::Entry::Vacant(v) => {
                let wake = Arc::new(Notify::new());
                v.insert(Spell { started: now, ends: now + self.window, moved_earlier: wake.clone() });
                wake
            }
        };
        self.push(&key, true);
        tokio::spawn(self.clone().expire(key, wake));
    }

    /// Who is typing in `chat` now, for a connection that just joined it (it missed the
    /// starts of their spells). A scan of the current spells: they last seconds and there
    /// are as many as people typing right now on this node.
    pub fn typists(&self, chat: &ChatId) -> Vec<UserId> {
        self.spells.iter().filter(|e| e.key().0 == *chat).map(|e| e.key().1.clone()).collect()
    }

    /// Ends every typing spell of `user` now (they went offline or left).
    pub fn clear_user(&self, user: &UserId, chat: Option<&ChatId>) {
        let keys: Vec<Key> = self
            .spells
            .iter()
            .filter(|e| e.key().1 == *user && chat.is_none_or(|c| e.key().0 == *c))
            .map(|e| e.key().clone())
            .collect();
        for key in keys {
            if let Some((_, spell)) = self.spells.remove(&key) {
                // Its task finds the spell gone and ends.
                spell.moved_earlier.notify_one();
                self.push(&key, false);
            }
        }
    }

    /// Sleeps until the spell's end, following extensions and early ends, then ends it.
    async fn expire(self: Arc<Self>, key: Key, moved_earlier: Arc<Notify>) {
        loop {
            let Some(ends) = self.spells.get(&key).map(|s| s.ends) else { return };
            tokio::select! {
                _ = sleep_until(ends) => {}
                // A permit stored before this wait still wakes it: no early end is missed.
                _ = moved_earlier.notified() => continue,
            }
            if self.spells.remove_if(&key, |_, s| s.ends <= Instant::now()).is_some() {
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
