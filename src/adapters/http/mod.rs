//! The HTTP adapter (actix-web): `POST /api/v1/iam` takes an `IamRequest` and returns an
//! `IamResponse` — protocol errors travel in the body's `error` with status 200, as the seed's
//! forwarder does; malformed JSON and unknown operations are 400, an oversized body 413, a
//! missing or wrong bearer 401. `GET /healthz` is 200 while the database answers.

mod auth;

use crate::protocol::{IamError, IamRequest, IamResponse, Operation};
use crate::service::Service;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

pub use auth::Gatekeeper;

/// What the handlers share.
pub struct HttpState {
    pub service: Service,
    pub gatekeeper: Gatekeeper,
    pub max_body_bytes: usize,
}

/// Mounts the routes on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/iam", web::post().to(iam))
        .route("/healthz", web::get().to(healthz))
        .default_service(web::to(not_found));
}

fn error_body(status: StatusCode, error: IamError) -> HttpResponse {
    HttpResponse::build(status).json(IamResponse::error(error))
}

async fn iam(req: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    if !state.gatekeeper.admits(&req, &state.service).await {
        return auth::unauthorized();
    }
    let body = match read_body(payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request = match IamRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    if let Err(e) = Operation::parse(&request.operation) {
        return error_body(StatusCode::BAD_REQUEST, e);
    }
    HttpResponse::Ok().json(state.service.handle(request, "http").await)
}

/// Reads at most `limit` bytes; more is 413 without reading the rest.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            error_body(StatusCode::BAD_REQUEST, IamError::invalid("the request body could not be read"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                IamError::invalid(format!("request body is larger than {limit} bytes")),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn healthz(state: web::Data<HttpState>) -> HttpResponse {
    if state.service.queries().ping().await {
        HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unavailable"}))
    }
}

async fn not_found() -> HttpResponse {
    error_body(StatusCode::NOT_FOUND, IamError::not_found("no such endpoint"))
}
