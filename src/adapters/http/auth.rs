//! Who is calling over HTTP — authentication only; what a caller may do is decided by the
//! service for every transport ([`crate::service::access`]). One [`Gatekeeper::authenticate`]
//! for every endpoint: the API gateway with `http.gateway_secret` as its bearer (compared in
//! constant time), or a user proving itself with an API key (`Bearer tg_…`) or a JWT
//! (`Bearer eyJ…`, see [`Service::authenticate_from`]). A bearer that proves nothing is 401
//! `{"error":"auth failure"}`.

use super::HttpState;
use crate::config::Secret;
use crate::protocol::IamError;
use crate::service::observe::ReadFailure;
use crate::service::{Caller, Refusal, Service};
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whom an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// The protocol endpoint: the gateway (its secret) and users.
    GatewayAndUsers,
    /// Everything else: users only. The gateway's secret is no user's bearer here, and a
    /// failure like any other bearer that proves nothing (recorded as such).
    Users,
}

pub struct Gatekeeper {
    /// SHA-256 of the gateway secret, when one is configured. Comparing digests makes the
    /// comparison constant-time whatever the presented length.
    gateway_secret: Option<[u8; 32]>,
}

impl Gatekeeper {
    pub fn new(gateway_secret: &Secret) -> Self {
        Gatekeeper { gateway_secret: gateway_secret.is_set().then(|| digest(gateway_secret.expose())) }
    }

    /// The caller behind the request's bearer: [`Caller::Anonymous`] without one, `Ok(None)`
    /// for one that proves nothing (recorded in the authentication audit with the client's
    /// address and the request id). A database failure is an error, not a denial.
    pub async fn authenticate(
        &self,
        req: &HttpRequest,
        service: &Service,
        serves: Serves,
    ) -> Result<Option<Caller>, IamError> {
        let Some(token) = bearer(req) else { return Ok(Some(Caller::Anonymous)) };
        if let Some(secret) = self.gateway_secret.as_ref().filter(|_| serves == Serves::GatewayAndUsers) {
            if bool::from(digest(token).ct_eq(secret)) {
                return Ok(Some(Caller::Gateway));
            }
        }
        let origin = super::authentications::origin(req);
        Ok(service.authenticate_from(token, &origin).await?.map(Caller::User))
    }
}

/// The caller of an endpoint that serves users only ([`Serves::Users`]): a user, or anonymous
/// without a bearer; otherwise the reply to send — 401 for a bearer that proves nothing, 503
/// when the database cannot tell.
pub async fn user_caller(req: &HttpRequest, state: &HttpState) -> Result<Caller, HttpResponse> {
    match state.gatekeeper.authenticate(req, &state.service, Serves::Users).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(super::error_body(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

/// The HTTP reply to a read the service did not answer: 401, 403, 400 or 503.
pub fn read_failed(failure: ReadFailure) -> HttpResponse {
    use actix_web::http::StatusCode;
    match failure {
        ReadFailure::Refused(refusal) => refused(refusal),
        ReadFailure::Invalid(e) => super::error_body(StatusCode::BAD_REQUEST, e),
        ReadFailure::Unavailable(e) => super::error_body(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// The HTTP reply to a request the service did not let through.
pub fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Unauthenticated => unauthorized(),
        Refusal::Forbidden => forbidden(),
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub(super) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", "Bearer"))
        .json(serde_json::json!({"error": "auth failure"}))
}

pub fn forbidden() -> HttpResponse {
    HttpResponse::Forbidden().json(serde_json::json!({"error": "access denied"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_is_parsed_case_insensitively_and_must_be_non_empty() {
        let r = TestRequest::default().insert_header((AUTHORIZATION, "bearer abc")).to_http_request();
        assert_eq!(bearer(&r), Some("abc"));
        let r = TestRequest::default().insert_header((AUTHORIZATION, "Basic abc")).to_http_request();
        assert_eq!(bearer(&r), None);
        let r = TestRequest::default().insert_header((AUTHORIZATION, "Bearer ")).to_http_request();
        assert_eq!(bearer(&r), None);
        assert_eq!(bearer(&TestRequest::default().to_http_request()), None);
    }
}
