//! The seam between publishing and the sockets. `Publisher` encodes each event once and
//! hands it here with its audience; a `Fanout` decides which connections get it. Today
//! `LocalFanout`, this node's hub; a broker-backed fan-out (Redis, for cluster mode) will
//! implement the same trait and carry each event to every node.
//!
//! Contract for implementations (as centrifuge's `Broker` states it): the events of one
//! chat's committed writes arrive in commit order, because the caller holds the chat's
//! order stripe from before its commit until this call returns (typing lapses, published
//! by their own timers, are not writes); the frame of a chat-scoped event carries its chat
//! (`Outbound::chat`) and, for `new-message`, the `seq` it follows (`Outbound::seq`), so a
//! receiving node can order and de-duplicate without parsing it.

use std::sync::Arc;

use super::hub::{Hub, Outbound, Target};
use super::publisher::Audience;
use crate::domain::{ChatId, UserId};

/// Builds an event's frame, at most once.
pub type BuildFrame<'a> = Box<dyn FnOnce() -> Arc<Outbound> + 'a>;

pub trait Fanout: Send + Sync {
    /// Delivers the frame `build` makes to `audience`, calling `build` only if someone may
    /// receive it (a local fan-out with no recipient skips the encoding; a broker always
    /// builds: other nodes may have recipients). Returns how many local connections
    /// took it. Never waits.
    fn deliver(&self, audience: &Audience, build: BuildFrame<'_>) -> usize;
    /// Stops every connection of `user`, on every node, receiving `chat`.
    fn evict(&self, chat: &ChatId, user: &UserId);
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
    fn deliver(&self, audience: &Audience, build: BuildFrame<'_>) -> usize {
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
        Hub::deliver(&recipients, &build())
    }

    fn evict(&self, chat: &ChatId, user: &UserId) {
        self.hub.evict(chat, user);
    }
}
