//! The REST resources that WebSocket events carry too (contract §3): a message and a chat
//! as a given user sees it. Built from rows by `crate::views`.

use serde::{Deserialize, Serialize};

use crate::domain::Attachment;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
