//! Typing indicators. A client may call `typing` on every keystroke: only the start of
//! a typing spell is pushed; calls inside the window just extend it. When the typist is
//! quiet for the window, says they stopped, or goes offline, the server pushes
//! `isTyping: false` itself.
//!
//! Coalesced: a spell lasts at least `MIN_SPELL` before its end is pushed, so a client
//! alternating `true` and `false` as fast as it can makes at most two frames per
//! `MIN_SPELL` per chat, whatever its request rate.
//!
//! Addressed to the chat's members as the database has them when the start or end is
//! pushed (`Audience::ChatMembers`), like every other chat event: in cluster mode a user
//! removed through another node must not hear of a spell that starts after the removal,
//! even when the removal's eviction reaches their node later than the spell. A spell's
//! whole life (read the members, push the start, wait, read them again, push the end)
//! runs in its own task, so its frames keep their order.

use dashmap::DashMap;
use futures_util::future::BoxFuture;
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

/// What a spell's task does with the chat's members (`None`: the database failed).
pub type WithMembers = Box<dyn FnOnce(Option<Vec<UserId>>) + Send>;

/// Reads a chat's current members and runs the callback while they still hold: no
/// membership change commits between the read and the callback's push (on PostgreSQL,
/// under a share lock of the chat's row, since a removal may commit through another
/// node). Given by startup: the push layer does not reach the database itself.
pub type MembersOf = Arc<dyn Fn(ChatId, WithMembers) -> BoxFuture<'static, ()> + Send + Sync>;

/// One typing spell.
struct Spell {
    started: Instant,
    /// When `isTyping: false` is pushed, unless extended first.
    ends: Instant,
    /// Wakes the spell's task when `ends` moved earlier (the typist said they stopped).
    /// Also the spell's identity: a task only touches the spell it started with.
    moved_earlier: Arc<Notify>,
    /// Who its start was pushed to (without the typist); `None` until it was.
    told: Option<Vec<UserId>>,
}

pub struct Typing {
    spells: DashMap<Key, Spell>,
    publisher: Publisher,
    members_of: MembersOf,
    window: Duration,
}

impl Typing {
    pub fn new(publisher: Publisher, members_of: MembersOf, window: Duration) -> Arc<Self> {
        Arc::new(Self { spells: DashMap::new(), publisher, members_of, window })
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
                v.insert(Spell { started: now, ends: now + self.window, moved_earlier: wake.clone(), told: None });
                wake
            }
        };
        tokio::spawn(self.clone().run(key, wake));
    }

    /// Who is typing in `chat` now, for a connection that just joined it (it missed the
    /// starts of their spells). A scan of the current spells: they last seconds and there
    /// are as many as people typing right now on this node.
    pub fn typists(&self, chat: &ChatId) -> Vec<UserId> {
        self.spells
            .iter()
            .filter(|e| e.key().0 == *chat && e.value().told.is_some())
            .map(|e| e.key().1.clone())
            .collect()
    }

    /// Ends every typing spell of `user` now (they went offline, left or were removed),
    /// telling those its start was told.
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
                if let Some(told) = spell.told {
                    self.push(&key, false, told);
                }
            }
        }
    }

    /// A spell's life: announce it to the members, follow extensions and early ends,
    /// then announce its end to the members of that moment.
    async fn run(self: Arc<Self>, key: Key, id: Arc<Notify>) {
        let this = self.clone();
        let (k, i) = (key.clone(), id.clone());
        (self.members_of)(key.0.clone(), Box::new(move |members| this.start(&k, &i, members))).await;
        loop {
            let Some(ends) = self.spells.get(&key).filter(|s| same(s, &id)).map(|s| s.ends) else { return };
            tokio::select! {
                _ = sleep_until(ends) => {}
                // A permit stored before this wait still wakes it: no early end is missed.
                _ = id.notified() => continue,
            }
            match self.spells.get(&key).filter(|s| same(s, &id)).map(|s| s.ends) {
                None => return,
                // Extended while asleep: no need to read the members yet.
                Some(ends) if ends > Instant::now() => continue,
                Some(_) => {}
            }
            let this = self.clone();
            let (k, i) = (key.clone(), id.clone());
            (self.members_of)(key.0.clone(), Box::new(move |members| this.end(&k, &i, members))).await;
        }
    }

    /// Pushes the start of spell `id` to `members` (without the typist), unless it ended
    /// meanwhile, or the typist is no longer a member (removed since the call was
    /// accepted), or the database failed: then the spell was never seen and ends silently.
    fn start(&self, key: &Key, id: &Arc<Notify>, members: Option<Vec<UserId>>) {
        let Some(mut spell) = self.spells.get_mut(key).filter(|s| same(s, id)) else { return };
        match members {
            // Under the spell's entry: `clear_user` cannot end it between the check and
            // the start, so no end is pushed before its start.
            Some(members) if members.contains(&key.1) => {
                let others = others(members, &key.1);
                self.push(key, true, others.clone());
                spell.told = Some(others);
            }
            _ => {
                drop(spell);
                self.spells.remove_if(key, |_, s| same(s, id));
            }
        }
    }

    /// Pushes the end of spell `id` if it is still due (not extended meanwhile), to the
    /// members now; to those told of its start if the database failed.
    fn end(&self, key: &Key, id: &Arc<Notify>, members: Option<Vec<UserId>>) {
        if let Some((_, spell)) = self.spells.remove_if(key, |_, s| same(s, id) && s.ends <= Instant::now()) {
            let others = match members {
                Some(members) => others(members, &key.1),
                None => spell.told.unwrap_or_default(),
            };
            self.push(key, false, others);
        }
    }

    fn push(&self, (chat, user): &Key, is_typing: bool, members: Vec<UserId>) {
        self.publisher.publish(&Audience::ChatMembers(chat.clone(), members), &event(chat, user, is_typing));
    }
}

/// The `user-typing` frame of `user` in `chat`.
pub fn event(chat: &ChatId, user: &UserId, is_typing: bool) -> ServerEvent {
    ServerEvent::UserTyping(UserTyping { chat_id: chat.to_string(), user_id: user.to_string(), is_typing })
}

/// Who is told of `typist`'s spell: the chat's members but the typist.
pub fn others(members: Vec<UserId>, typist: &UserId) -> Vec<UserId> {
    members.into_iter().filter(|u| u != typist).collect()
}

/// Whether `spell` is the one whose task holds `id` (a key may get a new spell).
fn same(spell: &Spell, id: &Arc<Notify>) -> bool {
    Arc::ptr_eq(&spell.moved_earlier, id)
}
