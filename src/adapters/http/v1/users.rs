//! The twelve operations of Netsoc's OpenAPI document.

use super::body::{
    self, go_time, DurationBody, PasswordBody, Problem, TokenReply, UserBody, UserReply, USER_FIELDS,
};
use super::{
    accepts_html, bearer, caller, error, problem, refused, try_bearer, try_or_respond, valid_admin, HttpState,
};
use crate::events::{MailPurpose, Metadata};
use crate::protocol::{ErrorKind, IamError, IamRequest, IamResponse, Operation, UserInput};
use crate::service::netsoc::{self, text, NetsocCaller, NetsocUser};
use crate::service::Caller;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// The body, at most `http.max_body_bytes`; JSON or undeclared (the webspace dashboard logs in
/// with no Content-Type), never a form a page could post across sites (415).
async fn read(
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

fn bad_request(message: String) -> HttpResponse {
    problem(StatusCode::BAD_REQUEST, message)
}

fn user_json(status: StatusCode, user: &NetsocUser) -> HttpResponse {
    HttpResponse::build(status).json(UserReply::from(user))
}

fn origin(http: &HttpRequest) -> crate::authn_audit::Origin {
    crate::adapters::http::authentications::origin(http)
}

fn metadata(http: &HttpRequest, operation: Operation) -> Metadata {
    let origin = origin(http);
    Metadata {
        actor: String::new(),
        request_id: origin.request_id.unwrap_or_default(),
        source: origin.source,
        operation: operation.as_str().to_owned(),
    }
}

/// The account `username` names for `caller`: `self` (or the caller's own name) is the
/// caller; another needs a valid admin (403 otherwise) and must exist (404).
async fn target(
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

async fn lookup(state: &HttpState, username: &str) -> Result<NetsocUser, HttpResponse> {
    match state.service.netsoc_user_by_name(&state.compat_workspace, username).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(error(netsoc::not_found())),
        Err(e) => Err(error(e)),
    }
}

/// Runs a protocol operation as `caller` (the access rules, commands, events and audit of
/// every surface), in Netsoc's words when refused.
async fn run(
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
fn netsoc_words(e: IamError) -> IamError {
    match e.kind {
        ErrorKind::Duplicate if e.message.contains("email") => IamError::new(e.kind, text::EMAIL_EXISTS),
        ErrorKind::Duplicate => IamError::new(e.kind, text::USERNAME_EXISTS),
        ErrorKind::NotFound => netsoc::not_found(),
        _ => e,
    }
}

fn request(op: Operation, state: &HttpState) -> IamRequest {
    IamRequest {
        operation: op.as_str().into(),
        workspace: state.compat_workspace.clone(),
        ..Default::default()
    }
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

/// What a User body asks to change of `user`, as an update-user input; zero values are not
/// changes (the Go client sends the whole struct).
fn changes(
    b: &UserBody,
    user: &NetsocUser,
    renewed: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<UserInput> {
    let mut input = UserInput::default();
    let mut any = false;
    let mut take = |field: &Option<String>, current: &str, into: &mut String| {
        if let Some(value) = UserBody::given(field).filter(|v| *v != current) {
            *into = value.to_owned();
            any = true;
        }
    };
    take(&b.username, &user.username, &mut input.username);
    take(&b.email, &user.email, &mut input.email);
    take(&b.first_name, &user.first_name, &mut input.first_name);
    take(&b.last_name, &user.last_name, &mut input.last_name);
    take(&b.ssh_key, user.ssh_key.as_deref().unwrap_or_default(), &mut input.ssh_key);
    if let Some(verified) = b.verified.filter(|v| *v != user.verified) {
        input.verified = Some(verified);
        any = true;
    }
    if let Some(admin) = b.is_admin.filter(|a| *a != user.is_admin) {
        let mut roles: Vec<String> =
            user.roles.iter().filter(|r| *r != crate::authz::ADMIN_ROLE).cloned().collect();
        if admin {
            roles.push(crate::authz::ADMIN_ROLE.to_owned());
        }
        input.roles = Some(roles);
        any = true;
    }
    if let Some(at) = renewed.filter(|at| *at != user.renewed) {
        input.renewed = go_time(at);
        any = true;
    }
    any.then_some(input)
}

/// Netsoc's field rules for a User body: a valid email and DNS-name username when given,
/// 8–128 characters of password (400 with its validator's words).
fn field_rules(b: &UserBody) -> Result<(), String> {
    let mut problems = Vec::new();
    if UserBody::given(&b.email).is_some_and(|e| !valid_email(e)) {
        problems.push("email: must be a valid email address");
    }
    if UserBody::given(&b.username).is_some_and(|u| !dns_name(u)) {
        problems.push("username: must be a valid DNS name");
    }
    if UserBody::given(&b.password).is_some_and(|p| netsoc::password_length(p).is_err()) {
        problems.push("password: the length must be between 8 and 128");
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!("{}.", problems.join("; "))),
    }
}

/// ozzo-validation's `is.DNSName`.
fn dns_name(name: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[\._]?$")
            .expect("a valid pattern")
    });
    name.len() <= 253 && PATTERN.is_match(name)
}

fn valid_email(email: &str) -> bool {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.chars().any(char::is_whitespace)
                && dns_name(domain)
        }
        None => false,
    }
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
    let bytes = try_or_respond!(read(&http, payload, &state).await);
    let b: UserBody = try_or_respond!(body::parse(&bytes, USER_FIELDS).map_err(bad_request));
    let renewed = try_or_respond!(b.renewed().map_err(|m| problem(StatusCode::BAD_REQUEST, m)));
    let user = try_or_respond!(target(&state, &caller, &path).await);
    if !caller.valid_admin() {
        let privileged = b.verified.is_some() || b.is_admin.is_some() || renewed.is_some();
        let username = UserBody::given(&b.username).unwrap_or_default();
        let email = UserBody::given(&b.email).unwrap_or_default();
        try_or_respond!(state.service.netsoc_non_admin_ok(username, email, privileged).map_err(error));
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
    let bytes = try_or_respond!(read(&http, payload, &state).await);
    let b: UserBody = try_or_respond!(body::parse(&bytes, USER_FIELDS).map_err(bad_request));
    let renewed = try_or_respond!(b.renewed().map_err(|m| problem(StatusCode::BAD_REQUEST, m)));
    if caller.is_none() {
        let privileged = b.verified.is_some() || b.is_admin.is_some() || renewed.is_some();
        let username = UserBody::given(&b.username).unwrap_or_default();
        let email = UserBody::given(&b.email).unwrap_or_default();
        try_or_respond!(state.service.netsoc_non_admin_ok(username, email, privileged).map_err(error));
    }
    let blank: Vec<String> = [
        ("email", &b.email),
        ("first_name", &b.first_name),
        ("last_name", &b.last_name),
        ("username", &b.username),
    ]
    .into_iter()
    .filter(|(_, v)| UserBody::given(v).is_none())
    .map(|(name, _)| format!("{name}: cannot be blank"))
    .collect();
    if !blank.is_empty() {
        return problem(StatusCode::BAD_REQUEST, format!("{}.", blank.join("; ")));
    }
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
