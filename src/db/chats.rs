use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use std::collections::HashMap;

use super::models::{ChatRecord, ChatRow, MemberRow, MessageRow};
use super::schema::{chat_members, chats, messages};
use super::{Db, DbError, with_conn};
use crate::domain::{ChatId, Millis, UserId};

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

impl Db {
    /// Creates a chat and its memberships in one transaction.
    pub async fn create_chat(&self, chat: ChatRow, members: &[UserId]) -> Result<ChatRecord, DbError> {
        let rows: Vec<MemberRow> = members
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
        with_conn!(self, true, |conn| {
            conn.transaction::<_, DbError, _>(async |c| {
                diesel::insert_into(chats::table).values(&chat).execute(c).await?;
                // One statement per member: diesel-async has no batch insert for SQLite.
                for row in &rows {
                    diesel::insert_into(chat_members::table).values(row).execute(c).await?;
                }
                Ok(())
            })
            .await
        })?;
        let participants = members.iter().map(ToString::to_string).collect();
        Ok(ChatRecord { chat, participants, last_message: None, last_read_seq: 0 })
    }

    /// The chat as `viewer` sees it, or `None` when it does not exist or `viewer` is not in it.
    pub async fn chat_for(&self, viewer: &UserId, chat: &ChatId) -> Result<Option<ChatRecord>, DbError> {
        with_conn!(self, false, |conn| {
            let row: Option<(ChatRow, i64)> = chats::table
                .inner_join(chat_members::table)
                .filter(chats::id.eq(chat.as_str()))
                .filter(chat_members::user_id.eq(viewer.as_str()))
                .select((ChatRow::as_select(), chat_members::last_read_seq))
                .first(conn)
                .await
                .optional()?;
            let Some(row) = row else { return Ok(None) };
            Ok(complete_records!(conn, vec![row])?.pop())
        })
    }

    /// `viewer`'s chats by latest activity, `limit` at a time, after `cursor`.
    pub async fn chats_of(
        &self,
        viewer: &UserId,
        limit: i64,
        cursor: Option<(Millis, ChatId)>,
    ) -> Result<ChatPage, DbError> {
        with_conn!(self, false, |conn| {
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
            let mut rows: Vec<(ChatRow, i64)> = query.load(conn).await?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next = more.then(|| rows.last().map(|(c, _)| (c.updated_at, c.id.clone()))).flatten();
            let chats = complete_records!(conn, rows)?;
            Ok(ChatPage { chats, next })
        })
    }

    /// The chat's last `seq` if `user` participates in it.
    pub async fn chat_position(&self, user: &UserId, chat: &ChatId) -> Result<Option<i64>, DbError> {
        with_conn!(self, false, |conn| {
            Ok(chats::table
                .inner_join(chat_members::table)
                .filter(chats::id.eq(chat.as_str()))
                .filter(chat_members::user_id.eq(user.as_str()))
                .select(chats::last_seq)
                .first::<i64>(conn)
                .await
                .optional()?)
        })
    }
}
