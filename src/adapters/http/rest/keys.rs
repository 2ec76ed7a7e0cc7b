//! `/api/v1/workspaces/{ws}/users/{id}/api-keys`, `/api/v1/api-keys/{id}` and
//! `/api/v1/signing-keys/rotate`.

use super::*;

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
        (status = 409, description = "duplicate: the user has an active key of that name; disabled; or a retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
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
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
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
        (status = 409, description = "A retry under the same Idempotency-Key while the first is still being applied (invalid-argument)", body = ErrorReply),
        (status = 422, description = "Invalid-argument: the Idempotency-Key was already used for a different request", body = ErrorReply),
    ))]
pub async fn rotate_signing_key(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let render = |r: IamResponse| to_json(SigningKeyReply { signing_key_public: r.signing_key_public });
    let req = request(Operation::RotateSigningKey);
    run(&http, &state, Who::Authenticated, req, Success::Json(StatusCode::OK, render)).await
}
