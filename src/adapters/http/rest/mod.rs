//! The REST endpoints (`docs/rest.md`): each is one protocol operation, run through the same
//! service and the same capability checks as `POST /api/v1/iam`, with REST's status codes.
//! [`run`] does what every endpoint shares — authenticate, bind and check the caller,
//! `Idempotency-Key`, the call, the error mapping — and the handlers only say which
//! operation they are and how success looks.

use super::bodies::{
    BootstrapStatusReply, ChangePasswordBody, CreatedApiKey, EmailTokenBody, ErrorReply, IntrospectBody,
    Introspection, IssueTokenBody, IssuedTokenReply, LoginBody, LoginReply, LogoutAllBody, MailRequestBody,
    Page, PasswordResetBody, Refusal, SigningKeyReply, TemporaryPasswordReply,
};
use super::{auth, read_body, HttpState};
use crate::protocol::{
    decode_json, ApiKeyInput, ApiKeyRecord, ErrorKind, IamError, IamRequest, IamResponse, Operation,
    UserInput, UserRecord, WorkspaceInput, WorkspaceRecord,
};
use crate::service::{Caller, Credential};
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
            .route("/auth/logout-all", web::post().to(logout_all))
            .route("/auth/validate", web::get().to(validate))
            .route("/auth/introspect", web::post().to(introspect))
            .route("/auth/whoami", web::get().to(whoami))
            .route("/auth/bootstrap-status", web::get().to(bootstrap_status))
            .route("/auth/register", web::post().to(register))
            .route("/auth/verification", web::post().to(request_verification))
            .route("/auth/verify", web::post().to(verify_email))
            .route("/auth/password-reset", web::post().to(request_password_reset))
            .route("/auth/password-reset/complete", web::post().to(complete_password_reset))
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
            .route("/users/{id}/token", web::post().to(issue_token))
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
    let caller = match who {
        // A public endpoint ignores any bearer (a stale one must not stop a login).
        Who::Public => Caller::Anonymous,
        // The resource API serves users: the gateway secret is not a user's bearer.
        Who::Authenticated => {
            match state.gatekeeper.authenticate(http, &state.service, auth::Serves::Users).await {
                Ok(Some(Caller::User(principal))) => Caller::User(principal),
                Ok(_) => return auth::unauthorized(),
                Err(e) => return error(e),
            }
        }
    };
    // The caller's own password or sessions, unless it names another user.
    if let (Operation::ChangePassword | Operation::LogoutAll, Caller::User(principal)) = (op, &caller) {
        if req.user_id.is_empty() {
            req.user_id = principal.user_id.clone();
        }
    }
    if let Some(key) = http.headers().get("Idempotency-Key").and_then(|v| v.to_str().ok()) {
        req.request_id = key.to_owned();
    }
    // A browser page (`Accept: text/html`) gets a link in its mail, anything else the token.
    req.email_link = accepts_html(http);
    let origin = super::authentications::origin(http);
    let response = match state.service.handle_as(&caller, req, &origin).await {
        Ok(response) => response,
        Err(refusal) => return auth::refused(refusal),
    };
    if let Some(e) = response.error {
        // The IETF Idempotency-Key draft: a key reused for another request is 422, a retry
        // while the first is being applied 409.
        if e.is_request_id_reused() {
            return HttpResponse::UnprocessableEntity().json(IamResponse::error(e));
        }
        if e.is_request_in_progress() {
            return HttpResponse::Conflict().json(IamResponse::error(e));
        }
        // A user written before its mail failed stays written: the reply shows it.
        return HttpResponse::build(status_of(e.kind))
            .json(IamResponse { user: response.user, ..IamResponse::error(e) });
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

/// Whether the request's `Accept` names `text/html`.
pub(crate) fn accepts_html(http: &HttpRequest) -> bool {
    http.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html")))
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

fn workspace_request(op: Operation, id: String) -> IamRequest {
    IamRequest { workspace_record: Some(WorkspaceInput { id, ..Default::default() }), ..request(op) }
}

fn user_request(op: Operation, (workspace, user_id): (String, String)) -> IamRequest {
    IamRequest { workspace, user_id, ..request(op) }
}

mod keys;
mod session;
mod users;
mod workspaces;

pub use keys::*;
pub use session::*;
pub use users::*;
pub use workspaces::*;

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
