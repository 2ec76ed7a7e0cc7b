//! `/api/v1/workspaces/{ws}/users[/{id}[/disable|enable|reset-password]]`.

use super::*;

/// The users of a workspace, a page at a time (`users:read`).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/users", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = Page<UserRecord>),
        (status = 400, description = "invalid-argument: limit or cursor", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 404, description = "not-found: no such workspace", body = ErrorReply),
    ))]
pub async fn list_users(
    http: HttpRequest,
    path: web::Path<String>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let mut req = IamRequest { workspace: path.into_inner(), ..request(Operation::ListUsers) };
    try_or_respond!(page(query, &mut req).map_err(error));
    let render = |r: IamResponse| to_json(Page::new(r.users, r.next_cursor));
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}

/// Create a user (`users:admin`). Usernames are unique across all workspaces; roles ⊆ reader, writer, admin.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/users", tag = "users", request_body = UserInput,
    params(("ws" = String, Path, description = "Workspace id")), security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserRecord),
        (status = 400, description = "invalid-argument: missing username or password, unknown role", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 404, description = "not-found: no such workspace", body = ErrorReply),
        (status = 409, description = "duplicate: the username is taken; disabled: the workspace is disabled; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "weak-password; or invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn create_user(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let input: UserInput = try_or_respond!(body(&http, payload, &state).await);
    let req =
        IamRequest { workspace: path.into_inner(), user: Some(input), ..request(Operation::CreateUser) };
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::CREATED, user)).await
}

/// One user (`users:read`; any user for its own account).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/users/{id}", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserRecord),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted: the user is in another workspace", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn get_user(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = user_request(Operation::GetUser, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, user)).await
}

/// Change a user's fields (`users:write`; any user on its own account, but never its roles,
/// `enabled`, `must_change_password`, `verified` or `renewed`); only the fields given change,
/// never the password.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/users/{id}", tag = "users", request_body = UserInput,
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user as it is now", body = UserRecord),
        (status = 400, description = "invalid-argument: a password was given, unknown role", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "duplicate: the new username is taken; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn update_user(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let input: UserInput = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { user: Some(input), ..user_request(Operation::UpdateUser, path.into_inner()) };
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, user)).await
}

/// Delete a user: its keys are revoked, its username is free again; the log keeps its history
/// (`users:admin`; any user for its own account).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/users/{id}", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn delete_user(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = user_request(Operation::DeleteUser, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

/// Disable a user: its keys are revoked and its tokens die (`users:admin`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/users/{id}/disable", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn disable_user(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = user_request(Operation::DisableUser, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

/// Enable a user; keys revoked by the disable stay revoked (`users:admin`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/users/{id}/enable", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserRecord),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "disabled: the workspace is disabled; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn enable_user(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = user_request(Operation::EnableUser, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, user)).await
}

/// Reset a user's password to a random temporary one, shown once (`users:admin`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/users/{id}/reset-password", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The temporary password", body = TemporaryPasswordReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "disabled: the user is disabled; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn reset_password(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = user_request(Operation::ResetPassword, path.into_inner());
    let render =
        |r: IamResponse| to_json(TemporaryPasswordReply { temporary_password: r.temporary_password });
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}

/// Issue a long-lived token for a user (`iam:admin`; Netsoc's `POST /v1/users/{u}/token`), for
/// a service account: it lives `duration` (Go's syntax, up to `876000h`), acts in the user's
/// workspace and dies with a logout everywhere, a password change or a disable. Recorded as a
/// `token.issued` event; the token is shown once.
#[utoipa::path(post, path = "/api/v1/users/{id}/token", tag = "users", request_body = IssueTokenBody,
    params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token", body = IssuedTokenReply),
        (status = 400, description = "invalid-argument: a duration that is not Go's syntax, or outside 1s–876000h", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted (`iam:admin`), or operation-not-permitted: the user is disabled", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn issue_token(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let b: IssueTokenBody = try_or_respond!(body(&http, payload, &state).await);
    let req =
        IamRequest { user_id: path.into_inner(), duration: b.duration, ..request(Operation::IssueToken) };
    let render = |r: IamResponse| to_json(IssuedTokenReply { token: r.jwt, expires: r.jwt_expires });
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}
