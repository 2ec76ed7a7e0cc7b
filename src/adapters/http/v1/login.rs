//! Logging in and out, email verification and password reset on `/v1/users/{u}/login`, and
//! the token operations: validation and issued tokens.

use super::body::{self, DurationBody, PasswordBody, Problem, TokenReply};
use super::request::{bad_request, lookup, metadata, origin, read, request, run, target};
use super::{
    accepts_html, bearer, caller, error, problem, try_bearer, try_or_respond, valid_admin, HttpState,
};
use crate::events::MailPurpose;
use crate::protocol::{IamError, IamRequest, Operation};
use crate::service::netsoc::{self, text};
use crate::service::Caller;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

/// `POST /v1/users/{u}/login` `{"password"}`: `{"token"}`.
#[utoipa::path(post, path = "/v1/users/{username}/login", tag = "netsoc-v1", request_body = PasswordBody,
    params(("username" = String, Path, description = "The username")),
    responses(
        (status = 200, description = "An ES256 token", body = TokenReply),
        (status = 400, description = "A malformed body; login is disabled for this user", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "incorrect password; email address is not verified; a bearer that is not a JWT", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    // A stale token beside a login (the dashboard sends one) is no matter, but a bearer that
    // is not a JWT is 401 here too.
    try_bearer!(&http);
    let bytes = try_or_respond!(read(&http, payload, &state).await);
    let password =
        body::parse::<PasswordBody>(&bytes, &["password"]).map(|b| b.password).map_err(IamError::invalid);
    let origin = origin(&http);
    let login = state.service.netsoc_login(&state.compat_workspace, &path, password, &origin);
    match login.await {
        Ok(token) => HttpResponse::Ok().json(TokenReply { token }),
        Err(e) => error(e),
    }
}

/// `DELETE /v1/users/{u}/login`: every token of the user dies (its version moves on).
#[utoipa::path(delete, path = "/v1/users/{username}/login", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self`")),
    responses(
        (status = 204, description = "Every token of the user is dead"),
        (status = 401, description = "No token, or one not good", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user, and not a valid admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(http: HttpRequest, path: web::Path<String>, state: web::Data<HttpState>) -> HttpResponse {
    let caller = try_or_respond!(caller(&http, &state, false).await);
    let user = try_or_respond!(target(&state, &caller, &path).await);
    let req = IamRequest { user_id: user.user_id.clone(), ..request(Operation::LogoutAll, &state) };
    try_or_respond!(run(&http, &state, &Caller::User(caller.principal.clone()), req).await);
    HttpResponse::NoContent().finish()
}

/// The holder of the request's email token for `purpose`, which must be the account the
/// path names (`self` or its username: 400 `other` otherwise).
async fn email_token_holder(
    http: &HttpRequest,
    state: &HttpState,
    token: &str,
    username: &str,
    purpose: MailPurpose,
    other: &str,
) -> Result<netsoc::EmailTokenHolder, HttpResponse> {
    let holder =
        state.service.netsoc_email_token(&state.compat_workspace, token, purpose, &origin(http)).await;
    let holder = holder.map_err(error)?;
    if username != "self" && username != holder.user.username {
        return Err(problem(StatusCode::BAD_REQUEST, other.to_owned()));
    }
    Ok(holder)
}

/// `PATCH /v1/users/{u}/login`: without a token, mails a verification token; with it, the
/// account is verified.
#[utoipa::path(patch, path = "/v1/users/{username}/login", tag = "netsoc-v1", security((), ("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self` with a token")),
    responses(
        (status = 204, description = "No token: a verification mail was sent. The verification token: verified"),
        (status = 400, description = "email address is already verified; can only verify own account", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token that is not a good verification token, or used already", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The mail could not be sent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(http: HttpRequest, path: web::Path<String>, state: web::Data<HttpState>) -> HttpResponse {
    let operation = Operation::VerifyEmail;
    if let Some(token) = try_bearer!(&http) {
        let purpose = MailPurpose::Verification;
        let holder = try_or_respond!(
            email_token_holder(&http, &state, token, &path, purpose, text::OTHER_VERIFICATION).await
        );
        let verified =
            state.service.netsoc_verify(&state.compat_workspace, &holder, metadata(&http, operation));
        try_or_respond!(verified.await.map_err(error));
        return HttpResponse::NoContent().finish();
    }
    let user = try_or_respond!(lookup(&state, &path).await);
    if user.verified {
        return problem(StatusCode::BAD_REQUEST, text::VERIFIED);
    }
    let metadata = metadata(&http, Operation::RequestVerification);
    let sent = state.service.netsoc_mail(&user, MailPurpose::Verification, accepts_html(&http), metadata);
    try_or_respond!(sent.await.map_err(error));
    HttpResponse::NoContent().finish()
}

/// `PUT /v1/users/{u}/login`: without a token, mails a reset token (verified accounts only);
/// with it and `{"password"}`, sets the password.
#[utoipa::path(put, path = "/v1/users/{username}/login", tag = "netsoc-v1", security((), ("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self` with a token")), request_body = PasswordBody,
    responses(
        (status = 204, description = "No token: a reset mail was sent. The reset token and a password: set"),
        (status = 400, description = "password is required; outside 8–128 or the policy; can only reset password for own account", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "An unverified account; a token that is not a good reset token, or used already", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The mail could not be sent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset_password(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    if let Some(token) = try_bearer!(&http) {
        let purpose = MailPurpose::PasswordReset;
        let holder = try_or_respond!(
            email_token_holder(&http, &state, token, &path, purpose, text::OTHER_RESET).await
        );
        let bytes = try_or_respond!(read(&http, payload, &state).await);
        let b: PasswordBody = try_or_respond!(body::parse(&bytes, &["password"]).map_err(bad_request));
        if b.password.is_empty() {
            return problem(StatusCode::BAD_REQUEST, text::PASSWORD_REQUIRED);
        }
        let metadata = metadata(&http, Operation::CompletePasswordReset);
        let reset = state.service.netsoc_reset(&state.compat_workspace, &holder, b.password, metadata);
        try_or_respond!(reset.await.map_err(error));
        return HttpResponse::NoContent().finish();
    }
    let user = try_or_respond!(lookup(&state, &path).await);
    if !user.verified {
        return error(netsoc::unauthorized(text::UNVERIFIED));
    }
    let metadata = metadata(&http, Operation::RequestPasswordReset);
    let sent = state.service.netsoc_mail(&user, MailPurpose::PasswordReset, accepts_html(&http), metadata);
    try_or_respond!(sent.await.map_err(error));
    HttpResponse::NoContent().finish()
}

/// `GET /v1/users/self/token`: 204 while the bearer is good (signature, audience, issuer,
/// expiry, the account's current version).
#[utoipa::path(get, path = "/v1/users/self/token", tag = "netsoc-v1", security(("netsoc" = [])),
    responses(
        (status = 204, description = "The token is good (signature, audience, issuer, expiry, the account's version)"),
        (status = 401, description = "It is not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Its user was deleted", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn validate_token(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    if path.as_str() != "self" {
        return super::method_not_allowed(http).await;
    }
    try_or_respond!(caller(&http, &state, true).await);
    HttpResponse::NoContent().finish()
}

/// `POST /v1/users/{u}/token` `{"duration"}` (a valid admin): a token living that long (Go's
/// duration syntax, parsed before the user is looked up; 1s to 876000h).
#[utoipa::path(post, path = "/v1/users/{username}/token", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("username" = String, Path, description = "The username")), request_body = DurationBody,
    responses(
        (status = 200, description = "An ES256 token living `duration`", body = TokenReply),
        (status = 400, description = "failed to parse duration; outside 1s–876000h", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue_token(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = try_or_respond!(valid_admin(&http, &state).await);
    let bytes = try_or_respond!(read(&http, payload, &state).await);
    let b: DurationBody = try_or_respond!(body::parse(&bytes, &["duration"]).map_err(bad_request));
    let Ok(lifetime) = crate::protocol::time::go_duration(b.duration.trim()) else {
        return problem(StatusCode::BAD_REQUEST, "failed to parse duration");
    };
    if lifetime < chrono::Duration::seconds(1)
        || lifetime.num_seconds() > crate::crypto::signing::MAX_ISSUED_LIFETIME_SECONDS
    {
        return problem(StatusCode::BAD_REQUEST, "duration must be between 1s and 876000h");
    }
    let metadata = metadata(&http, Operation::IssueToken);
    let issued =
        state.service.netsoc_issue_token(&caller, &state.compat_workspace, &path, lifetime, metadata);
    match issued.await {
        Ok(token) => HttpResponse::Ok().json(TokenReply { token }),
        Err(e) => error(e),
    }
}
