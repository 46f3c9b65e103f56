//! Who is online: the seam beside `Fanout`. A user is online while they have a connection
//! anywhere; the first connection to open announces them, the last to close announces them
//! gone. On one node that is this node's hub; in cluster mode the count spans every node.

use futures_util::future::{BoxFuture, FutureExt, ready};
use std::sync::Arc;

use super::hub::Hub;
use crate::domain::UserId;

/// What a new connection is, for presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The user's first connection anywhere: they just came online.
    First,
    /// The user was online already.
    Again,
    /// Past the per-user cap counted over every node: the connection must close (4029).
    Refused,
}

pub trait Presence: Send + Sync {
    /// A connection of `user` opened here (`first_here`: this node had none; the hub
    /// already holds it to `max` here).
    fn opened<'a>(&'a self, user: &'a UserId, first_here: bool, max: usize) -> BoxFuture<'a, Opened>;
    /// A connection of `user` closed here (`last_here`: this node has none left). True
    /// when it was the user's last connection anywhere: they just went offline.
    fn closed<'a>(&'a self, user: &'a UserId, last_here: bool) -> BoxFuture<'a, bool>;
    /// For each of `users`, whether they have an open connection anywhere.
    fn online_among<'a>(&'a self, users: &'a [UserId]) -> BoxFuture<'a, Vec<bool>>;
}

/// One node: this node's connections are all there are.
pub struct LocalPresence {
    hub: Arc<Hub>,
}

impl LocalPresence {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Presence for LocalPresence {
    fn opened<'a>(&'a self, _user: &'a UserId, first_here: bool, _max: usize) -> BoxFuture<'a, Opened> {
        ready(if first_here { Opened::First } else { Opened::Again }).boxed()
    }

    fn closed<'a>(&'a self, _user: &'a UserId, last_here: bool) -> BoxFuture<'a, bool> {
        ready(last_here).boxed()
    }

    fn online_among<'a>(&'a self, users: &'a [UserId]) -> BoxFuture<'a, Vec<bool>> {
        ready(users.iter().map(|u| self.hub.is_online(u)).collect()).boxed()
    }
}
