//! What the `/v1` handlers share: reading a body as Netsoc's server does, the account a path
//! names, and running a protocol operation as the caller with the answer in Netsoc's words.

use super::body::{self, UserBody, USER_FIELDS};
use super::{error, problem, HttpState};
use crate::events::Metadata;
use crate::protocol::{ErrorKind, IamError, IamRequest, IamResponse, Operation};
use crate::service::netsoc::{self, text, NetsocCaller, NetsocUser};
use crate::service::Caller;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

/// The body, at most `http.max_body_bytes`; JSON or undeclared (the webspace dashboard logs in
/// with no Content-Type), never a form a page could post across sites (415).
pub(super) async fn read(
    http: &HttpRequest,
    mut payload: web::Payload,
    state: &HttpState,
) -> Result<Vec<u8>, HttpResponse> {
    let declared =
        http.headers().get(actix_web::http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    if !crate::adapters::http::json_declared(declared) {
        return Err(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the request body must be JSON"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| problem(StatusCode::BAD_REQUEST, "the request body could not be read"))?;
        if bytes.len() + chunk.len() > state.max_body_bytes {
            return Err(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {} bytes", state.max_body_bytes),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

pub(super) fn bad_request(message: String) -> HttpResponse {
    problem(StatusCode::BAD_REQUEST, message)
}

pub(super) fn origin(http: &HttpRequest) -> crate::authn_audit::Origin {
    crate::adapters::http::authentications::origin(http)
}

pub(super) fn metadata(http: &HttpRequest, operation: Operation) -> Metadata {
    let origin = origin(http);
    Metadata {
        actor: String::new(),
        request_id: origin.request_id.unwrap_or_default(),
        source: origin.source,
        operation: operation.as_str().to_owned(),
    }
}

/// Runs a protocol operation as `caller` (the access rules, commands, events and audit of
/// every surface), in Netsoc's words when refused.
pub(super) async fn run(
    http: &HttpRequest,
    state: &HttpState,
    caller: &Caller,
    req: IamRequest,
) -> Result<IamResponse, HttpResponse> {
    let response = state.service.handle_as(caller, req, &origin(http)).await.map_err(super::refused)?;
    match response.error {
        None => Ok(response),
        Some(e) => Err(error(netsoc_words(e))),
    }
}

/// iamd's refusals in Netsoc's texts where its clients read them.
pub(super) fn netsoc_words(e: IamError) -> IamError {
    match e.kind {
        ErrorKind::Duplicate if e.message.contains("email") => IamError::new(e.kind, text::EMAIL_EXISTS),
        ErrorKind::Duplicate => IamError::new(e.kind, text::USERNAME_EXISTS),
        ErrorKind::NotFound => netsoc::not_found(),
        _ => e,
    }
}

pub(super) fn request(op: Operation, state: &HttpState) -> IamRequest {
    IamRequest {
        operation: op.as_str().into(),
        workspace: state.compat_workspace.clone(),
        ..Default::default()
    }
}

/// A User body and its `renewed` (none when absent or Go's zero time); 400 when either is
/// malformed.
pub(super) async fn user_body(
    http: &HttpRequest,
    payload: web::Payload,
    state: &HttpState,
) -> Result<(UserBody, Option<DateTime<Utc>>), HttpResponse> {
    let bytes = read(http, payload, state).await?;
    let b: UserBody = body::parse(&bytes, USER_FIELDS).map_err(bad_request)?;
    let renewed = b.renewed().map_err(bad_request)?;
    Ok((b, renewed))
}

/// The account `username` names for `caller`: `self` (or the caller's own name) is the
/// caller; another needs a valid admin (403 otherwise) and must exist (404).
pub(super) async fn target(
    state: &HttpState,
    caller: &NetsocCaller,
    username: &str,
) -> Result<NetsocUser, HttpResponse> {
    if username == "self" || username == caller.user.username {
        return Ok(caller.user.clone());
    }
    if !caller.valid_admin() {
        return Err(problem(StatusCode::FORBIDDEN, text::ADMIN_REQUIRED));
    }
    lookup(state, username).await
}

pub(super) async fn lookup(state: &HttpState, username: &str) -> Result<NetsocUser, HttpResponse> {
    match state.service.netsoc_user_by_name(&state.compat_workspace, username).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(error(netsoc::not_found())),
        Err(e) => Err(error(e)),
    }
}
