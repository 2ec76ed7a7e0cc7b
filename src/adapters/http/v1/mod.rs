//! Netsoc's `/v1` surface (`docs/netsoc.md`), exactly as its OpenAPI document and its clients
//! know it, over the accounts of `compat.workspace` — other workspaces are invisible here.
//! Errors are `{"message"}` as `application/problem+json` with Netsoc's texts; the router
//! answers 404 `API endpoint not found` and 405 `method not allowed on API endpoint`; a bearer
//! that is not a JWT is 401 on every route, `/health` included, as upstream's claims
//! middleware does. The accounts are iamd's: every write is the same command, rule and
//! event as through any other surface; tokens are ES256 (`service::netsoc`).

mod body;
mod fields;
mod login;
mod request;
mod users;

use super::HttpState;
use crate::protocol::{ErrorKind, IamError};
use crate::service::netsoc::{text, NetsocCaller};
use crate::service::Refusal;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

pub use login::*;
pub use users::*;

/// Netsoc's error media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.route("/health", web::to(health)).service(
        web::scope("/v1")
            .service(resource("/users").route(web::get().to(list_users)).route(web::post().to(create_user)))
            .service(resource("/users/id:{uid:[0-9]+}").route(web::get().to(get_user_by_id)))
            .service(
                resource("/users/{username}")
                    .route(web::get().to(get_user))
                    .route(web::patch().to(update_user))
                    .route(web::delete().to(delete_user)),
            )
            .service(
                resource("/users/{username}/login")
                    .route(web::post().to(login))
                    .route(web::delete().to(logout))
                    .route(web::patch().to(verify))
                    .route(web::put().to(reset_password)),
            )
            .service(
                resource("/users/{username}/token")
                    .route(web::get().to(validate_token))
                    .route(web::post().to(issue_token)),
            )
            .default_service(web::to(not_found)),
    );
}

/// `{"message": …}` as `application/problem+json`.
pub fn problem(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    let message: String = message.into();
    HttpResponse::build(status).content_type(PROBLEM_JSON).json(serde_json::json!({ "message": message }))
}

/// Netsoc's status of an error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::WeakPassword => StatusCode::BAD_REQUEST,
        ErrorKind::AuthFailed => StatusCode::UNAUTHORIZED,
        ErrorKind::OperationNotPermitted => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Duplicate | ErrorKind::Disabled => StatusCode::CONFLICT,
        ErrorKind::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(e: IamError) -> HttpResponse {
    problem(status_of(e.kind), e.message)
}

/// What the access rules said, in Netsoc's words.
fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Unauthenticated => problem(StatusCode::UNAUTHORIZED, text::TOKEN_REQUIRED),
        Refusal::Forbidden => problem(StatusCode::FORBIDDEN, text::ADMIN_REQUIRED),
    }
}

/// Netsoc's liveness probe: 204, whatever the method (a bearer that is not a JWT: 401).
#[utoipa::path(get, path = "/health", tag = "netsoc-v1",
    responses(
        (status = 204, description = "Alive"),
        (status = 401, description = "A bearer that is not a JWT", body = body::Problem, content_type = "application/problem+json"),
    ))]
pub async fn health(http: HttpRequest) -> HttpResponse {
    try_bearer!(&http);
    HttpResponse::NoContent().finish()
}

async fn not_found(http: HttpRequest) -> HttpResponse {
    try_bearer!(&http);
    problem(StatusCode::NOT_FOUND, "API endpoint not found")
}

async fn method_not_allowed(http: HttpRequest) -> HttpResponse {
    try_bearer!(&http);
    problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on API endpoint")
}

/// The request's bearer token (`Authorization: Bearer <token>`, as upstream's pattern reads
/// it), or none; one that does not parse as a JWT is 401 (the message), whatever the route.
fn bearer(http: &HttpRequest) -> Result<Option<&str>, &'static str> {
    let Some(value) = http.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(rest) = value.strip_prefix("Bearer") else { return Ok(None) };
    let token = rest.trim_start();
    if token.len() == rest.len() || token.is_empty() || token.chars().any(char::is_whitespace) {
        return Ok(None);
    }
    unverified_claims(token).map(|()| Some(token))
}

/// [`bearer`], returning its 401 from the handler.
macro_rules! try_bearer {
    ($http:expr) => {
        match bearer($http) {
            Ok(token) => token,
            Err(message) => return problem(StatusCode::UNAUTHORIZED, message),
        }
    };
}
use try_bearer;

