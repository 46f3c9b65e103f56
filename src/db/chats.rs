use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;

use super::models::{ChatRecord, ChatRow, MemberRow, MessageRow};
use super::schema::{chat_members, chats, messages};
use super::{Conn, Db, DbError, on_conn};
use crate::domain::{ChatId, ChatName, Millis, Participants, UserId};

/// A page of the caller's chats, newest activity first.
pub struct ChatPage {
    pub chats: Vec<ChatRecord>,
    /// `(updated_at, id)` of the last chat when more follow.
    pub next: Option<(Millis, String)>,
}

/// Fills in participants and last messages for `rows` (each with the viewer's marker),
/// keeping their order. Two queries whatever the page size.
macro_rules! complete_records {
    ($conn:expr, $rows:expr) => {{
        let rows: Vec<(ChatRow, i64)> = $rows;
        let ids: Vec<&str> = rows.iter().map(|(c, _)| c.id.as_str()).collect();
        let members: Vec<(String, String)> = chat_members::table
            .filter(chat_members::chat_id.eq_any(&ids))
            .order((chat_members::chat_id, chat_members::position))
            .select((chat_members::chat_id, chat_members::user_id))
            .load($conn)
            .await?;
        let last: Vec<MessageRow> = messages::table
            .inner_join(chats::table.on(chats::id.eq(messages::chat_id).and(chats::last_seq.eq(messages::seq))))
            .filter(messages::chat_id.eq_any(&ids))
            .select(MessageRow::as_select())
            .load($conn)
            .await?;
        Ok::<_, DbError>(assemble(rows, members, last))
    }};
}

fn assemble(rows: Vec<(ChatRow, i64)>, members: Vec<(String, String)>, last: Vec<MessageRow>) -> Vec<ChatRecord> {
    let mut by_chat: HashMap<String, Vec<String>> = HashMap::new();
    for (chat, user) in members {
        by_chat.entry(chat).or_default().push(user);
    }
    let mut last: HashMap<String, MessageRow> = last.into_iter().map(|m| (m.chat_id.clone(), m)).collect();
    rows.into_iter()
        .map(|(chat, last_read_seq)| {
            let participants = by_chat.remove(&chat.id).unwrap_or_default();
            ChatRecord { last_message: last.remove(&chat.id), participants, last_read_seq, chat }
        })
        .collect()
}

/// A chat to create: the caller first among its participants.
pub struct NewChat {
    pub id: ChatId,
    pub name: Option<ChatName>,
    pub created_by: UserId,
    pub participants: Participants,
    pub now: Millis,
}

/// Creates a chat and its memberships (in the caller's transaction).
pub async fn create(conn: &mut Conn<'_>, new: NewChat) -> Result<ChatRecord, DbError> {
    let chat = ChatRow {
        id: new.id.into_string(),
        name: new.name.map(ChatName::into_string),
        created_by: new.created_by.into_string(),
        created_at: new.now,
        updated_at: new.now,
        last_seq: 0,
    };
    let rows: Vec<MemberRow> = new
        .participants
        .as_slice()
        .iter()
        .zip(0..)
        .map(|(u, position)| MemberRow {
            chat_id: chat.id.clone(),
            user_id: u.to_string(),
            last_read_seq: 0,
            joined_at: chat.created_at,
            position,
        })
        .collect();
    on_conn!(conn, |c| {
        diesel::insert_into(chats::table).values(&chat).execute(c).await?;
        // One statement per member: diesel-async has no batch insert for SQLite.
        for row in &rows {
            diesel::insert_into(chat_members::table).values(row).execute(c).await?;
        }
    });
    let participants = rows.into_iter().map(|r| r.user_id).collect();
    Ok(ChatRecord { chat, participants, last_message: None, last_read_seq: 0 })
}

/// The chat as `viewer` sees it, or `None` when it does not exist or `viewer` is not in it.
pub async fn for_viewer(conn: &mut Conn<'_>, viewer: &UserId, chat: &ChatId) -> Result<Option<ChatRecord>, DbError> {
    on_conn!(conn, |c| {
        let row: Option<(ChatRow, i64)> = chats::table
            .inner_join(chat_members::table)
            .filter(chats::id.eq(chat.as_str()))
            .filter(chat_members::user_id.eq(viewer.as_str()))
            .select((ChatRow::as_select(), chat_members::last_read_seq))
            .first(c)
            .await
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        Ok(complete_records!(c, vec![row])?.pop())
    })
}

