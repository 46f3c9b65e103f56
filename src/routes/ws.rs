use actix_web::{HttpRequest, HttpResponse, http::header, web};
use std::sync::Arc;
use std::time::Duration;

use crate::announce;
use crate::auth::{TokenSource, token_from_request};
use crate::db::Cursor;
use crate::domain::{ChatId, UserId, now_millis};
use crate::error::{ApiError, ErrorBody};
use crate::realtime::ReplayPage;
use crate::realtime::protocol::{ClusterScope, MessageEvent, ServerEvent};
use crate::realtime::wire::Frames;
use crate::realtime::{Gatekeeper, Peer, SessionConfig};
use crate::state::AppState;
use crate::views::MessageView;

/// GET /messaging — the WebSocket. Origin and token are checked before the 101.
#[utoipa::path(get, path = "/messaging", tag = "websocket",
    description = "Upgrades to the WebSocket (frames in docs/asyncapi.yaml). The token comes from `?token=`, \
        the Authorization header or the `sAccessToken` cookie.",
    params(("token" = Option<String>, Query, description = "JWT, for clients that cannot set headers")),
    responses((status = 101, description = "Switching protocols"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody), (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Origin not allowed", body = ErrorBody)))]
pub async fn open_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let allowed = state.settings.allowed_origins();
    check_origin(&req, &allowed)?;
    let (token, source) = token_from_request(&req, true).ok_or_else(|| {
        ApiError::Unauthorized("missing token (?token=, Authorization header or sAccessToken cookie)".into())
    })?;
    refuse_cross_site_cookie(&req, source, &allowed)?;
    let verified = state.auth.verify(&token).map_err(ApiError::Unauthorized)?;
    // actix-ws does the handshake and reads the client's frames; what goes out is written
    // by the connection's writer (`realtime::writer`), which replaces actix-ws's body and
    // keeps it, unpolled, for as long as the connection lives.
    let (response, _unused, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::Validation(format!("expected a WebSocket upgrade: {e}")))?;
    let (head, inbound) = response.into_parts();
    let stream = Frames::new(stream, state.settings.max_frame_bytes);
    let cfg = SessionConfig {
        heartbeat: Duration::from_millis(state.settings.heartbeat_interval_ms.max(10)),
        outbox_capacity: state.settings.outbox_capacity,
        presence_batch: Duration::from_millis(state.settings.presence_batch_ms),
        replay_limit: state.settings.replay_limit.max(1),
        replay_max_bytes: state.settings.replay_max_bytes.max(1),
        max_connections_per_user: state.settings.max_connections_per_user.max(1),
        frame_rate: (state.settings.ws_rate_per_sec, state.settings.ws_rate_burst),
        abuse_limit: state.settings.ws_abuse_limit,
    };
    let gate = DbGate { state: state.clone().into_inner() };
    // The stream is !Send, so the session runs on this worker's local task set; the
    // tracker lets shutdown wait for it.
    let peer = Peer { user: verified.user, expires_at: verified.expires_at };
    let (writer, session) = state.sockets.accept(stream, inbound, gate, cfg, peer, state.shutdown.clone());
    actix_web::rt::spawn(state.sessions.track_future(session));
    Ok(head.set_body(writer).map_into_boxed_body())
}

/// Browsers always send `Origin`; with an allow-list set, only exact matches may open a
/// socket (cross-site WebSocket hijacking). Clients that send none are not browsers.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return Ok(()) };
    if allowed.is_empty() {
        return Ok(());
    }
    let origin = origin.to_str().unwrap_or("");
    if allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("origin {origin:?} is not allowed")))
    }
}

/// Cross-site WebSocket hijacking: a page on any site can open a socket to us, and the
/// browser attaches our cookie to it. A bearer or query token proves the page had the
/// token; a cookie proves nothing, so a browser (it always sends `Origin`) authenticated
/// by the cookie alone is accepted only from the origins an operator listed.
fn refuse_cross_site_cookie(req: &HttpRequest, source: TokenSource, allowed: &[String]) -> Result<(), ApiError> {
    if source == TokenSource::Cookie && allowed.is_empty() && req.headers().contains_key(header::ORIGIN) {
        return Err(ApiError::Forbidden(
            "cookie authentication from a browser needs MISSIVE_ALLOWED_ORIGINS; send the token as ?token= or a \
             bearer header"
                .into(),
        ));
    }
    Ok(())
}

/// What a session asks of the rest of the application: membership, tokens, presence.
struct DbGate {
    state: Arc<AppState>,
}

impl Gatekeeper for DbGate {
    async fn chat_position(&self, user: &UserId, chat: &ChatId) -> Result<Option<i64>, String> {
        self.state.db.chat_position(user, chat).await.map_err(|e| e.to_string())
    }

    async fn replay_page(
        &self,
        user: &UserId,
        chat: &ChatId,
        after: i64,
        limit: usize,
    ) -> Result<Option<ReplayPage>, String> {
        let page = self.state.db.messages_of(user, chat, Cursor::After(after), limit as i64).await;
        let Some(page) = page.map_err(|e| e.to_string())? else { return Ok(None) };
        let frames = page
            .messages
            .into_iter()
            .map(|row| {
                let seq = row.seq;
                let event = ServerEvent::NewMessage(MessageEvent {
                    chat_id: chat.to_string(),
                    message: MessageView::from(row),
                });
                (seq, event.encode())
            })
            .collect();
        Ok(Some(ReplayPage { frames, more: page.has_more }))
    }

    fn typists(&self, chat: &ChatId) -> Vec<UserId> {
        let mut typists = self.state.typing.typists(chat);
        if let Some(cluster) = &self.state.cluster {
            typists.extend(cluster.fanout.remote_typists(chat));
            typists.sort();
            typists.dedup();
        }
        typists
    }

    fn cluster_scope(&self) -> Option<ClusterScope> {
        self.state.cluster.as_ref().map(|c| c.scope())
    }

    fn verify_token(&self, token: &str) -> Result<(UserId, u64), String> {
        self.state.auth.verify(token).map(|v| (v.user, v.expires_at))
    }

    async fn user_online(&self, user: &UserId) {
        announce::online(&self.state.db, &self.state.publisher, user, now_millis()).await;
    }

    async fn user_offline(&self, user: &UserId) {
        announce::offline(&self.state.db, &self.state.publisher, &self.state.typing, user, now_millis()).await;
    }
}
