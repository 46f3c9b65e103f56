//! Adding and removing chat participants.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::body::Object;
use super::limited;
use crate::auth::AuthUser;
use crate::db::{self, AddOutcome, RemoveOutcome};
use crate::domain::{ChatId, Participants, UserId, now_millis};
use crate::error::{ApiError, ErrorBody};
use crate::realtime::Audience;
use crate::realtime::protocol::{ChatCreated, Participant, ServerEvent};
use crate::state::AppState;
use crate::views::ChatView;
use crate::writes::Effect;

/// Each newcomer is one `participant-added` frame to every joined connection: a bound per
/// request keeps one call from filling a member's outbox (1,024 frames) on its own.
pub const MAX_ADDED_AT_ONCE: usize = 100;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipants {
    user_ids: Vec<String>,
}

/// POST /v1/messaging/chats/{chat_id}/participants — any participant may add others.
#[utoipa::path(post, path = "/v1/messaging/chats/{chat_id}/participants", tag = "chats", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    request_body = AddParticipants,
    description = "Pushes `participant-added` to the chat and `chat-created` to the newcomers.",
    responses((status = 200, description = "The chat", body = ChatView), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 409, description = "The chat would have more than 1,000 participants", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn add_participants(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Object<AddParticipants>>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let allowance = limited::take(&state.limits.membership, &user.id).await?;
    let user_ids = body.into_inner().0.user_ids;
    if user_ids.len() > MAX_ADDED_AT_ONCE {
        return Err(ApiError::Validation(format!("add at most {MAX_ADDED_AT_ONCE} participants at once")));
    }
    let requested = Participants::parse(&user.id, user_ids)?;
    let chat_for_order = chat.clone();
    let db = state.db.clone();
    let work = async move {
        let newcomers = &requested.as_slice()[1..];
        // One transaction: the chat answered is the chat the additions made.
        let (added, record) = db
            .write(async |c| {
                db::chats::lock(c, &chat, db::ChatLock::Members).await?;
                let added =
                    match db::members::add(c, &user.id, &chat, newcomers, Participants::MAX, now_millis()).await? {
                        AddOutcome::Added(added) => added,
                        AddOutcome::NotMember => return Err(ApiError::chat_not_found()),
                        AddOutcome::TooMany { max } => {
                            return Err(ApiError::Conflict(format!("a chat has at most {max} participants")));
                        }
                    };
                let record = db::chats::for_viewer(c, &user.id, &chat).await?.ok_or_else(ApiError::chat_not_found)?;
                Ok((added, record))
            })
            .await?;
        // The members after the additions, from the same transaction: in cluster mode only
        // they get `participant-added` (see `Audience::ChatMembers`).
        let members: Vec<UserId> = record.participants.iter().cloned().map(UserId::from_trusted).collect();
        let mut effects: Vec<Effect> = added
            .iter()
            .map(|newcomer| {
                let added = Participant { chat_id: chat.to_string(), user_id: newcomer.to_string() };
                Effect::publish(
                    Audience::ChatMembers(chat.clone(), members.clone()),
                    ServerEvent::ParticipantAdded(added),
                )
            })
            .collect();
        if !added.is_empty() {
            // Newcomers start with nothing unread (their marker is at the chat's last seq).
            let mut theirs = ChatView::from(record.clone());
            theirs.unread_count = 0;
            effects
                .push(Effect::publish(Audience::Users(added), ServerEvent::ChatCreated(ChatCreated { chat: theirs })));
        }
        Ok((ChatView::from(record), effects))
    };
    let view = state.writes.run(Some(chat_for_order), work).await?;
    Ok(limited::respond(HttpResponse::Ok(), allowance).json(view))
}

/// DELETE /v1/messaging/chats/{chat_id}/participants/{user_id} — yourself, or anyone if
/// you created the chat. The removed user's sockets stop receiving the chat at once.
#[utoipa::path(delete, path = "/v1/messaging/chats/{chat_id}/participants/{user_id}", tag = "chats",
    params(("chat_id" = String, Path, description = "Chat id (`chat_…`)"), ("user_id" = String, Path, description = "The participant to remove")),
    description = "Pushes `participant-removed`; the removed user's sockets stop receiving the chat at once.",
    responses((status = 204, description = "Removed"), (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the creator removes others", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn remove_participant(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (chat, target) = path.into_inner();
    let chat = ChatId::parse(&chat).ok_or_else(ApiError::chat_not_found)?;
    let target = UserId::parse(&target).map_err(|_| ApiError::NotFound("participant not found".into()))?;
    let allowance = limited::take(&state.limits.membership, &user.id).await?;
    let db = state.db.clone();
    let order = chat.clone();
    let work = async move {
        // The members left are read in the removal's transaction: in cluster mode only
        // they get `participant-removed` (see `Audience::ChatMembers`).
        let (outcome, members) = db
            .write(async |c| {
                db::chats::lock(c, &chat, db::ChatLock::Members).await?;
                let outcome = db::members::remove(c, &user.id, &chat, &target).await?;
                let members = match outcome {
                    RemoveOutcome::Removed => db::members::of_chat(c, &chat).await?,
                    _ => Vec::new(),
                };
                Ok::<_, ApiError>((outcome, members))
            })
            .await?;
        match outcome {
            RemoveOutcome::Removed => {}
            RemoveOutcome::NotMember => return Err(ApiError::NotFound("participant not found".into())),
            RemoveOutcome::Forbidden => {
                return Err(ApiError::Forbidden("only the chat's creator may remove other participants".into()));
            }
        }
        let removed = Participant { chat_id: chat.to_string(), user_id: target.to_string() };
        let effects = vec![
            Effect::Evict(chat.clone(), target.clone()),
            Effect::publish(Audience::ChatMembers(chat, members), ServerEvent::ParticipantRemoved(removed.clone())),
            Effect::publish(Audience::Users(vec![target]), ServerEvent::ParticipantRemoved(removed)),
        ];
        Ok(((), effects))
    };
    state.writes.run(Some(order), work).await?;
    Ok(limited::no_content(allowance))
}
