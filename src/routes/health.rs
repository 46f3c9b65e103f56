use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::error::ApiError;
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
    /// Cluster mode only: `ok`, or `degraded` while Redis is unreachable (the node still
    /// serves: posts commit, local delivery continues, remote messages come from the
    /// database; a load balancer must not drain every node at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<&'static str>,
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
        Ok(()) => {
            let broker = state.cluster.as_ref().map(|c| if c.healthy() { "ok" } else { "degraded" });
            HttpResponse::Ok().json(Readiness { status: "ready", database: state.db.backend_name(), broker })
        }
        Err(e) => crate::error::ApiError::Unavailable(e.to_string()).error_response(),
    }
}

/// GET /metrics — Prometheus text format; a 404 here when `metrics_bind` moves it to a
/// listener of its own.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(),
    description = "Served here unless MISSIVE_METRICS_BIND names a separate listener for it (then 404 here).",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are served on the MISSIVE_METRICS_BIND listener", body = crate::error::ErrorBody)))]
pub async fn get_metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.settings.metrics_bind.is_some() {
        return Err(ApiError::NotFound(format!("no route for GET {}", req.path())));
    }
    Ok(render_metrics().await)
}

/// The metrics themselves, on whichever listener serves them.
pub async fn render_metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::metrics().render())
}
