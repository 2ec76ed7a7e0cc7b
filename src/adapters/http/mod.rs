//! The HTTP adapter (actix-web): `POST /api/v1/iam` takes an `IamRequest` and returns an
//! `IamResponse` — protocol errors travel in the body's `error` with status 200, as the seed's
//! forwarder does; malformed JSON and unknown operations are 400, an oversized body 413, a
//! missing or wrong bearer 401, an operation the caller's roles do not grant 403 (decided by
//! the service: [`crate::service::access`]; this adapter only authenticates, [`auth`]).
//! `GET /healthz` is 200 while the database answers; `GET /.well-known/jwks.json` publishes
//! the keys that verify iamd's tokens.

mod auth;
mod authentications;
mod bodies;
mod feed;
pub mod openapi;
mod ops;
mod query;
pub mod request_id;
pub mod rest;
pub mod v1;

use crate::crypto::KeyAlgorithm;
use crate::protocol::{IamError, IamRequest, IamResponse, Operation};
use crate::service::{Caller, Service};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

pub use auth::Gatekeeper;

/// What the handlers share.
pub struct HttpState {
    pub service: Service,
    pub gatekeeper: Gatekeeper,
    pub max_body_bytes: usize,
    /// The workspace Netsoc's `/v1` surface serves (`compat.workspace`).
    pub compat_workspace: String,
}

/// Mounts the routes on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // These come before the REST scope, which answers every other path under /api/v1.
    cfg.route("/api/v1/iam", web::post().to(iam))
        .configure(openapi::routes)
        .configure(feed::routes)
        .configure(authentications::routes)
        .configure(rest::routes)
        .configure(v1::routes)
        .route("/healthz", web::get().to(healthz))
        .configure(ops::routes)
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .default_service(web::to(not_found));
}

fn error_body(status: StatusCode, error: IamError) -> HttpResponse {
    HttpResponse::build(status).json(IamResponse::error(error))
}

/// The IAM service protocol: one `IamRequest` in, one `IamResponse` out. Protocol errors
/// travel in the body's `error` with status 200, as the seed's forwarder does.
#[utoipa::path(post, path = "/api/v1/iam", tag = "protocol", request_body = IamRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "The reply, or a protocol error in its `error`", body = IamResponse),
        (status = 400, description = "Malformed JSON, a field of the wrong type, an unknown operation", body = IamResponse),
        (status = 401, description = "No valid bearer", body = bodies::Refusal),
        (status = 403, description = "The caller's roles do not grant the operation", body = bodies::Refusal),
        (status = 413, description = "The body is larger than http.max_body_bytes", body = IamResponse),
    ))]
pub async fn iam(req: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    let caller =
        match state.gatekeeper.authenticate(&req, &state.service, auth::Serves::GatewayAndUsers).await {
            // The protocol endpoint serves the gateway and users: a bearer is required.
            Ok(Some(Caller::Anonymous) | None) => return auth::unauthorized(),
            Ok(Some(caller)) => caller,
            Err(e) => return error_body(StatusCode::SERVICE_UNAVAILABLE, e),
        };
    let body = match read_body(&req, payload, state.max_body_bytes).await {
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
    match state.service.handle_as(&caller, request, &authentications::origin(&req)).await {
        Ok(response) => HttpResponse::Ok().json(response),
        Err(refusal) => auth::refused(refusal),
    }
}

/// RFC 7517: the keys that verify iamd's tokens now — the active Ed25519 key (OKP) and the
/// active P-256 key (EC) of the `/v1` tokens, and the keys still in their grace period after
/// a rotation.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "signing-keys",
    responses(
        (status = 200, description = "The verifying keys", body = bodies::JwkSet),
        (status = 503, description = "internal-error: the database is unavailable", body = bodies::ErrorReply),
    ))]
pub async fn jwks(state: web::Data<HttpState>) -> HttpResponse {
    use base64::Engine;
    match state.service.verifying_keys().await {
        Ok(keys) => {
            let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let keys = keys
                .into_iter()
                .map(|k| {
                    let (kty, x, y) = match k.algorithm {
                        KeyAlgorithm::EdDSA => ("OKP", b64(&k.public), None),
                        // The uncompressed point: 0x04, x, y.
                        KeyAlgorithm::ES256 => {
                            let point = k.public.get(1..).unwrap_or_default();
                            let (x, y) = point.split_at(point.len() / 2);
                            ("EC", b64(x), Some(b64(y)))
                        }
                    };
                    bodies::Jwk {
                        kty: kty.into(),
                        crv: k.algorithm.curve().into(),
                        x,
                        y,
                        kid: k.kid,
                        alg: k.algorithm.as_str().into(),
                        use_: "sig".into(),
                    }
                })
                .collect();
            HttpResponse::Ok()
                .insert_header(("Cache-Control", "public, max-age=300"))
                .json(bodies::JwkSet { keys })
        }
        Err(e) => error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Reads at most `limit` bytes; more is 413 without reading the rest.
/// Whether a body declared with `content_type` may be read as JSON: JSON (`application/json`,
/// `application/…+json`) or no declaration at all. Anything else — `text/plain`, a form,
/// multipart — is what a browser may post across sites without a preflight, so taking it
/// would let any page log a visitor in or call iamd with their cookie-less credentials.
pub fn json_declared(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else { return true };
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The request's body, at most `limit` bytes, when it is declared as JSON (or not declared):
/// else 415, 413 when too large.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, HttpResponse> {
    let declared =
        req.headers().get(actix_web::http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    if !json_declared(declared) {
        return Err(error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IamError::invalid("the request body must be JSON (Content-Type: application/json)"),
        ));
    }
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

/// Liveness: 200 while the database answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "`{\"status\":\"ok\"}`"),
        (status = 503, description = "`{\"status\":\"database unavailable\"}`"),
    ))]
pub async fn healthz(state: web::Data<HttpState>) -> HttpResponse {
    if state.service.queries().ping().await {
        HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unavailable"}))
    }
}

async fn not_found() -> HttpResponse {
    error_body(StatusCode::NOT_FOUND, IamError::not_found("no such endpoint"))
}
