//! `/api/v1/auth/…`: login, change-password, whoami, bootstrap-status.

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
