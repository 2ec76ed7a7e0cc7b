//! `/api/v1/auth/…`: login, change-password, logout-all, token checks, whoami,
//! bootstrap-status, and the account lifecycle: register, verification and password reset.

use super::*;

/// Log in with a username and password; the reply is a JWT for `Authorization: Bearer`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = LoginReply),
        (status = 400, description = "invalid-argument: the body is malformed", body = ErrorReply),
        (status = 401, description = "auth-failed: unknown user, wrong password, disabled user or workspace — one answer for all", body = ErrorReply),
    ))]
pub async fn login(http: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    let b: LoginBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest {
        username: b.username,
        password: b.password,
        workspace: b.workspace,
        ..request(Operation::Login)
    };
    let render = |r: IamResponse| to_json(LoginReply { jwt: r.jwt, jwt_expires: r.jwt_expires });
    run(&http, &state, Who::Public, req, Success::Json(StatusCode::OK, render)).await
}

/// Change the caller's own password (the current one proves it); every earlier token dies.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordBody,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "invalid-argument", body = ErrorReply),
        (status = 401, description = "No valid bearer (`auth failure`), or auth-failed: the current password is wrong", body = ErrorReply),
        (status = 422, description = "weak-password: too short, the username, or one repeated character; or invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
    ))]
pub async fn change_password(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let b: ChangePasswordBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest {
        password: b.password,
        new_password: b.new_password,
        ..request(Operation::ChangePassword)
    };
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

/// Log out everywhere: every token of the user issued so far stops working at once (its API
/// keys keep working). The caller itself, or — with `users:admin` — another user of its
/// workspace (an admin: of any workspace).
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", request_body(content = Option<LogoutAllBody>),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out everywhere"),
        (status = 400, description = "invalid-argument", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Another user, without `users:admin` (access denied), or one of another workspace (operation-not-permitted)", body = ErrorReply),
        (status = 404, description = "not-found: no such user", body = ErrorReply),
        (status = 422, description = "invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
    ))]
pub async fn logout_all(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let b: LogoutAllBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { user_id: b.user_id, ..request(Operation::LogoutAll) };
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

/// Whether the bearer is good now (for services, as Netsoc's `GET /v1/users/self/token`): a
/// JWT with its signature, issuer and expiry and the account's current version, or an API
/// key, of an enabled user in an enabled workspace. 204, else 401 (a renewal token past its
/// expiry too).
#[utoipa::path(get, path = "/api/v1/auth/validate", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "The bearer is good"),
        (status = 401, description = "It is not (or there is none)", body = Refusal),
        (status = 503, description = "internal-error: the database is unavailable", body = ErrorReply),
    ))]
pub async fn validate(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    match auth::user_caller(&http, &state).await {
        // A lapsed renewal token is its user's hold on its own account, not a good token.
        Ok(Caller::User(p)) if !p.lapsed => HttpResponse::NoContent().finish(),
        Ok(_) => auth::unauthorized(),
        Err(reply) => reply,
    }
}

/// RFC 7662 token introspection for services that speak OAuth: `token` form-encoded (or as
/// JSON); `{"active": false}` for anything that is not a good iamd JWT now, else its subject,
/// times, issuer, the account's roles as `scope` and whether it is an admin (both read from
/// the account). The caller authenticates with a bearer of its own.
#[utoipa::path(post, path = "/api/v1/auth/introspect", tag = "auth", security(("bearer" = [])),
    request_body(content = IntrospectBody, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state", body = Introspection),
        (status = 400, description = "invalid-argument: no `token`", body = ErrorReply),
        (status = 401, description = "The caller has no valid bearer", body = Refusal),
        (status = 503, description = "internal-error: the database is unavailable", body = ErrorReply),
    ))]
pub async fn introspect(
    http: HttpRequest,
    body: web::Either<web::Form<IntrospectBody>, web::Json<IntrospectBody>>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = match auth::user_caller(&http, &state).await {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let token = body.into_inner().token;
    if token.is_empty() {
        return error(IamError::invalid("token is required"));
    }
    let origin = crate::adapters::http::authentications::origin(&http);
    let principal = match state.service.introspect(&caller, &token, &origin).await {
        Ok(principal) => principal,
        Err(failure) => return auth::read_failed(failure),
    };
    let reply = match principal {
        Some(p) => {
            let (issued, expires, issuer) = match &p.credential {
                Credential::Jwt { issued, expires, issuer, .. } => (*issued, *expires, issuer.clone()),
                Credential::ApiKey { .. } => (0, 0, String::new()),
            };
            Introspection {
                active: true,
                is_admin: Some(p.is_admin()),
                scope: Some(p.roles.join(" ")),
                sub: Some(p.user_id),
                exp: Some(expires),
                iat: Some(issued),
                iss: Some(issuer),
                token_type: Some("Bearer".into()),
                workspace: Some(p.workspace),
            }
        }
        None => Introspection::default(),
    };
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(reply)
}

/// The caller's own user record.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserRecord),
        (status = 401, description = "No valid bearer", body = Refusal),
    ))]
