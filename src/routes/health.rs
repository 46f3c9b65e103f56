use actix_web::{HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`
    status: &'static str,
    /// `sqlite` or `postgresql`
    database: &'static str,
}

/// GET /healthz — the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(), responses((status = 200, description = "Up", body = Health)))]
pub async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// GET /readyz — the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The database is not reachable", body = crate::error::ErrorBody)))]
pub async fn get_readiness(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(Readiness { status: "ready", database: state.db.backend_name() }),
        Err(e) => crate::error::ApiError::Unavailable(e.to_string()).error_response(),
    }
}

/// GET /metrics — Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn get_metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::metrics().render())
}
