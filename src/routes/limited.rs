//! Rate-limited writes: every handler a client can repeat takes one unit of the caller's
//! allowance first; none left is a 429 with `Retry-After`, and every answer carries the
//! `X-RateLimit-*` headers.

use actix_web::{HttpResponse, HttpResponseBuilder};

use crate::domain::UserId;
use crate::error::ApiError;
use crate::limits::{Allowance, UserLimiter};

/// Takes one unit of `user`'s allowance (over every node in cluster mode), or answers 429.
pub(super) async fn take(limiter: &UserLimiter, user: &UserId) -> Result<Allowance, ApiError> {
    limiter.take(user).await.map_err(|wait| ApiError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        limit: limiter.limit(),
    })
}

/// A response builder for `status` with the caller's remaining allowance.
pub(super) fn respond(mut res: HttpResponseBuilder, allowance: Allowance) -> HttpResponseBuilder {
    res.insert_header(("X-RateLimit-Limit", allowance.limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", allowance.remaining.to_string()))
        .insert_header(("X-RateLimit-Reset", allowance.reset_secs.to_string()));
    res
}

/// A 204 with the caller's remaining allowance.
pub(super) fn no_content(allowance: Allowance) -> HttpResponse {
    respond(HttpResponse::NoContent(), allowance).finish()
}
