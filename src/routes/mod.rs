//! The URL table: every route on one screen. Handlers are named `verb_noun` and live
//! one file per resource.

mod body;
mod chats;
mod demo;
mod edits;
mod health;
mod limited;
mod messages;
mod openapi;
mod participants;
mod reads;
mod schema;
mod ws;

pub use openapi::ApiDoc;

use actix_web::{HttpRequest, web};

use crate::error::{ApiError, json_error, query_error};

/// Declares the URL table once: `register` adds every route, `ROUTES` lists them
/// (the OpenAPI test checks that each one is documented), `RATE_LIMITED` those marked
/// `[limited]` (their handler takes from a per-user limit; the document says 429).
macro_rules! url_table {
    ($($method:ident $path:literal => $handler:path $([$limited:ident])?,)*) => {
        /// Every route as `(method, path)`, in registration order.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// The routes with a per-user rate limit.
        pub const RATE_LIMITED: &[(&str, &str)] = &[$($(marked!($limited, (stringify!($method), $path)),)?)*];

        fn register(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

/// `$x`, for rows that carry the marker.
macro_rules! marked {
    (limited, $x:expr) => {
        $x
    };
}

url_table! {
    get    "/healthz"                                                 => health::get_health,
    get    "/readyz"                                                  => health::get_readiness,
    get    "/metrics"                                                 => health::get_metrics,
    get    "/messaging"                                               => ws::open_socket,
    post   "/v1/messaging/chats"                                      => chats::create_chat [limited],
    get    "/v1/messaging/chats"                                      => chats::list_chats,
    get    "/v1/messaging/chats/{chat_id}"                            => chats::get_chat,
    post   "/v1/messaging/chats/{chat_id}/messages"                   => messages::post_message [limited],
    get    "/v1/messaging/chats/{chat_id}/messages"                   => messages::list_messages,
    patch  "/v1/messaging/chats/{chat_id}/messages/{message_id}"      => edits::edit_message [limited],
    delete "/v1/messaging/chats/{chat_id}/messages/{message_id}"      => edits::delete_message [limited],
    post   "/v1/messaging/chats/{chat_id}/read"                       => reads::mark_read [limited],
    post   "/v1/messaging/chats/{chat_id}/typing"                     => reads::set_typing [limited],
    get    "/v1/messaging/chats/{chat_id}/presence"                   => reads::get_presence,
    post   "/v1/messaging/chats/{chat_id}/participants"               => participants::add_participants [limited],
    delete "/v1/messaging/chats/{chat_id}/participants/{user_id}"     => participants::remove_participant [limited],
    get    "/"                                                        => demo::get_demo_page,
    get    "/demo.js"                                                 => demo::get_demo_script,
    get    "/demo.css"                                                => demo::get_demo_style,
    post   "/dev/token"                                               => demo::create_dev_token,
}

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body_bytes).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("not found".into()).into()))
        .service(openapi::swagger_ui())
        .configure(register)
        .default_service(web::to(no_route));
}

/// The operations listener (`metrics_bind`): the metrics and nothing else, so it can be
/// reachable by the scraper only.
pub fn configure_operations(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(health::render_metrics)).default_service(web::to(no_route));
}

/// A path of the URL table asked with another method is a 405 naming the methods it has
/// (RFC 9110 §15.5.6); any other path is a 404.
async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = methods_of(req.path());
    if allowed.is_empty() {
        return Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())));
    }
    Err(ApiError::MethodNotAllowed { allow: allowed.join(", ") })
}

/// The methods the URL table has for `path` (patterns compiled once).
fn methods_of(path: &str) -> Vec<&'static str> {
    static TABLE: std::sync::OnceLock<Vec<(actix_web::dev::ResourceDef, &'static str)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        ROUTES.iter().map(|(method, pattern)| (actix_web::dev::ResourceDef::new(*pattern), upper(method))).collect()
    });
    let mut methods: Vec<&'static str> = Vec::new();
    for (def, method) in table {
        if def.is_match(path) && !methods.contains(method) {
            methods.push(method);
        }
    }
    methods
}

/// The URL table names methods as `web::` functions do.
fn upper(method: &str) -> &'static str {
    match method {
        "get" => "GET",
        "post" => "POST",
        "put" => "PUT",
        "patch" => "PATCH",
        "delete" => "DELETE",
        _ => "HEAD",
    }
}
