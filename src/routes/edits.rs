//! Editing and deleting messages, by their sender only.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::body::Object;
use super::limited;
use crate::auth::AuthUser;
use crate::db::{self, Change, ChangeOutcome};
use crate::domain::{ChatId, MessageContent, MessageId, now_millis};
use crate::error::{ApiError, ErrorBody};
use crate::realtime::Audience;
use crate::realtime::protocol::{MessageDeleted, MessageEvent, ServerEvent};
use crate::state::AppState;
use crate::views::MessageView;
use crate::writes::Effect;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EditMessage {
    /// The new text, 1-10,000 characters.
    content: String,
}

fn message_not_found() -> ApiError {
    ApiError::NotFound("message not found".into())
}

/// Applies `change` as a chat write and announces it.
async fn apply(
    state: web::Data<AppState>,
    user: AuthUser,
    path: (String, String),
    change: Change,
) -> Result<Option<MessageView>, ApiError> {
    let chat = ChatId::parse(&path.0).ok_or_else(ApiError::chat_not_found)?;
    let id = MessageId::parse(&path.1).ok_or_else(message_not_found)?;
    let deleting = matches!(change, Change::Delete);
    let db = state.db.clone();
    let order = chat.clone();
    let work = async move {
        // The members are read in the change's transaction: in cluster mode only they get
        // the event (see `Audience::ChatMembers`).
        let (outcome, members) = db
            .write(async |c| {
                db::chats::lock(c, &chat, db::ChatLock::Reader).await?;
                let outcome = db::edits::change(c, &user.id, &chat, &id, change, now_millis()).await?;
                let members = match outcome {
                    ChangeOutcome::Changed(_) => db::members::of_chat(c, &chat).await?,
                    _ => Vec::new(),
                };
                Ok::<_, ApiError>((outcome, members))
            })
            .await?;
        let row = match outcome {
            ChangeOutcome::Changed(row) => row,
            ChangeOutcome::Unchanged(row) => return Ok((Some(MessageView::from(row)), Vec::new())),
            ChangeOutcome::NotFound => return Err(message_not_found()),
            ChangeOutcome::Forbidden => return Err(ApiError::Forbidden("only the sender may change a message".into())),
            ChangeOutcome::Gone => return Err(ApiError::Conflict("the message was deleted".into())),
        };
        let view = MessageView::from(row);
        let event = if deleting {
            ServerEvent::MessageDeleted(MessageDeleted {
                chat_id: chat.to_string(),
                message_id: view.id.clone(),
                seq: view.seq,
            })
        } else {
            ServerEvent::MessageUpdated(MessageEvent { chat_id: chat.to_string(), message: view.clone() })
        };
        Ok((Some(view), vec![Effect::publish(Audience::ChatMembers(chat, members), event)]))
    };
    state.writes.run(Some(order), work).await
}

/// PATCH /v1/messaging/chats/{chat_id}/messages/{message_id}
#[utoipa::path(patch, path = "/v1/messaging/chats/{chat_id}/messages/{message_id}", tag = "messages",
    params(("chat_id" = String, Path, description = "Chat id (`chat_…`)"), ("message_id" = String, Path, description = "Message id (`msg_…`)")), request_body = EditMessage, description = "Pushes `message-updated`.",
    responses((status = 200, description = "The edited message", body = MessageView), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 403, description = "Not the sender", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody),
        (status = 409, description = "The message was deleted", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn edit_message(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
    body: web::Json<Object<EditMessage>>,
) -> Result<HttpResponse, ApiError> {
    let allowance = limited::take(&state.limits.edit, &user.id).await?;
    let content = MessageContent::parse(body.into_inner().0.content, state.settings.max_message_chars, false)?;
    let view = apply(state, user, path.into_inner(), Change::Edit(content)).await?;
    Ok(limited::respond(HttpResponse::Ok(), allowance).json(view))
}

/// DELETE /v1/messaging/chats/{chat_id}/messages/{message_id}
#[utoipa::path(delete, path = "/v1/messaging/chats/{chat_id}/messages/{message_id}", tag = "messages",
    params(("chat_id" = String, Path, description = "Chat id (`chat_…`)"), ("message_id" = String, Path, description = "Message id (`msg_…`)")), description = "Keeps the `seq`, drops content and attachments. Pushes `message-deleted`.",
    responses((status = 204, description = "Deleted"), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 403, description = "Not the sender", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn delete_message(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let allowance = limited::take(&state.limits.edit, &user.id).await?;
    apply(state, user, path.into_inner(), Change::Delete).await?;
    Ok(limited::no_content(allowance))
}
