//! Memberships: read markers, adding and removing participants, and who shares a chat
//! with whom (for presence).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::MemberRow;
use super::schema::{chat_members, chats, user_presence};
use super::{Conn, Db, DbError, on_conn};
use crate::domain::{ChatId, MessageId, Millis, UserId};

/// A reader's position after `mark_read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub last_read_seq: i64,
    pub unread_count: i64,
    /// Unread messages across all the reader's chats after the move, read in the same
    /// transaction; `None` when the marker did not move (nothing is pushed then).
    pub total_unread: Option<i64>,
}

/// What `mark_read` is given: a `seq`, or a message id to resolve to its `seq`.
pub enum ReadUpTo {
    Seq(i64),
    Message(MessageId),
}

pub enum ReadOutcome {
    Done(ReadState),
    NotMember,
    /// The message id names no message of this chat.
    UnknownMessage,
}

pub enum AddOutcome {
    /// The users actually added (those not already in the chat).
    Added(Vec<UserId>),
    /// The caller is not a participant.
    NotMember,
    /// The chat would exceed `max` participants; nothing was added.
    TooMany { max: usize },
}

pub enum RemoveOutcome {
    Removed,
    NotMember,
    Forbidden,
}

/// Moves `user`'s read marker forward to `upto` (capped at the chat's last `seq`); never
/// back. Run it in a transaction: the unread total is read after the move.
pub async fn mark_read(
    conn: &mut Conn<'_>,
    user: &UserId,
    chat: &ChatId,
    upto: ReadUpTo,
) -> Result<ReadOutcome, DbError> {
    on_conn!(conn, |c| {
        let found: Option<(i64, i64)> = chats::table
            .inner_join(chat_members::table)
            .filter(chats::id.eq(chat.as_str()))
            .filter(chat_members::user_id.eq(user.as_str()))
            .select((chats::last_seq, chat_members::last_read_seq))
            .first(c)
            .await
            .optional()?;
        let Some((last_seq, current)) = found else { return Ok(ReadOutcome::NotMember) };
        let target = match upto {
            ReadUpTo::Seq(seq) => seq,
            ReadUpTo::Message(id) => {
                let seq = super::schema::messages::table
                    .filter(super::schema::messages::id.eq(id.as_str()))
                    .filter(super::schema::messages::chat_id.eq(chat.as_str()))
                    .select(super::schema::messages::seq)
                    .first::<i64>(c)
                    .await
                    .optional()?;
                match seq {
                    Some(seq) => seq,
                    None => return Ok(ReadOutcome::UnknownMessage),
                }
            }
        };
        let next = target.min(last_seq).max(current);
        if next != current {
            diesel::update(chat_members::table.find((chat.as_str(), user.as_str())))
                .set(chat_members::last_read_seq.eq(next))
                .execute(c)
                .await?;
        }
        let unread_count = (last_seq - next).max(0);
        // In the same transaction: once the marker moved, nothing can fail between
        // the commit and the pushes that announce it.
        let total_unread = if next != current {
            // One indexed pass over the reader's memberships, no scan of messages.
            let markers: Vec<(i64, i64)> = chats::table
                .inner_join(chat_members::table)
                .filter(chat_members::user_id.eq(user.as_str()))
                .select((chats::last_seq, chat_members::last_read_seq))
                .load(c)
                .await?;
            Some(markers.iter().map(|(last, read)| (last - read).max(0)).sum())
        } else {
            None
        };
        Ok(ReadOutcome::Done(ReadState { last_read_seq: next, unread_count, total_unread }))
    })
}

/// Adds the users not yet in the chat, unless the chat would then have more than `max`
/// participants. Newcomers start with everything already sent marked read. Run it in a
/// transaction: the chat row's lock holds the count until the commit.
pub async fn add(
    conn: &mut Conn<'_>,
    by: &UserId,
    chat: &ChatId,
    users: &[UserId],
    max: usize,
    now: Millis,
) -> Result<AddOutcome, DbError> {
    on_conn!(conn, |c| {
        // Locks the chat row first (PostgreSQL; SQLite has one writer anyway), so
        // two concurrent adds cannot both pass the cap on the same count.
        let exists = diesel::update(chats::table.find(chat.as_str()))
            .set(chats::updated_at.eq(chats::updated_at))
            .execute(c)
            .await?;
        if exists == 0 {
            return Ok(AddOutcome::NotMember);
        }
        let members: Vec<(String, i64)> = chat_members::table
            .filter(chat_members::chat_id.eq(chat.as_str()))
            .select((chat_members::user_id, chat_members::position))
            .load(c)
            .await?;
        if !members.iter().any(|(m, _)| m == by.as_str()) {
            return Ok(AddOutcome::NotMember);
        }
        let current: std::collections::HashSet<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
        let added: Vec<UserId> = users.iter().filter(|u| !current.contains(u.as_str())).cloned().collect();
        if members.len() + added.len() > max {
            return Ok(AddOutcome::TooMany { max });
        }
        let next_position = members.iter().map(|(_, p)| p + 1).max().unwrap_or(0);
        let last_seq: i64 = chats::table.find(chat.as_str()).select(chats::last_seq).first(c).await?;
        for (user, position) in added.iter().zip(next_position..) {
            let row = MemberRow {
                chat_id: chat.to_string(),
                user_id: user.to_string(),
                last_read_seq: last_seq,
                joined_at: now,
                position,
            };
            diesel::insert_into(chat_members::table).values(&row).execute(c).await?;
        }
        if !added.is_empty() {
            diesel::update(chats::table.find(chat.as_str())).set(chats::updated_at.eq(now)).execute(c).await?;
        }
        Ok(AddOutcome::Added(added))
    })
}

