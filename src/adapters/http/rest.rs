//! The REST endpoints (`docs/rest.md`): each is one protocol operation, run through the same
//! service and the same capability checks as `POST /api/v1/iam`, with REST's status codes.
//! [`run`] does what every endpoint shares — authenticate, bind and check the caller,
//! `Idempotency-Key`, the call, the error mapping — and the handlers only say which
//! operation they are and how success looks.

use super::bodies::{
    BootstrapStatusReply, ChangePasswordBody, CreatedApiKey, ErrorReply, LoginBody, LoginReply, Page,
    Refusal, SigningKeyReply, TemporaryPasswordReply,
};
use super::{access, auth, read_body, HttpState};
use crate::protocol::{
    decode_json, ApiKeyInput, ApiKeyRecord, ErrorKind, IamError, IamRequest, IamResponse, Operation,
    UserInput, UserRecord, WorkspaceInput, WorkspaceRecord,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

/// Rows per page when the caller names no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/auth/login", web::post().to(login))
            .route("/auth/change-password", web::post().to(change_password))
            .route("/auth/whoami", web::get().to(whoami))
            .route("/auth/bootstrap-status", web::get().to(bootstrap_status))
            .route("/workspaces", web::get().to(list_workspaces))
            .route("/workspaces", web::post().to(create_workspace))
            .route("/workspaces/{ws}", web::get().to(get_workspace))
            .route("/workspaces/{ws}", web::patch().to(update_workspace))
            .route("/workspaces/{ws}/disable", web::post().to(disable_workspace))
            .route("/workspaces/{ws}/users", web::get().to(list_users))
            .route("/workspaces/{ws}/users", web::post().to(create_user))
            .route("/workspaces/{ws}/users/{id}", web::get().to(get_user))
            .route("/workspaces/{ws}/users/{id}", web::patch().to(update_user))
            .route("/workspaces/{ws}/users/{id}", web::delete().to(delete_user))
            .route("/workspaces/{ws}/users/{id}/disable", web::post().to(disable_user))
            .route("/workspaces/{ws}/users/{id}/enable", web::post().to(enable_user))
            .route("/workspaces/{ws}/users/{id}/reset-password", web::post().to(reset_password))
            .route("/workspaces/{ws}/users/{id}/api-keys", web::get().to(list_api_keys))
            .route("/workspaces/{ws}/users/{id}/api-keys", web::post().to(create_api_key))
            .route("/api-keys/{id}", web::delete().to(revoke_api_key))
            .route("/signing-keys/rotate", web::post().to(rotate_signing_key))
            .default_service(web::to(super::not_found)),
    );
}

/// The HTTP status of a protocol error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::AuthFailed => StatusCode::UNAUTHORIZED,
        ErrorKind::OperationNotPermitted => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Duplicate | ErrorKind::Disabled => StatusCode::CONFLICT,
        ErrorKind::WeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(e: IamError) -> HttpResponse {
    HttpResponse::build(status_of(e.kind)).json(IamResponse::error(e))
}

/// How a successful reply is rendered.
enum Success {
    Json(StatusCode, fn(IamResponse) -> Value),
    NoContent,
}

/// Whether the endpoint needs a caller.
#[derive(PartialEq)]
enum Who {
    Public,
    Authenticated,
}

async fn run(
    http: &HttpRequest,
    state: &HttpState,
    who: Who,
    mut req: IamRequest,
    success: Success,
) -> HttpResponse {
    let op = match Operation::parse(&req.operation) {
        Ok(op) => op,
        Err(e) => return error(e),
    };
    let mut origin = super::authentications::origin(http);
    if who == Who::Authenticated {
        let Some(token) = auth::bearer(http) else { return auth::unauthorized() };
        let caller = match state.service.authenticate_from(token, &origin).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return auth::unauthorized(),
            Err(e) => return error(e),
        };
        // The caller's own password, unless it names another user.
        if op == Operation::ChangePassword && req.user_id.is_empty() {
            req.user_id = caller.user_id.clone();
        }
        match access::permits(&caller, op, &mut req, &state.service).await {
            Ok(true) => origin.caller = Some(access::idempotency_caller(&caller)),
            Ok(false) => return auth::forbidden(),
            Err(e) => return error(e),
        }
    }
    if let Some(key) = http.headers().get("Idempotency-Key").and_then(|v| v.to_str().ok()) {
        req.request_id = key.to_owned();
    }
    let response = state.service.handle_from(req, &origin).await;
    if let Some(e) = response.error {
        // The IETF Idempotency-Key draft: a key reused for another request is 422, a retry
        // while the first is being applied 409.
        if e.is_request_id_reused() {
            return HttpResponse::UnprocessableEntity().json(IamResponse::error(e));
        }
        if e.is_request_in_progress() {
            return HttpResponse::Conflict().json(IamResponse::error(e));
        }
        return error(e);
    }
    let replayed = response.replayed;
    let mut reply = match success {
        Success::Json(status, render) => HttpResponse::build(status).json(render(response)),
        Success::NoContent => HttpResponse::NoContent().finish(),
    };
    if replayed {
        // The answer of an earlier request with the same Idempotency-Key, which applied nothing
        // this time (the header of the IETF Idempotency-Key draft's implementations).
        reply.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(REPLAYED_HEADER),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    reply
}

