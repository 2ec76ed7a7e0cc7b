//! `/api/v1/workspaces[/{ws}[/disable]]`.

use super::*;

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
        (status = 409, description = "duplicate: the workspace exists; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
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
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
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
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn disable_workspace(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let req = workspace_request(Operation::DisableWorkspace, path.into_inner());
    run(&http, &state, Who::Authenticated, req, Success::NoContent).await
}
