use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::batch::{NewMessage, PostOutcome};
use super::models::MessageRow;
use super::schema::{chat_members, messages};
use super::{Conn, Db, DbError, on_conn};
use crate::domain::{ChatId, UserId};

pub struct MessagePage {
    pub messages: Vec<MessageRow>,
    pub has_more: bool,
}

/// Where a history page starts.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    Newest,
    Before(i64),
    After(i64),
}

impl Db {
    /// Writes a batch of sends in one transaction (one commit, one fsync), in order. Each
    /// send is checked first (membership, idempotency, `replyTo`), so a refused one
    /// writes nothing and needs no rollback; an accepted one takes its chat's next `seq`
    /// in the same transaction as its insert, so `seq` has no gap and no duplicate.
    /// Checks see the batch's own earlier inserts (same transaction). A database error
    /// fails the whole batch: nothing is committed.
    pub async fn post_messages(&self, batch: Vec<NewMessage>) -> Result<Vec<PostOutcome>, DbError> {
        match self {
            Db::Postgres(pool) => {
                let mut conn = super::pool::checkout(pool).await?;
                Ok(super::batch::pg::write(&mut conn, &batch).await?)
            }
            Db::Sqlite { writer, .. } => {
                let mut conn = super::pool::checkout(writer).await?;
                Ok(conn.spawn_blocking(move |c| super::batch::sqlite::write(c, &batch)).await?)
            }
        }
    }

    pub async fn messages_of(
        &self,
        viewer: &UserId,
        chat: &ChatId,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Option<MessagePage>, DbError> {
        self.read(async |c| page(c, viewer, chat, cursor, limit).await).await
    }
}

/// A page of history in ascending `seq`, or `None` when `viewer` is not in the chat.
pub async fn page(
    conn: &mut Conn<'_>,
    viewer: &UserId,
    chat: &ChatId,
    cursor: Cursor,
    limit: i64,
) -> Result<Option<MessagePage>, DbError> {
    on_conn!(conn, |conn| {
        let member = chat_members::table
            .find((chat.as_str(), viewer.as_str()))
            .select(chat_members::user_id)
            .first::<String>(conn)
            .await
            .optional()?;
        if member.is_none() {
            return Ok(None);
        }
        let base = messages::table
            .filter(messages::chat_id.eq(chat.as_str()))
            .select(MessageRow::as_select())
            .limit(limit + 1)
            .into_boxed();
        let query = match cursor {
            Cursor::Newest => base.order(messages::seq.desc()),
            Cursor::Before(seq) => base.filter(messages::seq.lt(seq)).order(messages::seq.desc()),
            Cursor::After(seq) => base.filter(messages::seq.gt(seq)).order(messages::seq.asc()),
        };
        let mut rows: Vec<MessageRow> = query.load(conn).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        if !matches!(cursor, Cursor::After(_)) {
            rows.reverse();
        }
        Ok(Some(MessagePage { messages: rows, has_more }))
    })
}

/// Up to `limit` messages of `chat` with a `seq` above `after`, ascending, whoever asks
/// (cluster mode fills a node's gap with them; membership is checked by the caller).
pub async fn after(conn: &mut Conn<'_>, chat: &ChatId, after: i64, limit: i64) -> Result<Vec<MessageRow>, DbError> {
    on_conn!(conn, |c| {
        Ok(messages::table
            .filter(messages::chat_id.eq(chat.as_str()))
            .filter(messages::seq.gt(after))
            .order(messages::seq.asc())
            .limit(limit)
            .select(MessageRow::as_select())
            .load(c)
            .await?)
    })
}
