//! Wire shapes of the REST resources (contract §3). Shared by REST responses and the
//! WebSocket events that carry a chat or a message.

use serde::Serialize;

use crate::db::models::{ChatRecord, MessageRow};
use crate::domain::{Attachment, rfc3339_millis};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub chat_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub reply_to: Option<String>,
    pub client_message_id: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    pub id: String,
    pub name: Option<String>,
    pub participants: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[schema(nullable)]
    pub last_message: Option<MessageView>,
    pub last_seq: i64,
    /// Unread messages of the user this view was made for.
    pub unread_count: i64,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        // Written by us from validated `Attachments`; an unreadable value would mean the
        // row was edited by hand, and showing no attachments beats failing the page.
        let attachments = serde_json::from_str(&m.attachments).unwrap_or_else(|e| {
            tracing::warn!(message_id = %m.id, error = %e, "unreadable attachments column");
            Vec::new()
        });
        Self {
            id: m.id,
            chat_id: m.chat_id,
            seq: m.seq,
            sender_id: m.sender_id,
            content: m.content,
            attachments,
            reply_to: m.reply_to,
            client_message_id: m.client_message_id,
            created_at: rfc3339_millis(m.created_at),
            edited_at: m.edited_at.map(rfc3339_millis),
            deleted_at: m.deleted_at.map(rfc3339_millis),
        }
    }
}

impl From<ChatRecord> for ChatView {
    fn from(r: ChatRecord) -> Self {
        let unread_count = r.unread_count();
        Self {
            id: r.chat.id,
            name: r.chat.name,
            participants: r.participants,
            created_by: r.chat.created_by,
            created_at: rfc3339_millis(r.chat.created_at),
            updated_at: rfc3339_millis(r.chat.updated_at),
            last_message: r.last_message.map(MessageView::from),
            last_seq: r.chat.last_seq,
            unread_count,
        }
    }
}