/// Set on a reply served from the record of an earlier request with the same Idempotency-Key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

fn request(op: Operation) -> IamRequest {
    IamRequest { operation: op.as_str().into(), ..Default::default() }
}

/// A JSON body of type `T`; malformed is `invalid-argument` (400), too large 413.
async fn body<T: serde::de::DeserializeOwned + Default>(
    http: &HttpRequest,
    payload: web::Payload,
    state: &HttpState,
) -> Result<T, HttpResponse> {
    let bytes = read_body(http, payload, state.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode_json(&bytes).map_err(error)
}

/// `?limit=&cursor=` of a list endpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many items, 1–500 (default 100).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn page(
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    req: &mut IamRequest,
) -> Result<(), IamError> {
    let query = query.map_err(|_| IamError::invalid("limit must be a number and cursor a string"))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err(IamError::invalid(format!(
            "limit must be between 1 and {}",
            crate::service::page::MAX_LIMIT
        )));
    }
    req.limit = limit;
    req.cursor = query.cursor.clone().unwrap_or_default();
    Ok(())
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn user(r: IamResponse) -> Value {
    to_json(r.user)
}

fn workspace(r: IamResponse) -> Value {
    to_json(r.workspace)
}

macro_rules! try_or_respond {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

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
        (status = 422, description = "weak-password: too short, the username, or one repeated character", body = ErrorReply),
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

/// Every workspace, a page at a time (`workspaces:admin`).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of workspaces", body = Page<WorkspaceRecord>),
        (status = 400, description = "invalid-argument: limit or cursor", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
    ))]
pub async fn list_workspaces(
    http: HttpRequest,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let mut req = request(Operation::ListWorkspaces);
    try_or_respond!(page(query, &mut req).map_err(error));
    let render = |r: IamResponse| to_json(Page::new(r.workspaces, r.next_cursor));
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}

/// Create a workspace (`workspaces:admin`). Ids: 1–64 of `[A-Za-z0-9._-]`, not starting with `_`.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = WorkspaceInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = WorkspaceRecord),
        (status = 400, description = "invalid-argument: a bad id or name", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 409, description = "duplicate: the workspace exists", body = ErrorReply),
    ))]
pub async fn create_workspace(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let record: WorkspaceInput = try_or_respond!(body(&http, payload, &state).await);
    let req = IamRequest { workspace_record: Some(record), ..request(Operation::CreateWorkspace) };
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::CREATED, workspace)).await
}

fn workspace_request(op: Operation, id: String) -> IamRequest {
    IamRequest { workspace_record: Some(WorkspaceInput { id, ..Default::default() }), ..request(op) }
}

/// One workspace (`workspaces:admin`).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "Workspace id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceRecord),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn get_workspace(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = workspace_request(Operation::GetWorkspace, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, workspace)).await
}

/// Rename, enable or disable a workspace (`workspaces:admin`); only the fields given change.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}", tag = "workspaces", request_body = WorkspaceInput,
    params(("ws" = String, Path, description = "Workspace id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspace as it is now", body = WorkspaceRecord),
        (status = 400, description = "invalid-argument", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn update_workspace(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let mut record: WorkspaceInput = try_or_respond!(body(&http, payload, &state).await);
    record.id = path.into_inner();
    let req = IamRequest { workspace_record: Some(record), ..request(Operation::UpdateWorkspace) };
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, workspace)).await
}

/// Disable a workspace: its users are disabled and their keys revoked (`workspaces:admin`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/disable", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn disable_workspace(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = workspace_request(Operation::DisableWorkspace, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

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
        (status = 409, description = "duplicate: the username is taken; disabled: the workspace is disabled", body = ErrorReply),
        (status = 422, description = "weak-password", body = ErrorReply),
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

