use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use std::future::{Ready, ready};

use crate::domain::UserId;
use crate::error::ApiError;

use super::Auth;

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    /// The `sAccessToken` cookie: a browser attaches it to requests other sites make,
    /// so a cookie alone does not show that the caller's own page asked.
    Cookie,
    Query,
}

/// The token of a request: `Authorization: Bearer …`, then (only where `allow_query`,
/// i.e. the WebSocket upgrade) `?token=`, then the `sAccessToken` cookie. Credentials the
/// caller chose come before the one the browser attaches by itself, so a page cannot
/// name its own token and be served as the cookie's user.
pub fn token_from_request(req: &HttpRequest, allow_query: bool) -> Option<(String, TokenSource)> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| (t.trim().to_owned(), TokenSource::Bearer));
    bearer
        .or_else(|| {
            allow_query
                .then(|| web::Query::<TokenQuery>::from_query(req.query_string()).ok()?.into_inner().token)
                .flatten()
                .map(|t| (t, TokenSource::Query))
        })
        .or_else(|| req.cookie("sAccessToken").map(|c| (c.value().to_owned(), TokenSource::Cookie)))
        .filter(|(t, _)| !t.is_empty())
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    // The verifier is registered on its own (`web::Data<Auth>`): auth needs nothing else
    // of the application's state.
    let auth =
        req.app_data::<web::Data<Auth>>().ok_or_else(|| ApiError::Internal("Auth missing from app data".into()))?;
    let (token, _) = token_from_request(req, false).ok_or_else(|| {
        ApiError::Unauthorized("missing bearer token (Authorization header or sAccessToken cookie)".into())
    })?;
    let verified = auth.verify(&token).map_err(ApiError::Unauthorized)?;
    Ok(AuthUser { id: verified.user })
}
