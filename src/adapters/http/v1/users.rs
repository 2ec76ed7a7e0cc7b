//! The users: list, read (by name or integer id), sign-up and creation, change, deletion.

use super::body::{go_time, Problem, UserBody, UserReply};
use super::fields::{blank_fields, changes, field_rules, non_admin_rules};
use super::request::{bad_request, metadata, netsoc_words, origin, request, run, target, user_body};
use super::{
    accepts_html, bearer, caller, error, problem, refused, try_bearer, try_or_respond, valid_admin, HttpState,
};
use crate::protocol::{ErrorKind, IamError, IamRequest, Operation, UserInput};
use crate::service::netsoc::{self, text, NetsocUser};
use crate::service::Caller;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

fn user_json(status: StatusCode, user: &NetsocUser) -> HttpResponse {
    HttpResponse::build(status).json(UserReply::from(user))
}

/// `GET /v1/users`: every account (a valid admin).
#[utoipa::path(get, path = "/v1/users", tag = "netsoc-v1", security(("netsoc" = [])),
    responses(
        (status = 200, description = "Every user of compat.workspace", body = [UserReply]),
        (status = 401, description = "No token, an expired one, or one not good", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(http: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    try_or_respond!(valid_admin(&http, &state).await);
    match state.service.netsoc_users(&state.compat_workspace).await {
        Ok(users) => HttpResponse::Ok().json(users.iter().map(UserReply::from).collect::<Vec<_>>()),
        Err(e) => error(e),
    }
}

/// `GET /v1/users/id:{uid}` (a valid admin).
#[utoipa::path(get, path = "/v1/users/id:{uid}", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("uid" = i32, Path, description = "The integer id")),
    responses(
        (status = 200, description = "The user", body = UserReply),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user_by_id(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    try_or_respond!(valid_admin(&http, &state).await);
    let Ok(number) = path.parse::<i32>() else { return error(netsoc::not_found()) };
    match state.service.netsoc_user_by_number(&state.compat_workspace, number).await {
        Ok(Some(user)) => user_json(StatusCode::OK, &user),
        Ok(None) => error(netsoc::not_found()),
        Err(e) => error(e),
    }
}

/// `GET /v1/users/{u}`: the caller itself (even with an expired token) or a valid admin.
#[utoipa::path(get, path = "/v1/users/{username}", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self`")),
    responses(
        (status = 200, description = "The user", body = UserReply),
        (status = 401, description = "No token, or one not good", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user, and not a valid admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist (or the token's user was deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = try_or_respond!(caller(&http, &state, false).await);
    let user = try_or_respond!(target(&state, &caller, &path).await);
    user_json(StatusCode::OK, &user)
}

/// `DELETE /v1/users/{u}`: answers the deleted user.
#[utoipa::path(delete, path = "/v1/users/{username}", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self`")),
    responses(
        (status = 200, description = "The deleted user", body = UserReply),
        (status = 401, description = "No token, or one not good", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user, and not a valid admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    http: HttpRequest,
    path: web::Path<String>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = try_or_respond!(caller(&http, &state, false).await);
    let user = try_or_respond!(target(&state, &caller, &path).await);
    let req = IamRequest { user_id: user.user_id.clone(), ..request(Operation::DeleteUser, &state) };
    try_or_respond!(run(&http, &state, &Caller::User(caller.principal.clone()), req).await);
    user_json(StatusCode::OK, &user)
}

/// `PATCH /v1/users/{u}`: answers the user **as it was before** the change.
#[utoipa::path(patch, path = "/v1/users/{username}", tag = "netsoc-v1", security(("netsoc" = [])),
    params(("username" = String, Path, description = "A username, or `self`")), request_body = UserBody,
    responses(
        (status = 200, description = "The user as it was before the change", body = UserReply),
        (status = 400, description = "A malformed body or field, an id change", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one not good", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user or an admin's field, and not a valid admin; a reserved username", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "user does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The username or email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The verification mail of a new email could not be sent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    http: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = try_or_respond!(caller(&http, &state, false).await);
    let (b, renewed) = try_or_respond!(user_body(&http, payload, &state).await);
    let user = try_or_respond!(target(&state, &caller, &path).await);
    if !caller.valid_admin() {
        try_or_respond!(non_admin_rules(&state, &b, renewed).map_err(error));
    }
    if b.id.is_some_and(|id| id != 0 && id != user.number as u64) {
        return problem(StatusCode::BAD_REQUEST, text::INTERNAL_FIELD);
    }
    try_or_respond!(field_rules(&b).map_err(bad_request));
    let password = UserBody::given(&b.password).map(str::to_owned);
    if let Some(p) = &password {
        let name = UserBody::given(&b.username).unwrap_or(&user.username);
        try_or_respond!(state.service.netsoc_password_rules(p, name).map_err(error));
    }
    let as_caller = Caller::User(caller.principal.clone());
    if let Some(input) = changes(&b, &user, renewed) {
        let req = IamRequest {
            user_id: user.user_id.clone(),
            user: Some(input),
            email_link: accepts_html(&http),
            netsoc_mail: true,
            ..request(Operation::UpdateUser, &state)
        };
        try_or_respond!(run(&http, &state, &as_caller, req).await);
    }
    if let Some(password) = password {
        let set = state.service.netsoc_set_password(
            &caller,
            &state.compat_workspace,
            &user,
            password,
            metadata(&http, Operation::UpdateUser),
        );
        try_or_respond!(set.await.map_err(error));
    }
    user_json(StatusCode::OK, &user)
}

/// `POST /v1/users`: sign-up (no bearer; `accounts.self_registration`), or a valid admin.
/// A verification mail follows (a link with `Accept: text/html`).
#[utoipa::path(post, path = "/v1/users", tag = "netsoc-v1", security((), ("netsoc" = [])), request_body = UserBody,
    responses(
        (status = 201, description = "The new user; a verification mail was sent", body = UserReply),
        (status = 400, description = "A malformed body, a blank or invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "An expired admin token; sign-up is off", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An admin's field, a reserved username, an email the rule refuses, a non-admin token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The username or email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The verification mail could not be sent (the user is kept)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let caller = match try_bearer!(&http) {
        None => None,
        Some(_) => Some(try_or_respond!(valid_admin(&http, &state).await)),
    };
    let (b, renewed) = try_or_respond!(user_body(&http, payload, &state).await);
    if caller.is_none() {
        try_or_respond!(non_admin_rules(&state, &b, renewed).map_err(error));
    }
    try_or_respond!(blank_fields(&b).map_err(bad_request));
    try_or_respond!(field_rules(&b).map_err(bad_request));
    let first = b.first_name.clone().unwrap_or_default();
    let last = b.last_name.clone().unwrap_or_default();
    let input = UserInput {
        username: b.username.clone().unwrap_or_default(),
        name: format!("{first} {last}").trim().to_owned(),
        email: b.email.clone().unwrap_or_default(),
        password: b.password.clone().unwrap_or_default(),
        first_name: first,
        last_name: last,
        ssh_key: b.ssh_key.clone().unwrap_or_default(),
        verified: b.verified,
        roles: b.is_admin.filter(|admin| *admin).map(|_| vec![crate::authz::ADMIN_ROLE.to_owned()]),
        renewed: renewed.map(go_time).unwrap_or_default(),
        ..Default::default()
    };
    if !input.password.is_empty() {
        try_or_respond!(state.service.netsoc_password_rules(&input.password, &input.username).map_err(error));
    }
    let as_caller = match &caller {
        Some(c) => Caller::User(c.principal.clone()),
        None => Caller::Anonymous,
    };
    let req = IamRequest {
        user: Some(input),
        email_link: accepts_html(&http),
        netsoc_mail: true,
        ..request(Operation::CreateUser, &state)
    };
    let response = state.service.handle_as(&as_caller, req, &origin(&http)).await;
    let response = try_or_respond!(response.map_err(refused));
    let created = response.user.as_ref().map(|u| u.id.clone());
    if let Some(e) =
        response.error.clone().filter(|e| created.is_none() || e.kind != ErrorKind::InternalError)
    {
        return error(netsoc_words(e));
    }
    // The account stays created when its mail failed: 500, as Netsoc answers.
    let Some(id) = created else { return error(IamError::internal()) };
    match state.service.netsoc_user(&state.compat_workspace, &id).await {
        Ok(user) if response.error.is_none() => user_json(StatusCode::CREATED, &user),
        Ok(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "failed to send email"),
        Err(e) => error(e),
    }
}
