//! Row types. They mirror the tables and never derive `Serialize`: the wire shapes
//! live in `crate::views`.

use diesel::prelude::*;

use super::schema::{chat_members, chats, messages};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chats)]
pub struct ChatRow {
    pub id: String,
    pub name: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seq: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_members)]
pub struct MemberRow {
    pub chat_id: String,
    pub user_id: String,
    pub last_read_seq: i64,
    pub joined_at: i64,
    pub position: i64,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
// `None` is written as NULL, not DEFAULT, so an insert's text depends only on its row
// count: PostgreSQL takes a batch as one multi-row INSERT, SQLite keeps one row's prepared.
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct MessageRow {
    pub id: String,
    pub chat_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub content: String,
    /// JSON array of attachment objects, already validated when written.
    pub attachments: String,
    pub reply_to: Option<String>,
    pub client_message_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// A chat as one member sees it.
#[derive(Debug, Clone)]
pub struct ChatRecord {
    pub chat: ChatRow,
    /// Members in the order they joined (the creator first, then as listed at creation).
    pub participants: Vec<String>,
    pub last_message: Option<MessageRow>,
    /// The viewer's read marker.
    pub last_read_seq: i64,
}

impl ChatRecord {
    /// Messages of others after the viewer's marker. Sending moves the sender's own
    /// marker, so everything after it was written by someone else.
    pub fn unread_count(&self) -> i64 {
        (self.chat.last_seq - self.last_read_seq).max(0)
    }
}