/// Removes `user` from the chat: allowed to the user themself and to the creator.
pub async fn remove(conn: &mut Conn<'_>, by: &UserId, chat: &ChatId, user: &UserId) -> Result<RemoveOutcome, DbError> {
    on_conn!(conn, |c| {
        let creator: Option<String> = chats::table
            .inner_join(chat_members::table)
            .filter(chats::id.eq(chat.as_str()))
            .filter(chat_members::user_id.eq(by.as_str()))
            .select(chats::created_by)
            .first(c)
            .await
            .optional()?;
        let Some(creator) = creator else { return Ok(RemoveOutcome::NotMember) };
        if by != user && creator != by.as_str() {
            return Ok(RemoveOutcome::Forbidden);
        }
        let n = diesel::delete(chat_members::table.find((chat.as_str(), user.as_str()))).execute(c).await?;
        Ok(if n == 0 { RemoveOutcome::NotMember } else { RemoveOutcome::Removed })
    })
}

/// Everyone who shares at least one chat with `user` (not `user`).
pub async fn contacts_of(conn: &mut Conn<'_>, user: &UserId) -> Result<Vec<UserId>, DbError> {
    on_conn!(conn, |conn| {
        let theirs = diesel::alias!(chat_members as mine);
        let mine = theirs
            .filter(theirs.field(chat_members::user_id).eq(user.as_str()))
            .select(theirs.field(chat_members::chat_id));
        let users: Vec<String> = chat_members::table
            .filter(chat_members::chat_id.eq_any(mine))
            .filter(chat_members::user_id.ne(user.as_str()))
            .select(chat_members::user_id)
            .distinct()
            .load(conn)
            .await?;
        Ok(users.into_iter().map(UserId::from_trusted).collect())
    })
}

/// Members of a chat with their last-seen time, if `viewer` is one of them.
pub async fn members_seen(
    conn: &mut Conn<'_>,
    viewer: &UserId,
    chat: &ChatId,
) -> Result<Option<Vec<(String, Option<i64>)>>, DbError> {
    on_conn!(conn, |conn| {
        let rows: Vec<(String, Option<i64>)> = chat_members::table
            .left_join(user_presence::table.on(user_presence::user_id.eq(chat_members::user_id)))
            .filter(chat_members::chat_id.eq(chat.as_str()))
            .select((chat_members::user_id, user_presence::last_seen.nullable()))
            .order(chat_members::user_id.asc())
            .load(conn)
            .await?;
        Ok(rows.iter().any(|(u, _)| u == viewer.as_str()).then_some(rows))
    })
}

/// Records that `user` was connected at `at`.
pub async fn touch_presence(conn: &mut Conn<'_>, user: &UserId, at: Millis) -> Result<(), DbError> {
    on_conn!(conn, |conn| {
        diesel::insert_into(user_presence::table)
            .values((user_presence::user_id.eq(user.as_str()), user_presence::last_seen.eq(at)))
            .on_conflict(user_presence::user_id)
            .do_update()
            .set(user_presence::last_seen.eq(at))
            .execute(conn)
            .await?;
        Ok(())
    })
}

impl Db {
    pub async fn contacts_of(&self, user: &UserId) -> Result<Vec<UserId>, DbError> {
        self.read(async |c| contacts_of(c, user).await).await
    }

    pub async fn members_seen(
        &self,
        viewer: &UserId,
        chat: &ChatId,
    ) -> Result<Option<Vec<(String, Option<i64>)>>, DbError> {
        self.read(async |c| members_seen(c, viewer, chat).await).await
    }

    pub async fn touch_presence(&self, user: &UserId, at: Millis) -> Result<(), DbError> {
        self.write(async |c| touch_presence(c, user, at).await).await
    }
}

/// Current members of a chat.
pub async fn of_chat(conn: &mut Conn<'_>, chat: &ChatId) -> Result<Vec<UserId>, DbError> {
    Ok(markers_of(conn, chat).await?.into_iter().map(|(user, _)| user).collect())
}

/// Current members of a chat with their read markers.
pub async fn markers_of(conn: &mut Conn<'_>, chat: &ChatId) -> Result<Vec<(UserId, i64)>, DbError> {
    on_conn!(conn, |conn| {
        let rows: Vec<(String, i64)> = chat_members::table
            .filter(chat_members::chat_id.eq(chat.as_str()))
            .select((chat_members::user_id, chat_members::last_read_seq))
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(|(u, r)| (UserId::from_trusted(u), r)).collect())
    })
}