/// A claim's name and the check of its JSON type.
type ClaimCheck<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

/// Whether `token` parses as a JWT with Netsoc's claim types, unverified (upstream's claims
/// middleware, with jwt-go's messages).
fn unverified_claims(token: &str) -> Result<(), &'static str> {
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("token contains an invalid number of segments");
    }
    let decode = |part: &str| -> Option<Value> {
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
    };
    let header = decode(parts[0]).ok_or("token is malformed: could not decode the header")?;
    if !header.get("alg").is_some_and(Value::is_string) {
        return Err("token is malformed: the header names no algorithm");
    }
    let claims = decode(parts[1]).ok_or("token is malformed: could not decode the claims")?;
    let string = |v: &Value| v.is_string();
    let number = |v: &Value| v.is_number();
    let audience = |v: &Value| v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    let checks: [ClaimCheck; 9] = [
        ("sub", &string),
        ("iss", &string),
        ("jti", &string),
        ("exp", &number),
        ("iat", &number),
        ("nbf", &number),
        ("aud", &audience),
        ("is_admin", &|v: &Value| v.is_boolean()),
        ("version", &|v: &Value| v.is_u64()),
    ];
    for (name, ok) in checks {
        if claims.get(name).is_some_and(|v| !v.is_null() && !ok(v)) {
            return Err("token is malformed: a claim has the wrong type");
        }
    }
    Ok(())
}

/// The caller behind the request's bearer: none (401 `a valid token is required…`), one
/// that is not good (401, 404 for a deleted user), or the caller; `valid`: an expired token
/// is refused too.
async fn caller(http: &HttpRequest, state: &HttpState, valid: bool) -> Result<NetsocCaller, HttpResponse> {
    let token = bearer(http).map_err(|message| problem(StatusCode::UNAUTHORIZED, message))?;
    let Some(token) = token else {
        return Err(problem(StatusCode::UNAUTHORIZED, text::TOKEN_REQUIRED));
    };
    let origin = super::authentications::origin(http);
    state.service.netsoc_caller(&state.compat_workspace, token, valid, &origin).await.map_err(error)
}

/// The caller, who must be an admin whose token has not expired (403 otherwise).
async fn valid_admin(http: &HttpRequest, state: &HttpState) -> Result<NetsocCaller, HttpResponse> {
    let caller = caller(http, state, true).await?;
    if !caller.user.is_admin {
        return Err(problem(StatusCode::FORBIDDEN, text::ADMIN_REQUIRED));
    }
    Ok(caller)
}

/// Whether the request's `Accept` names `text/html` (the mail then carries a link).
fn accepts_html(http: &HttpRequest) -> bool {
    super::rest::accepts_html(http)
}

macro_rules! try_or_respond {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}
use try_or_respond;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_jwt_shaped_bearer_passes_the_claims_check() {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token =
            |claims: Value| format!("{}.{}.sig", b64(serde_json::json!({"alg": "ES256"})), b64(claims));
        assert!(
            unverified_claims(&token(serde_json::json!({"sub": "1", "aud": ["auth"], "exp": 1.5}))).is_ok()
        );
        assert!(
            unverified_claims(&token(serde_json::json!({"sub": "1", "aud": "auth", "version": 2}))).is_ok()
        );
        assert!(unverified_claims("not-a-jwt").is_err());
        assert!(unverified_claims("a.b.c").is_err());
        assert!(unverified_claims(&token(serde_json::json!({"sub": 1}))).is_err());
        assert!(unverified_claims(&token(serde_json::json!({"exp": "soon"}))).is_err());
        assert!(unverified_claims(&token(serde_json::json!({"version": -1}))).is_err());
    }

    #[test]
    fn every_error_kind_has_netsocs_status() {
        let statuses: Vec<u16> = [
            ErrorKind::InvalidArgument,
            ErrorKind::WeakPassword,
            ErrorKind::AuthFailed,
            ErrorKind::OperationNotPermitted,
            ErrorKind::NotFound,
            ErrorKind::Duplicate,
            ErrorKind::InternalError,
        ]
        .into_iter()
        .map(|k| status_of(k).as_u16())
        .collect();
        assert_eq!(statuses, [400, 400, 401, 403, 404, 409, 500]);
    }
}
