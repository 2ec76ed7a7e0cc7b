//! Who is calling over HTTP: the API gateway with `http.gateway_secret` as its bearer
//! (compared in constant time; trusted like Kafka), or a user proving itself with an API key
//! (`Bearer tg_…`) or a JWT (`Bearer eyJ…`, see [`Service::authenticate`]). No bearer, or one
//! that proves nothing, is 401 `{"error":"auth failure"}`.

use crate::config::Secret;
use crate::protocol::IamError;
use crate::service::{Principal, Service};
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The API gateway: it authorised its own caller already.
    Gateway,
    User(Principal),
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

    /// The caller behind the request's bearer; `Ok(None)` when there is none or it proves
    /// nothing. A database failure is an error, not a denial.
    pub async fn caller(&self, req: &HttpRequest, service: &Service) -> Result<Option<Caller>, IamError> {
        let Some(token) = bearer(req) else { return Ok(None) };
        if let Some(secret) = &self.gateway_secret {
            if bool::from(digest(token).ct_eq(secret)) {
                return Ok(Some(Caller::Gateway));
            }
        }
        let origin = super::authentications::origin(req);
        Ok(service.authenticate_from(token, &origin).await?.map(Caller::User))
    }
}

/// The user behind the request's bearer when its roles grant the system-wide `capability`
/// (`/metrics`, the audit endpoints); otherwise the reply to send: 401 without a valid user
/// bearer (the gateway secret is not one), 403 without the capability, 503 when the database
/// cannot tell. A refused bearer is recorded in the authentication audit with the client's
/// address and the request id.
pub async fn user_with(
    req: &HttpRequest,
    service: &Service,
    capability: &str,
) -> Result<crate::service::Principal, HttpResponse> {
    let Some(token) = bearer(req) else { return Err(unauthorized()) };
    let origin = super::authentications::origin(req);
    let principal = match service.authenticate_from(token, &origin).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return Err(unauthorized()),
        Err(e) => return Err(super::error_body(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, e)),
    };
    if !crate::authz::allows(&principal.roles, &principal.workspace, capability, None) {
        return Err(forbidden());
    }
    Ok(principal)
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
