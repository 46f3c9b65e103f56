//! Presence announcements: a user came online or went offline. Their last-seen time is
//! recorded, and everyone who shares a chat with them is told. Used by sessions (first
//! and last connection) and, in cluster mode, by the node that reaps a dead node's users.

use crate::db::Db;
use crate::domain::{Millis, UserId, rfc3339_millis};
use crate::realtime::protocol::{ServerEvent, UserOffline, UserOnline};
use crate::realtime::{Audience, Publisher, Typing};

pub async fn online(db: &Db, publisher: &Publisher, user: &UserId, now: Millis) {
    tell(db, publisher, user, now, ServerEvent::UserOnline(UserOnline { user_id: user.to_string() })).await;
}

/// Also ends the user's typing spells (nobody types without a connection).
pub async fn offline(db: &Db, publisher: &Publisher, typing: &Typing, user: &UserId, at: Millis) {
    typing.clear_user(user, None);
    let event = ServerEvent::UserOffline(UserOffline { user_id: user.to_string(), last_seen: rfc3339_millis(at) });
    tell(db, publisher, user, at, event).await;
}

async fn tell(db: &Db, publisher: &Publisher, user: &UserId, at: Millis, event: ServerEvent) {
    if let Err(e) = db.touch_presence(user, at).await {
        tracing::warn!(error = %e, %user, "cannot record last seen");
    }
    match db.contacts_of(user).await {
        Ok(contacts) => publisher.publish(&Audience::Users(contacts), &event),
        Err(e) => tracing::warn!(error = %e, %user, "presence not announced"),
    }
}
