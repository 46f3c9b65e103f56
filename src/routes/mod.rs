//! The URL table: every route on one screen. Handlers are named `verb_noun` and live
//! one file per resource.

mod chats;
mod edits;
mod health;
mod messages;
mod participants;
mod reads;
mod ws;

use actix_web::{HttpRequest, web};

use crate::error::{ApiError, json_error, query_error};

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body_bytes).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .route("/healthz", web::get().to(health::get_health))
        .route("/readyz", web::get().to(health::get_readiness))
        .route("/metrics", web::get().to(health::get_metrics))
        .route("/messaging", web::get().to(ws::open_socket))
        .service(
            web::scope("/v1/messaging")
                .route("/chats", web::post().to(chats::create_chat))
                .route("/chats", web::get().to(chats::list_chats))
                .route("/chats/{chat_id}", web::get().to(chats::get_chat))
                .route("/chats/{chat_id}/messages", web::post().to(messages::post_message))
                .route("/chats/{chat_id}/messages", web::get().to(messages::list_messages))
                .route("/chats/{chat_id}/messages/{message_id}", web::patch().to(edits::edit_message))
                .route("/chats/{chat_id}/messages/{message_id}", web::delete().to(edits::delete_message))
                .route("/chats/{chat_id}/read", web::post().to(reads::mark_read))
                .route("/chats/{chat_id}/typing", web::post().to(reads::set_typing))
                .route("/chats/{chat_id}/presence", web::get().to(reads::get_presence))
                .route("/chats/{chat_id}/participants", web::post().to(participants::add_participants))
                .route("/chats/{chat_id}/participants/{user_id}", web::delete().to(participants::remove_participant)),
        )
        .default_service(web::to(no_route));
}

async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())))
}

/// Runs `work` as its own task, so a client that disconnects mid-request cannot cancel
/// it between the commit and the publish (which would lose the push).
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}
