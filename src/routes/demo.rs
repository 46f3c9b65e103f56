//! The demo page at `/`: plain HTML, CSS and JavaScript compiled into the binary, so the
//! server needs nothing else to show a working chat. In dev auth the page asks
//! `POST /dev/token` for a token; that endpoint answers only callers on this machine and
//! is a plain 404 (the same body as an unknown route) for everyone else.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

use crate::domain::{UserId, rfc3339_millis};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

const PAGE: &str = include_str!("demo/index.html");
const SCRIPT: &str = include_str!("demo/demo.js");
const STYLE: &str = include_str!("demo/demo.css");

/// Long enough for a demo session; the page mints a new one when the socket closes with 4001.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// A user id is at most 128 bytes: a larger body is not a token request.
const DEV_TOKEN_BODY_LIMIT: usize = 1024;

/// GET / — the demo page.
#[utoipa::path(get, path = "/", tag = "demo", security(),
    description = "A small chat client (HTML, no build step, nothing fetched from elsewhere).",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub async fn get_demo_page(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy(&req)))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// GET /demo.js — the demo page's script.
#[utoipa::path(get, path = "/demo.js", tag = "demo", security(),
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn get_demo_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(SCRIPT)
}

/// GET /demo.css — the demo page's style sheet.
#[utoipa::path(get, path = "/demo.css", tag = "demo", security(),
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub async fn get_demo_style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(STYLE)
}

/// Scripts, styles and connections from this origin only; nothing inline. The socket's
/// `ws://` origin is named too, because older browsers do not count it as `'self'`.
fn content_security_policy(req: &HttpRequest) -> String {
    let socket = request_host(req).map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'{socket}; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The `Host` header, only when it cannot smuggle anything into another header.
fn request_host(req: &HttpRequest) -> Option<&str> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let safe = host.len() <= 255 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    (safe && !host.is_empty()).then_some(host)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenRequest {
    /// 1-128 characters of `[A-Za-z0-9._@:-]`.
    user_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    token: String,
    /// RFC 3339.
    expires_at: String,
}

/// POST /dev/token — a token for any user, in dev auth, for callers on this machine only.
#[utoipa::path(post, path = "/dev/token", tag = "demo", security(), request_body = DevTokenRequest,
    description = "Dev auth only, and only from a loopback address: mints a 12-hour token for the demo page. \
        Everyone else gets the 404 of an unknown route.",
    responses((status = 200, description = "A token", body = DevToken), (status = 400, description = "Invalid user id", body = ErrorBody),
        (status = 404, description = "Not dev auth, or not called from this machine", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)))]
pub async fn create_dev_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Checked before the body is read, so no status but 404 can tell a remote caller anything.
    if !state.auth.is_dev() || !from_this_machine(&req) {
        return Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())));
    }
    // A JSON content type forces a CORS preflight on cross-site callers, which we never allow.
    let json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !json.is_some_and(|v| v.starts_with("application/json")) {
        return Err(ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()));
    }
    let bytes = match body.to_bytes_limited(DEV_TOKEN_BODY_LIMIT).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(ApiError::Validation(format!("invalid request body: {e}"))),
        Err(_) => {
            return Err(ApiError::PayloadTooLarge(format!("the body is larger than {DEV_TOKEN_BODY_LIMIT} bytes")));
        }
    };
    let ask: DevTokenRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Validation(format!("invalid JSON body: {e}")))?;
    let user = UserId::parse(&ask.user_id)?;
    let token = state.auth.mint(&user, DEV_TOKEN_TTL).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Read the expiry back from the token itself, so the two can never disagree.
    let verified = state.auth.verify(&token).map_err(ApiError::Internal)?;
    let expires_at = rfc3339_millis(i64::try_from(verified.expires_at).unwrap_or(i64::MAX / 1000) * 1000);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(DevToken { token, expires_at }))
}

/// True only for a direct connection from a loopback address that names a loopback host.
/// A proxy on this machine makes every caller look local, so forwarded requests are
/// refused; the `Host` check stops a web page whose DNS name was rebound to 127.0.0.1
/// from reading a token as if it were same-origin.
fn from_this_machine(req: &HttpRequest) -> bool {
    let peer_local = req.peer_addr().is_some_and(|a| a.ip().to_canonical().is_loopback());
    let proxied = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"]
        .iter()
        .any(|name| req.headers().contains_key(*name));
    let host = request_host(req).unwrap_or("");
    let origin_ok = match req.headers().get(header::ORIGIN) {
        None => true,
        Some(origin) => origin.to_str().ok() == Some(format!("http://{host}").as_str()),
    };
    peer_local && !proxied && origin_ok && is_loopback_host(host)
}

/// `localhost`, `127.0.0.1:4000`, `[::1]:4000`… with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_count_as_this_machine() {
        for host in ["localhost", "localhost:4000", "127.0.0.1", "127.0.0.1:4000", "127.8.9.1:1", "[::1]:4000"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["", "evil.example", "evil.example:4000", "10.0.0.1:4000", "[::2]:4000", "localhost.evil.example"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
