//! The one error type at the HTTP boundary. Every failure a client can see becomes
//! `{"error": "<snake_code>", "message": "<text>"}` with the matching status.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError};
use serde::Serialize;

use crate::db::DbError;
use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no token, or a token that fails verification.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a participant doing what its role does not allow.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown resource, or one the caller may not see (no existence oracle).
    #[error("{0}")]
    NotFound(String),
    /// 400: the request is malformed or breaks a domain rule.
    #[error("{0}")]
    Validation(String),
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405: the path exists, not with this method; `allow` lists those it has.
    #[error("method not allowed; this path accepts {allow}")]
    MethodNotAllowed { allow: String },
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many requests; retry after this many seconds.
    #[error("rate limit exceeded: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64, limit: u32 },
    /// 503: the database cannot be reached; nothing was written.
    #[error("the service is temporarily unavailable, retry later")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the cause is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

/// Every error response: a stable machine code and a human message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `validation_failed`, `payload_too_large`,
    /// `unsupported_media_type`, `method_not_allowed`, `conflict`, `rate_limited`,
    /// `unavailable`, `internal`.
    pub error: String,
    pub message: String,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Validation(_) => "validation_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn chat_not_found() -> Self {
        Self::NotFound("chat not found".into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Self::Unauthorized(_) = self {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::MethodNotAllowed { allow } = self {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        if let Self::Unavailable(_) = self {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let Self::RateLimited { retry_after_secs, limit } = self {
            res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            res.insert_header(("X-RateLimit-Limit", limit.to_string()));
            res.insert_header(("X-RateLimit-Remaining", "0"));
            res.insert_header(("X-RateLimit-Reset", retry_after_secs.to_string()));
        }
        res.json(ErrorBody { error: self.code().to_owned(), message: self.to_string() })
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::Validation(e.0)
    }
}

/// A query failed inside a handler's own transaction (`Db::write`).
impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => Self::Unavailable(cause),
            DbError::Query(e) => Self::Internal(e.to_string()),
            DbError::Batch(cause) => Self::Internal(cause),
        }
    }
}

/// Maps actix's JSON extractor failures onto our error shapes (wired in `routes::configure`).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::Validation(format!("invalid JSON body: {e}")),
        other => ApiError::Validation(format!("invalid request body: {other}")),
    };
    api.into()
}

/// Query-string failures (`?limit=abc`) are client errors too.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::Validation(format!("invalid query string: {err}")).into()
}