pub async fn whoami(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    run(&http, &state, Who::Authenticated, request(Operation::Whoami), Success::Json(StatusCode::OK, user))
        .await
}

/// Whether `bootstrap` would still create the first admin (no authentication needed).
#[utoipa::path(get, path = "/api/v1/auth/bootstrap-status", tag = "auth",
    responses((status = 200, description = "The bootstrap state", body = BootstrapStatusReply)))]
pub async fn bootstrap_status(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let render =
        |r: IamResponse| to_json(BootstrapStatusReply { bootstrap_available: r.bootstrap_available });
    run(
        &http,
        &state,
        Who::Public,
        request(Operation::BootstrapStatus),
        Success::Json(StatusCode::OK, render),
    )
    .await
}

/// Register an account (self-registration, when `accounts.self_registration` is on; no
/// bearer): it lands in `accounts.registration_workspace`, unverified and with no role, and a
/// verification mail goes to its address (a link with `Accept: text/html`, else the token).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = UserInput,
    responses(
        (status = 201, description = "Registered", body = UserRecord),
        (status = 400, description = "invalid-argument: a missing username, password or email", body = ErrorReply),
        (status = 401, description = "Self-registration is off", body = Refusal),
        (status = 403, description = "operation-not-permitted: a reserved username, an email the pattern refuses, or a field only an admin sets", body = ErrorReply),
        (status = 409, description = "duplicate: the username or the email is taken", body = ErrorReply),
        (status = 422, description = "weak-password", body = ErrorReply),
        (status = 500, description = "internal-error: the account was created but its verification mail could not be sent (the body carries `user` too)", body = ErrorReply),
    ))]
pub async fn register(http: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    let input: UserInput = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { user: Some(input), ..request(Operation::CreateUser) };
    run(&http, &state, Who::Public, req, Success::Json(StatusCode::CREATED, user)).await
}

/// Send a verification mail (no bearer) to the account's address when it has one it has not
/// proven. The answer is the same whether or not such an account exists.
#[utoipa::path(post, path = "/api/v1/auth/verification", tag = "auth", request_body = MailRequestBody,
    responses(
        (status = 204, description = "Sent if there was anything to send"),
        (status = 400, description = "invalid-argument: neither username nor user_id", body = ErrorReply),
        (status = 403, description = "operation-not-permitted: iamd sends no mail here (no smtp.host)", body = ErrorReply),
        (status = 500, description = "internal-error: the mail could not be sent", body = ErrorReply),
    ))]
pub async fn request_verification(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    mail_request(http, payload, state, Operation::RequestVerification).await
}

/// Verify the account's email with the token of its verification mail (no bearer). The token
/// works once; every earlier session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/verify", tag = "auth", request_body = EmailTokenBody,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "invalid-argument: the address is verified already", body = ErrorReply),
        (status = 401, description = "auth-failed: not a verification token, expired, or used already", body = ErrorReply),
    ))]
pub async fn verify_email(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let b: EmailTokenBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { token: b.token, ..request(Operation::VerifyEmail) };
    run(&http, &state, Who::Public, req, Success::NoContent).await
}

/// Send a password-reset mail (no bearer) to the account's address when it is verified. The
/// answer is the same whether or not such an account exists.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = MailRequestBody,
    responses(
        (status = 204, description = "Sent if there was anything to send"),
        (status = 400, description = "invalid-argument: neither username nor user_id", body = ErrorReply),
        (status = 403, description = "operation-not-permitted: iamd sends no mail here (no smtp.host)", body = ErrorReply),
        (status = 500, description = "internal-error: the mail could not be sent", body = ErrorReply),
    ))]
pub async fn request_password_reset(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    mail_request(http, payload, state, Operation::RequestPasswordReset).await
}

/// Set a new password with the token of a password-reset mail (no bearer). The token works
/// once; every earlier session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/complete", tag = "auth", request_body = PasswordResetBody,
    responses(
        (status = 204, description = "The password is set"),
        (status = 400, description = "invalid-argument: no new_password", body = ErrorReply),
        (status = 401, description = "auth-failed: not a reset token, expired, or used already", body = ErrorReply),
        (status = 422, description = "weak-password: the token stays usable", body = ErrorReply),
    ))]
pub async fn complete_password_reset(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let b: PasswordResetBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest {
        token: b.token,
        new_password: b.new_password,
        ..request(Operation::CompletePasswordReset)
    };
    run(&http, &state, Who::Public, req, Success::NoContent).await
}

/// A request for a mail (`op`) to the account a [`MailRequestBody`] names.
async fn mail_request(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
    op: Operation,
) -> HttpResponse {
    let b: MailRequestBody = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { username: b.username, user_id: b.user_id, ..request(op) };
    run(&http, &state, Who::Public, req, Success::NoContent).await
}
