//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json` with Swagger UI at `/docs` (assets compiled in: nothing is fetched).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{chats, demo, edits, health, messages, participants, reads, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Missive",
        description = "Real-time messaging: REST for actions, WebSocket for push. Every REST call needs \
            `Authorization: Bearer <jwt>` (or the `sAccessToken` cookie). Errors are \
            `{\"error\": \"<code>\", \"message\": \"<text>\"}`."
    ),
    paths(
        health::get_health,
        health::get_readiness,
        health::get_metrics,
        ws::open_socket,
        chats::create_chat,
        chats::list_chats,
        chats::get_chat,
        messages::post_message,
        messages::list_messages,
        edits::edit_message,
        edits::delete_message,
        reads::mark_read,
        reads::set_typing,
        reads::get_presence,
        participants::add_participants,
        participants::remove_participant,
        demo::get_demo_page,
        demo::get_demo_script,
        demo::get_demo_style,
        demo::create_dev_token,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build());
        doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", scheme);
    }
}

pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi())
}
