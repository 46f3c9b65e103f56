use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::Object;
use super::limited;
use crate::auth::AuthUser;
use crate::db::{Cursor, NewMessage};
use crate::domain::{Attachments, ChatId, ClientMessageId, MessageContent, MessageId, UserId, now_millis};
use crate::error::{ApiError, ErrorBody};
use crate::posting::Posted;
use crate::state::AppState;
use crate::views::MessageView;

/// An attachment as sent: an object, or a plain http(s) URL string.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only: the handler parses `Value`s itself
pub enum AttachmentInput {
    Url(String),
    Object(crate::domain::Attachment),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostMessage {
    /// 1-10,000 characters (may be empty when there are attachments).
    content: Option<String>,
    /// At most 10.
    #[schema(value_type = Option<Vec<AttachmentInput>>)]
    attachments: Option<Vec<Value>>,
    /// A message of the same chat.
    reply_to: Option<String>,
    /// Makes the send idempotent: a retry returns the original with 200.
    client_message_id: Option<String>,
}

impl PostMessage {
    fn parse(self, state: &AppState, chat: ChatId, sender: UserId) -> Result<NewMessage, ApiError> {
        let limits = &state.settings;
        let attachments = Attachments::parse(self.attachments.unwrap_or_default(), limits.max_attachments)?;
        let content =
            MessageContent::parse(self.content.unwrap_or_default(), limits.max_message_chars, !attachments.is_empty())?;
        let reply_to = self
            .reply_to
            .map(|r| {
                MessageId::parse(&r)
                    .ok_or_else(|| ApiError::Validation("replyTo must name a message of this chat".into()))
            })
            .transpose()?;
        let client_message_id = self.client_message_id.as_deref().map(ClientMessageId::parse).transpose()?;
        Ok(NewMessage {
            id: MessageId::generate(),
            chat_id: chat,
            sender,
            content,
            attachments,
            reply_to,
            client_message_id,
            now: now_millis(),
        })
    }
}

/// POST /v1/messaging/chats/{chat_id}/messages
#[utoipa::path(post, path = "/v1/messaging/chats/{chat_id}/messages", tag = "messages", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    request_body = PostMessage,
    description = "Posts a message with the chat's next `seq`. Pushes `new-message` to joined connections and \
        `chat-updated` to participants' listen-all connections.",
    responses(
        (status = 201, description = "The stored message", body = MessageView),
        (status = 200, description = "A retry with a known `clientMessageId`: the original", body = MessageView),
        (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody),
        (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn post_message(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Object<PostMessage>>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let allowance = limited::take(&state.limits.post, &user.id).await?;
    let new = body.into_inner().0.parse(&state, chat, user.id)?;
    let outcome = state.poster.post(new).await?;
    match outcome {
        Posted::Created(message) => {
            metrics::counter!("missive_messages_posted_total").increment(1);
            Ok(limited::respond(HttpResponse::Created(), allowance).json(message))
        }
        Posted::Existing(original) => Ok(limited::respond(HttpResponse::Ok(), allowance).json(original)),
        Posted::NotMember => Err(ApiError::chat_not_found()),
        Posted::BadReply => Err(ApiError::Validation("replyTo must name a message of this chat".into())),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1-200, default 50.
    limit: Option<i64>,
    /// Messages with a smaller `seq` (the newest `limit` of them).
    before: Option<i64>,
    /// Messages with a larger `seq` (the oldest `limit` of them). At most one of `before`
    /// and `after` (400 for both: OpenAPI cannot say so).
    after: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Ascending by `seq`.
    messages: Vec<MessageView>,
    /// More messages exist beyond this page in the paging direction.
    has_more: bool,
}

/// GET /v1/messaging/chats/{chat_id}/messages
#[utoipa::path(get, path = "/v1/messaging/chats/{chat_id}/messages", tag = "messages", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)"), HistoryQuery),
    responses((status = 200, description = "A page of history", body = History), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn list_messages(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Validation("limit must be between 1 and 200".into()));
    }
    let cursor = match (query.before, query.after) {
        (Some(_), Some(_)) => return Err(ApiError::Validation("use at most one of before and after".into())),
        (Some(b), None) if b >= 0 => Cursor::Before(b),
        (None, Some(a)) if a >= 0 => Cursor::After(a),
        (None, None) => Cursor::Newest,
        _ => return Err(ApiError::Validation("before and after must be non-negative".into())),
    };
    let page = state.db.messages_of(&user.id, &chat, cursor, limit).await?.ok_or_else(ApiError::chat_not_found)?;
    Ok(HttpResponse::Ok().json(History {
        messages: page.messages.into_iter().map(MessageView::from).collect(),
        has_more: page.has_more,
    }))
}
