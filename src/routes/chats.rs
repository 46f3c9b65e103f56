use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::body::Object;
use super::limited;
use crate::auth::AuthUser;
use crate::db::{self, NewChat};
use crate::domain::{ChatId, ChatName, Participants, now_millis};
use crate::error::{ApiError, ErrorBody};
use crate::realtime::Audience;
use crate::realtime::protocol::{ChatCreated, ServerEvent};
use crate::state::AppState;
use crate::views::ChatView;
use crate::writes::Effect;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateChat {
    /// Other participants; the caller is always added (first).
    participants: Vec<String>,
    /// Optional display name, 1-200 characters.
    name: Option<String>,
}

/// POST /v1/messaging/chats
#[utoipa::path(post, path = "/v1/messaging/chats", tag = "chats", request_body = CreateChat,
    description = "Creates a chat. Pushes `chat-created` to every connection of every participant.",
    responses((status = 201, description = "The new chat", body = ChatView), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn create_chat(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<Object<CreateChat>>,
) -> Result<HttpResponse, ApiError> {
    let allowance = limited::take(&state.limits.membership, &user.id).await?;
    let body = body.into_inner().0;
    let members = Participants::parse(&user.id, body.participants)?;
    let name = body.name.map(ChatName::parse).transpose()?;
    let audience = Audience::Users(members.as_slice().to_vec());
    let new = NewChat { id: ChatId::generate(), name, created_by: user.id, participants: members, now: now_millis() };
    let db = state.db.clone();
    let work = async move {
        let record = db.write(async |c| db::chats::create(c, new).await).await?;
        let view = ChatView::from(record);
        // Same payload for everyone: a new chat has no unread messages.
        let event = ServerEvent::ChatCreated(ChatCreated { chat: view.clone() });
        Ok((view, vec![Effect::publish(audience, event)]))
    };
    // A new chat: nobody can write to it yet, so no order stripe.
    let view = state.writes.run(None, work).await?;
    Ok(limited::respond(HttpResponse::Created(), allowance).json(view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatListQuery {
    /// 1-100, default 20.
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    before: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatList {
    chats: Vec<ChatView>,
    /// Pass as `before` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// GET /v1/messaging/chats
#[utoipa::path(get, path = "/v1/messaging/chats", tag = "chats", params(ChatListQuery),
    description = "The caller's chats, newest activity first.",
    responses((status = 200, description = "A page of chats", body = ChatList), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn list_chats(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ChatListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation("limit must be between 1 and 100".into()));
    }
    let cursor = query.before.as_deref().map(parse_cursor).transpose()?;
    let page = state.db.chats_of(&user.id, limit, cursor).await?;
    Ok(HttpResponse::Ok().json(ChatList {
        chats: page.chats.into_iter().map(ChatView::from).collect(),
        next_cursor: page.next.map(|(at, id)| format!("{at}.{id}")),
    }))
}

/// Cursors are `<updated_at millis>.<chat id>` of the last chat of the previous page:
/// an optional minus and 1-18 digits (always an `i64`), as the OpenAPI document says.
fn parse_cursor(s: &str) -> Result<(i64, ChatId), ApiError> {
    let millis = |at: &str| {
        let digits = at.strip_prefix('-').unwrap_or(at);
        let ok = (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| at.parse().ok()).flatten()
    };
    s.split_once('.')
        .and_then(|(at, id)| Some((millis(at)?, ChatId::parse(id)?)))
        .ok_or_else(|| ApiError::Validation("before is not a cursor returned as nextCursor".into()))
}

/// GET /v1/messaging/chats/{chat_id}
#[utoipa::path(get, path = "/v1/messaging/chats/{chat_id}", tag = "chats", params(("chat_id" = String, Path, description = "Chat id (`chat_…`)")),
    responses((status = 200, description = "The chat as the caller sees it", body = ChatView), (status = 401, description = "Missing or invalid token", body = ErrorBody), (status = 404, description = "No such chat, or the caller is not a participant", body = ErrorBody), (status = 503, description = "Database unavailable; nothing was written", body = ErrorBody)))]
pub async fn get_chat(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let chat = ChatId::parse(&path).ok_or_else(ApiError::chat_not_found)?;
    let record = state.db.chat_for(&user.id, &chat).await?.ok_or_else(ApiError::chat_not_found)?;
    Ok(HttpResponse::Ok().json(ChatView::from(record)))
}