fn user_request(op: Operation, (workspace, user_id): (String, String)) -> IamRequest {
    IamRequest { workspace, user_id, ..request(op) }
}

/// One user (`users:read`).
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

/// Change a user's fields (`users:write`); only the fields given change, never the password.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/users/{id}", tag = "users", request_body = UserInput,
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user as it is now", body = UserRecord),
        (status = 400, description = "invalid-argument: a password was given, unknown role", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "duplicate: the new username is taken", body = ErrorReply),
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

/// Delete a user: its keys are revoked, its username is free again; the log keeps its history (`users:admin`).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/users/{id}", tag = "users",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
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
        (status = 409, description = "disabled: the workspace is disabled", body = ErrorReply),
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
        (status = 409, description = "disabled: the user is disabled", body = ErrorReply),
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

/// A user's active API keys, a page at a time (own keys: `keys:self`; others': `keys:admin`).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/users/{id}/api-keys", tag = "api-keys",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys (never their plaintext)", body = Page<ApiKeyRecord>),
        (status = 400, description = "invalid-argument: limit or cursor", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn list_api_keys(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let mut req = user_request(Operation::ListApiKeys, path.into_inner());
    try_or_respond!(page(query, &mut req).map_err(error));
    let render = |r: IamResponse| to_json(Page::new(r.api_keys, r.next_cursor));
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}

/// Create an API key for a user; its plaintext is in this reply only (own: `keys:self`; others': `keys:admin`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/users/{id}/api-keys", tag = "api-keys", request_body = ApiKeyInput,
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 400, description = "invalid-argument: no name, a bad expiry", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
        (status = 409, description = "duplicate: the user has an active key of that name; disabled", body = ErrorReply),
    ))]
pub async fn create_api_key(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let mut input: ApiKeyInput = try_or_respond!(body(&http, payload, &state).await);
    let (workspace, user_id) = path.into_inner();
    input.user_id = user_id;
    let req = IamRequest { workspace, key: Some(input), ..request(Operation::CreateApiKey) };
    let render = |r: IamResponse| {
        let plaintext = (!r.api_key_plaintext.is_empty()).then_some(r.api_key_plaintext);
        to_json(CreatedApiKey { api_key: r.api_key, api_key_plaintext: plaintext })
    };
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::CREATED, render)).await
}

/// Revoke an API key: it never resolves again (own: `keys:self`; others': `keys:admin`).
///
/// The path names no workspace: an admin's request addresses the key's own, a reader's or
/// writer's its own workspace (see `access`), which must then own the key.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted, or operation-not-permitted", body = ErrorReply),
        (status = 404, description = "not-found", body = ErrorReply),
    ))]
pub async fn revoke_api_key(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = IamRequest { key_id: path.into_inner(), ..request(Operation::RevokeApiKey) };
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}

/// Make a new signing key active; the previous one keeps verifying for `signing.grace_period` (`iam:admin`).
#[utoipa::path(post, path = "/api/v1/signing-keys/rotate", tag = "signing-keys", security(("bearer" = [])),
    responses(
        (status = 200, description = "The new public key", body = SigningKeyReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "Not granted", body = Refusal),
    ))]
pub async fn rotate_signing_key(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let render = |r: IamResponse| to_json(SigningKeyReply { signing_key_public: r.signing_key_public });
    let req = request(Operation::RotateSigningKey);
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_type_has_its_status() {
        let statuses: Vec<u16> = [
            ErrorKind::InvalidArgument,
            ErrorKind::AuthFailed,
            ErrorKind::OperationNotPermitted,
            ErrorKind::NotFound,
            ErrorKind::Duplicate,
            ErrorKind::Disabled,
            ErrorKind::WeakPassword,
            ErrorKind::InternalError,
        ]
        .into_iter()
        .map(|k| status_of(k).as_u16())
        .collect();
        assert_eq!(statuses, [400, 401, 403, 404, 409, 409, 422, 500]);
    }

    #[test]
    fn a_list_names_its_next_page_only_when_there_is_one() {
        let users = || vec![UserRecord { id: "u".into(), ..Default::default() }];
        let last = to_json(Page::new(users(), String::new()));
        assert_eq!(last["items"][0]["id"], "u");
        assert!(last.get("next_cursor").is_none());
        assert_eq!(to_json(Page::new(users(), "c".into()))["next_cursor"], "c");
    }
}
