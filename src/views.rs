//! Row → wire conversions: the database's rows become the resources of the contract
//! (§3, types in `realtime::protocol::resources`). Here, on the application side, so that
//! the push layer compiles without the row types.

use crate::db::models::{ChatRecord, MessageRow};
use crate::domain::{Attachment, Attachments, rfc3339_millis};
pub use crate::realtime::protocol::{ChatView, MessageView};

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        // Written by us from validated `Attachments`; an unreadable value would mean the
        // row was edited by hand, and showing no attachments beats failing the page.
        let attachments = serde_json::from_str(&m.attachments).unwrap_or_else(|e| {
            tracing::warn!(message_id = %m.id, error = %e, "unreadable attachments column");
            Vec::new()
        });
        Self::with_attachments(m, attachments)
    }
}

impl MessageView {
    /// A message just written, with the validated attachments it was sent with: its
    /// stored JSON is not read back.
    pub fn written(m: MessageRow, attachments: &Attachments) -> Self {
        Self::with_attachments(m, attachments.as_slice().to_vec())
    }

    fn with_attachments(m: MessageRow, attachments: Vec<Attachment>) -> Self {
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