/// `viewer`'s chats by latest activity, `limit` at a time, after `cursor`.
pub async fn of_user(
    conn: &mut Conn<'_>,
    viewer: &UserId,
    limit: i64,
    cursor: Option<(Millis, ChatId)>,
) -> Result<ChatPage, DbError> {
    on_conn!(conn, |c| {
        let mut query = chats::table
            .inner_join(chat_members::table)
            .filter(chat_members::user_id.eq(viewer.as_str()))
            .select((ChatRow::as_select(), chat_members::last_read_seq))
            .order((chats::updated_at.desc(), chats::id.desc()))
            .limit(limit + 1)
            .into_boxed();
        if let Some((at, id)) = &cursor {
            let id = id.as_str();
            query = query.filter(chats::updated_at.lt(*at).or(chats::updated_at.eq(*at).and(chats::id.lt(id))));
        }
        let mut rows: Vec<(ChatRow, i64)> = query.load(c).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|(c, _)| (c.updated_at, c.id.clone()))).flatten();
        let chats = complete_records!(c, rows)?;
        Ok(ChatPage { chats, next })
    })
}

/// The chat's last `seq` if `user` participates in it.
pub async fn position(conn: &mut Conn<'_>, user: &UserId, chat: &ChatId) -> Result<Option<i64>, DbError> {
    on_conn!(conn, |c| {
        Ok(chats::table
            .inner_join(chat_members::table)
            .filter(chats::id.eq(chat.as_str()))
            .filter(chat_members::user_id.eq(user.as_str()))
            .select(chats::last_seq)
            .first::<i64>(c)
            .await
            .optional()?)
    })
}

impl Db {
    pub async fn chat_for(&self, viewer: &UserId, chat: &ChatId) -> Result<Option<ChatRecord>, DbError> {
        self.read(async |c| for_viewer(c, viewer, chat).await).await
    }

    pub async fn chats_of(
        &self,
        viewer: &UserId,
        limit: i64,
        cursor: Option<(Millis, ChatId)>,
    ) -> Result<ChatPage, DbError> {
        self.read(async |c| of_user(c, viewer, limit, cursor).await).await
    }

    pub async fn chat_position(&self, user: &UserId, chat: &ChatId) -> Result<Option<i64>, DbError> {
        self.read(async |c| position(c, user, chat).await).await
    }
}

/// The last `seq` of each of `chats` that exists.
pub async fn last_seqs(conn: &mut Conn<'_>, ids: &[ChatId]) -> Result<Vec<(ChatId, i64)>, DbError> {
    let ids: Vec<&str> = ids.iter().map(ChatId::as_str).collect();
    on_conn!(conn, |c| {
        let rows: Vec<(String, i64)> =
            chats::table.filter(chats::id.eq_any(&ids)).select((chats::id, chats::last_seq)).load(c).await?;
        Ok(rows.into_iter().map(|(id, seq)| (ChatId::from_trusted(id), seq)).collect())
    })
}

/// How a write holds its chat's row until it commits. PostgreSQL commits writes of one
/// chat on several connections (and nodes); SQLite has one writer, so there it is a no-op.
#[derive(Debug, Clone, Copy)]
pub enum ChatLock {
    /// A membership change: waits for, and holds off, every write that reads the members.
    Members,
    /// A write that addresses its event to the members it reads (edit, delete, read
    /// marker): a membership change commits wholly before its read or after its commit, so
    /// a user removed before it never gets its event (`Audience::ChatMembers`).
    Reader,
}

pub async fn lock(conn: &mut Conn<'_>, chat: &ChatId, mode: ChatLock) -> Result<(), DbError> {
    if let Conn::Pg(c) = conn {
        let row = chats::table.find(chat.as_str()).select(chats::id);
        let _: Vec<String> = match mode {
            ChatLock::Members => row.for_update().load(&mut **c).await?,
            ChatLock::Reader => row.for_key_share().load(&mut **c).await?,
        };
    }
    Ok(())
}
