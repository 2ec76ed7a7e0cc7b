//! The operations endpoints. `GET /metrics`: the Prometheus metrics ([`crate::metrics`]) for a
//! user whose roles grant `metrics:read` (an admin), by API key or JWT — no bearer or one
//! that proves nothing is 401, any other user 403. `GET /readyz`: 200 once this process can
//! serve (database answering, schema migrated, an active signing key), else 503 with a short
//! reason. (`GET /healthz`, liveness, stays in the adapter's root.)

use super::{auth, HttpState};
use crate::metrics::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics)).route("/readyz", web::get().to(readyz));
}

async fn metrics(req: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let caller = match auth::user_caller(&req, &state).await {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let text = match state.service.metrics_text(&caller).await {
        Ok(text) => text,
        Err(failure) => return auth::read_failed(failure),
    };
    HttpResponse::Ok().content_type(CONTENT_TYPE).insert_header(("Cache-Control", "no-store")).body(text)
}

async fn readyz(state: web::Data<HttpState>) -> HttpResponse {
    match state.service.queries().readiness().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(reason) => {
            tracing::warn!(reason, "not ready");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "not ready", "reason": reason}))
        }
    }
}
