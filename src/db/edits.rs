//! Edits and deletes of messages, by their sender only.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::MessageRow;
use super::schema::{chat_members, messages};
use super::{Conn, DbError, on_conn};
use crate::domain::{ChatId, MessageContent, MessageId, Millis, UserId};

pub enum Change {
    /// New content.
    Edit(MessageContent),
    /// Keeps the row (and its `seq`, so history has no gap) but drops its content.
    Delete,
}

pub enum ChangeOutcome {
    Changed(MessageRow),
    /// Already deleted: nothing to do, nothing to push.
    Unchanged(MessageRow),
    /// The chat or message does not exist for this caller.
    NotFound,
    /// A participant who is not the sender.
    Forbidden,
    /// Editing a deleted message.
    Gone,
}

/// Edits or deletes a message of `by`'s (in the caller's transaction).
pub async fn change(
    conn: &mut Conn<'_>,
    by: &UserId,
    chat: &ChatId,
    message: &MessageId,
    change: Change,
    now: Millis,
) -> Result<ChangeOutcome, DbError> {
    let message_id = message.as_str();
    on_conn!(conn, |c| {
        let member = chat_members::table
            .find((chat.as_str(), by.as_str()))
            .select(chat_members::user_id)
            .first::<String>(c)
            .await
            .optional()?;
        let found = messages::table
            .filter(messages::id.eq(message_id))
            .filter(messages::chat_id.eq(chat.as_str()))
            .select(MessageRow::as_select())
            .first(c)
            .await
            .optional()?;
        let (Some(_), Some(mut row)) = (member, found) else { return Ok(ChangeOutcome::NotFound) };
        if row.sender_id != by.as_str() {
            return Ok(ChangeOutcome::Forbidden);
        }
        match change {
            _ if row.deleted_at.is_some() && matches!(change, Change::Delete) => {
                return Ok(ChangeOutcome::Unchanged(row));
            }
            _ if row.deleted_at.is_some() => return Ok(ChangeOutcome::Gone),
            Change::Edit(content) => {
                diesel::update(messages::table.find(message_id))
                    .set((messages::content.eq(content.as_str()), messages::edited_at.eq(now)))
                    .execute(c)
                    .await?;
                row.content = content.into_string();
                row.edited_at = Some(now);
            }
            Change::Delete => {
                diesel::update(messages::table.find(message_id))
                    .set((messages::content.eq(""), messages::attachments.eq("[]"), messages::deleted_at.eq(now)))
                    .execute(c)
                    .await?;
                row.content = String::new();
                row.attachments = "[]".into();
                row.deleted_at = Some(now);
            }
        }
        Ok(ChangeOutcome::Changed(row))
    })
}
