//! Read markers, typing indicators and presence of a chat.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::body::Object;
use super::limited;
use crate::auth::AuthUser;
use crate::db::{self, ReadOutcome, ReadUpTo};
use crate::domain::{ChatId, MessageId, UserId, rfc3339_millis};
use crate::error::{ApiError, ErrorBody};
use crate::realtime::Audience;
use crate::realtime::protocol::{MessageRead, ServerEvent, UnreadCountUpdated};
use crate::state::AppState;
use crate::writes::Effect;

/// Exactly one of `seq` and `messageId`, nothing else (not even the other one as null).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged, expecting = "exactly one of seq (>= 0) and messageId")]
pub enum MarkRead {
    Seq(ReadSeq),
    Message(ReadMessage),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadSeq {
    seq: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadMessage {
    message_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReply {
    chat_id: String,
    last_read_seq: i64,
    unread_count: i64,
}

/// POST /v1/messaging/chats/{chat_id}/read
#[utoipa::path(post, path = "/v1/messaging/chats/{chat_id}/read", tag = "read state", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    request_body = MarkRead,
    description = "Moves the caller's read marker forward (never back). Pushes `message-read` to the chat and \
        `unread-count-updated` to the caller's connections.",
    responses((status = 200, description = "The marker after the call", body = ReadReply), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn mark_read(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Object<MarkRead>>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let allowance = limited::take(&state.limits.read, &user.id).await?;
    let upto = match body.into_inner().0 {
        MarkRead::Seq(ReadSeq { seq }) if seq >= 0 => ReadUpTo::Seq(seq),
        MarkRead::Seq(_) => return Err(ApiError::Validation("seq must be >= 0".into())),
        MarkRead::Message(ReadMessage { message_id }) => {
            let id = MessageId::parse(&message_id)
                .ok_or_else(|| ApiError::Validation("messageId names no message of this chat".into()))?;
            ReadUpTo::Message(id)
        }
    };
    let db = state.db.clone();
    let order = chat.clone();
    let work = async move {
        // The members are read in the marker's transaction: in cluster mode only they get
        // `message-read` (see `Audience::ChatMembers`).
        let (outcome, members) = db
            .write(async |c| {
                db::chats::lock(c, &chat, db::ChatLock::Reader).await?;
                let outcome = db::members::mark_read(c, &user.id, &chat, upto).await?;
                let members = match &outcome {
                    ReadOutcome::Done(read) if read.total_unread.is_some() => db::members::of_chat(c, &chat).await?,
                    _ => Vec::new(),
                };
                Ok::<_, ApiError>((outcome, members))
            })
            .await?;
        let read = match outcome {
            ReadOutcome::Done(read) => read,
            ReadOutcome::NotMember => return Err(ApiError::chat_not_found()),
            ReadOutcome::UnknownMessage => {
                return Err(ApiError::Validation("messageId names no message of this chat".into()));
            }
        };
        let mut effects = Vec::new();
        if let Some(total_unread) = read.total_unread {
            let event = ServerEvent::MessageRead(MessageRead {
                chat_id: chat.to_string(),
                user_id: user.id.to_string(),
                last_read_seq: read.last_read_seq,
            });
            effects.push(Effect::publish(Audience::ChatMembers(chat.clone(), members), event));
            let event = ServerEvent::UnreadCountUpdated(UnreadCountUpdated {
                chat_id: chat.to_string(),
                unread_count: read.unread_count,
                total_unread,
            });
            effects.push(Effect::publish(Audience::Users(vec![user.id.clone()]), event));
        }
        let reply =
            ReadReply { chat_id: chat.to_string(), last_read_seq: read.last_read_seq, unread_count: read.unread_count };
        Ok((reply, effects))
    };
    let reply = state.writes.run(Some(order), work).await?;
    Ok(limited::respond(HttpResponse::Ok(), allowance).json(reply))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetTyping {
    is_typing: bool,
}

/// POST /v1/messaging/chats/{chat_id}/typing
#[utoipa::path(post, path = "/v1/messaging/chats/{chat_id}/typing", tag = "read state", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    request_body = SetTyping,
    description = "Pushes `user-typing` to the chat's other joined connections when a typing spell starts or ends.",
    responses((status = 204, description = "Recorded"), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn set_typing(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Object<SetTyping>>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let allowance = limited::take(&state.limits.typing, &user.id).await?;
    let is_typing = body.into_inner().0.is_typing;
    // A chat write like the removal that ends a removed typist's spell: a removal cannot
    // commit between this check and the spell it would have ended.
    let db = state.db.clone();
    let order = chat.clone();
    let work = async move {
        db.chat_position(&user.id, &chat).await?.ok_or_else(ApiError::chat_not_found)?;
        Ok(((), vec![Effect::Typing(chat, user.id, is_typing)]))
    };
    state.writes.run(Some(order), work).await?;
    Ok(limited::no_content(allowance))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// Participants with an open connection.
    online: Vec<String>,
    /// The others: when they were last connected (null: never).
    last_seen: BTreeMap<String, Option<String>>,
}

/// GET /v1/messaging/chats/{chat_id}/presence
#[utoipa::path(get, path = "/v1/messaging/chats/{chat_id}/presence", tag = "read state", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    responses((status = 200, description = "Who is online", body = Presence), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn get_presence(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let members = state.db.members_seen(&user.id, &chat).await?.ok_or_else(ApiError::chat_not_found)?;
    let users: Vec<UserId> = members.iter().map(|(m, _)| UserId::from_trusted(m.clone())).collect();
    // One question for the whole chat (one round trip in cluster mode).
    let online = state.sockets.online_among(&users).await;
    let mut presence = Presence { online: Vec::new(), last_seen: BTreeMap::new() };
    for ((member, seen), online) in members.into_iter().zip(online) {
        if online {
            presence.online.push(member);
        } else {
            presence.last_seen.insert(member, seen.map(rfc3339_millis));
        }
    }
    Ok(HttpResponse::Ok().json(presence))
}
