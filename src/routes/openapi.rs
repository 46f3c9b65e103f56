//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json` with Swagger UI at `/docs` (assets compiled in: nothing is fetched).

use serde_json::{Value, json};
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

/// The document as served: generated from the handlers, then completed in JSON (utoipa's
/// types cannot hold `anyOf` on an object schema, and its attributes take only literal
/// patterns): what many operations answer (`answers_everywhere`), the rules of request
/// values (`schema::constrain`) and the links between operations (`add_links`).
pub fn document() -> Value {
    let mut value = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    answers_everywhere(&mut value);
    let missing = super::schema::constrain(&mut value);
    debug_assert!(missing.is_empty(), "rules without a place: {missing:?}");
    add_links(&mut value);
    value
}

/// What the server answers on many operations, added in one place so that no operation
/// can forget it: 400, 413 and 415 wherever there is a JSON body, 429 and the
/// `X-RateLimit-*` headers wherever a rate applies.
fn answers_everywhere(value: &mut Value) {
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let allowance = json!({
        "X-RateLimit-Limit": {"description": "Requests allowed back to back", "schema": {"type": "integer"}},
        "X-RateLimit-Remaining": {"description": "Requests left now", "schema": {"type": "integer"}},
        "X-RateLimit-Reset": {"description": "Seconds until the full allowance is back", "schema": {"type": "integer"}},
    });
    let Some(paths) = value["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            let has_body = op.get("requestBody").is_some();
            let responses = &mut op["responses"];
            if has_body {
                for (status, text) in [
                    ("400", "Invalid request"),
                    ("413", "Body larger than the limit (256 KiB by default)"),
                    ("415", "The body is not `application/json`"),
                ] {
                    if responses.get(status).is_none() {
                        responses[status] = json!({"description": text, "content": error});
                    }
                }
            }
            if super::RATE_LIMITED.contains(&(method.as_str(), path.as_str())) {
                let mut headers = allowance.clone();
                headers["Retry-After"] = json!({"description": "Seconds to wait", "schema": {"type": "integer"}});
                responses["429"] = json!({"description": "Too many requests of this kind; see Retry-After",
                    "headers": headers, "content": error});
                for (status, response) in responses.as_object_mut().into_iter().flatten() {
                    if status.starts_with('2') {
                        response["headers"] = allowance.clone();
                    }
                }
            }
        }
    }
}

/// The ids a created chat or message hands to the operations that use them.
fn add_links(doc: &mut Value) {
    let chat = "$response.body#/id";
    let chat_links = json!({
        "GetChat": {"operationId": "get_chat", "parameters": {"chat_id": chat}},
        "PostMessage": {"operationId": "post_message", "parameters": {"chat_id": chat}},
        "ListMessages": {"operationId": "list_messages", "parameters": {"chat_id": chat}},
        "MarkRead": {"operationId": "mark_read", "parameters": {"chat_id": chat}},
        "SetTyping": {"operationId": "set_typing", "parameters": {"chat_id": chat}},
        "GetPresence": {"operationId": "get_presence", "parameters": {"chat_id": chat}},
        "AddParticipants": {"operationId": "add_participants", "parameters": {"chat_id": chat}},
    });
    let message = json!({"chat_id": "$response.body#/chatId", "message_id": "$response.body#/id"});
    let message_links = json!({
        "EditMessage": {"operationId": "edit_message", "parameters": message},
        "DeleteMessage": {"operationId": "delete_message", "parameters": message},
    });
    let paths = &mut doc["paths"];
    paths["/v1/messaging/chats"]["post"]["responses"]["201"]["links"] = chat_links;
    for status in ["200", "201"] {
        let response = &mut paths["/v1/messaging/chats/{chat_id}/messages"]["post"]["responses"][status];
        if response.is_object() {
            response["links"] = message_links.clone();
        }
    }
}

pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").external_url_unchecked("/openapi.json", document())
}
