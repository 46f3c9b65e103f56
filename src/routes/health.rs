use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// GET /healthz — the process is up.
pub async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// GET /readyz — the database answers.
pub async fn get_readiness(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "database": state.db.backend_name()})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"error": "unavailable", "message": "the database is not reachable"}))
        }
    }
}

/// GET /metrics — Prometheus text format.
pub async fn get_metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::metrics().render())
}
