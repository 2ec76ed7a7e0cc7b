//! The HTTP adapter (actix-web): `POST /api/v1/iam` takes an `IamRequest` and returns an
//! `IamResponse` — protocol errors travel in the body's `error` with status 200, as the seed's
//! forwarder does; malformed JSON and unknown operations are 400, an oversized body 413, a
//! missing or wrong bearer 401, an operation the caller's roles do not grant 403 ([`access`]).
//! `GET /healthz` is 200 while the database answers; `GET /.well-known/jwks.json` publishes
//! the keys that verify iamd's tokens.

pub mod access;
mod auth;
pub mod rest;

use crate::protocol::{IamError, IamRequest, IamResponse, Operation};
use crate::service::Service;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

pub use auth::{Caller, Gatekeeper};

/// What the handlers share.
pub struct HttpState {
    pub service: Service,
    pub gatekeeper: Gatekeeper,
    pub max_body_bytes: usize,
}

/// Mounts the routes on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Before the REST scope, which answers every other path under /api/v1.
    cfg.route("/api/v1/iam", web::post().to(iam))
        .configure(rest::routes)
        .route("/healthz", web::get().to(healthz))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .default_service(web::to(not_found));
}

fn error_body(status: StatusCode, error: IamError) -> HttpResponse {
    HttpResponse::build(status).json(IamResponse::error(error))
}

async fn iam(req: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    let caller = match state.gatekeeper.caller(&req, &state.service).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return auth::unauthorized(),
        Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let body = match read_body(payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut request = match IamRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    let op = match Operation::parse(&request.operation) {
        Ok(op) => op,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    if let Caller::User(principal) = &caller {
        match access::permits(principal, op, &mut request, &state.service).await {
            Ok(true) => {}
            Ok(false) => return auth::forbidden(),
            Err(e) => return HttpResponse::Ok().json(IamResponse::error(e)),
        }
    }
    HttpResponse::Ok().json(state.service.handle(request, "http").await)
}

/// RFC 7517: the Ed25519 keys (OKP) that verify iamd's tokens now — the active key and the
/// keys still in their grace period after a rotation.
async fn jwks(state: web::Data<HttpState>) -> HttpResponse {
    match state.service.jwks().await {
        Ok(keys) => HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(keys),
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    }
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
