//! ma1sd's REST identity store (docs/netsoc.md), as Netsoc's iamd serves it: a listener of its
//! own (`ma1sd.http_address`), every path under `ma1sd.base_url`, all POST, unauthenticated,
//! over the accounts of `compat.workspace`. Request bodies are JSON of exactly the keys ma1sd
//! sends (an unknown key is 400, `failed to parse request body: json: unknown field "x"`, as
//! Go's decoder says it); answers are ma1sd's shapes and status codes:
//!
//! - `/auth/login`: 200 with the identity; 400 an mxid that is not `@localpart:domain` of this
//!   domain, 404 no such account, 401 unverified, renewal lapsed, disabled or a wrong password —
//!   each with `{"auth":{"success":false,…}}`.
//! - `/directory/user/search`: `by` `name` or `threepid`, a case-insensitive substring;
//!   `results` never null; another `by` is 400.
//! - `/identity/single`: 404 `{}` for no match, an unknown medium too (never a 5xx).
//! - `/identity/bulk`: the matches only; unknown media and no-matches are skipped (ma1sd drops
//!   the whole batch on any non-2xx).
//! - `/profile/displayName|threepids|roles`: `{"profile":{that key}}`; 404 `{"profile":{}}`
//!   for an account it does not know (ma1sd reads only 404 as "empty"; upstream answers an
//!   unknown one 200 and a foreign domain 400, which ma1sd would take for an error).

use crate::authn_audit::Origin;
use crate::service::directory::{MatrixIdentity, MatrixLogin, SearchBy};
use crate::service::Service;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the store's handlers share.
pub struct Ma1sdState {
    pub service: Service,
    pub workspace: String,
    pub domain: String,
    pub max_body_bytes: usize,
}

/// Mounts the store under `base_url`.
pub fn routes(base_url: &str) -> impl FnOnce(&mut web::ServiceConfig) + '_ {
    move |cfg| {
        cfg.service(
            web::scope(base_url)
                .route("/auth/login", web::post().to(login))
                .route("/directory/user/search", web::post().to(directory))
                .route("/identity/single", web::post().to(single))
                .route("/identity/bulk", web::post().to(bulk))
                .route("/profile/displayName", web::post().to(display_name))
                .route("/profile/threepids", web::post().to(threepids))
                .route("/profile/roles", web::post().to(roles)),
        )
        .default_service(web::to(not_found));
    }
}

async fn not_found() -> HttpResponse {
    message(StatusCode::NOT_FOUND, "API endpoint not found")
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("application/problem+json").json(json!({"message": text}))
}

fn reply(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn internal() -> HttpResponse {
    message(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

/// The body as `T`, whatever the request's content type says (ma1sd sends
/// `application/json; charset=UTF-8`); a bad one is 400 with Go's wording.
async fn parse<T: serde::de::DeserializeOwned>(
    http: &HttpRequest,
    payload: web::Payload,
    state: &Ma1sdState,
) -> Result<T, HttpResponse> {
    let bytes = crate::adapters::http::read_body(http, payload, state.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let text = e.to_string();
        let detail = match text.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
            Some(field) => format!("json: unknown field \"{field}\""),
            None if e.is_eof() => "EOF".to_owned(),
            None => "invalid JSON".to_owned(),
        };
        message(StatusCode::BAD_REQUEST, &format!("failed to parse request body: {detail}"))
    })
}

macro_rules! try_or_respond {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Auth {
    mxid: String,
    localpart: String,
    domain: String,
    password: String,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LoginRequest {
    auth: Auth,
}

/// A failed login's body: Go's zero value of upstream's answer.
fn login_failed(status: StatusCode) -> HttpResponse {
    reply(status, json!({"auth": {"success": false, "id": {"type": "", "value": ""}, "profile": {}}}))
}

/// Whether `mxid` is `@localpart:domain` of this store's domain.
fn own_mxid(state: &Ma1sdState, mxid: &str, localpart: &str, domain: &str) -> bool {
    domain == state.domain && mxid == format!("@{localpart}:{domain}") && !localpart.contains('\0')
}

async fn login(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    let req: LoginRequest = try_or_respond!(parse(&http, payload, &state).await);
    let a = req.auth;
    if !own_mxid(&state, &a.mxid, &a.localpart, &a.domain) || a.password.contains('\0') {
        return login_failed(StatusCode::BAD_REQUEST);
    }
    let origin = Origin {
        source: "ma1sd".into(),
        client: http.peer_addr().map(|a| a.ip().to_canonical().to_string()),
        request_id: None,
    };
    match state.service.matrix_login(&state.workspace, &a.localpart, a.password, &origin).await {
        Ok(MatrixLogin::Accepted(identity)) => reply(
            StatusCode::OK,
            json!({"auth": {"success": true, "id": {"type": "localpart", "value": identity.localpart},
                "profile": {"display_name": identity.display_name, "three_pids": threepid_list(&identity)}}}),
        ),
        Ok(MatrixLogin::Unknown) => login_failed(StatusCode::NOT_FOUND),
        Ok(MatrixLogin::Refused) => login_failed(StatusCode::UNAUTHORIZED),
        Err(_) => login_failed(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn threepid_list(identity: &MatrixIdentity) -> Vec<Value> {
    match identity.email.as_str() {
        "" => vec![],
        email => vec![json!({"medium": "email", "address": email})],
    }
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DirectoryRequest {
    by: String,
    search_term: String,
}

async fn directory(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    let req: DirectoryRequest = try_or_respond!(parse(&http, payload, &state).await);
    let by = match req.by.as_str() {
        "name" => SearchBy::Name,
        "threepid" => SearchBy::Email,
        _ => return reply(StatusCode::BAD_REQUEST, json!({"limited": false, "results": []})),
    };
    if req.search_term.contains('\0') {
        return reply(StatusCode::OK, json!({"limited": false, "results": []}));
    }
    match state.service.directory_search(&state.workspace, by, &req.search_term).await {
        Ok((found, limited)) => {
            let results: Vec<Value> = found
                .iter()
                .map(|i| json!({"display_name": i.display_name, "user_id": i.localpart}))
                .collect();
            reply(StatusCode::OK, json!({"limited": limited, "results": results}))
        }
        Err(_) => internal(),
    }
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ThreePid {
    medium: String,
    address: String,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SingleRequest {
    lookup: ThreePid,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BulkRequest {
    lookup: Vec<ThreePid>,
}

/// The match of one lookup: only emails are known; anything else is no match.
async fn lookup(state: &Ma1sdState, pid: &ThreePid) -> Result<Option<Value>, ()> {
    if pid.medium != "email" || pid.address.is_empty() || pid.address.contains('\0') {
        return Ok(None);
    }
    let found = state.service.identity_by_email(&state.workspace, &pid.address).await.map_err(|_| ())?;
    Ok(found.map(
        |i| json!({"medium": "email", "address": i.email, "id": {"type": "localpart", "value": i.localpart}}),
    ))
}

async fn single(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    let req: SingleRequest = try_or_respond!(parse(&http, payload, &state).await);
    match lookup(&state, &req.lookup).await {
        Ok(Some(item)) => reply(StatusCode::OK, json!({"lookup": item})),
        Ok(None) => reply(StatusCode::NOT_FOUND, json!({})),
        Err(()) => internal(),
    }
}

async fn bulk(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    let req: BulkRequest = try_or_respond!(parse(&http, payload, &state).await);
    let mut items = Vec::new();
    for pid in &req.lookup {
        match lookup(&state, pid).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(()) => return internal(),
        }
    }
    reply(StatusCode::OK, json!({"lookup": items}))
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ProfileRequest {
    mxid: String,
    localpart: String,
    domain: String,
}

/// Which profile key an endpoint answers.
#[derive(Clone, Copy)]
enum ProfileKey {
    DisplayName,
    ThreePids,
    Roles,
}

async fn profile(
    http: HttpRequest,
    payload: web::Payload,
    state: &Ma1sdState,
    key: ProfileKey,
) -> HttpResponse {
    let req: ProfileRequest = try_or_respond!(parse(&http, payload, state).await);
    let empty = || reply(StatusCode::NOT_FOUND, json!({"profile": {}}));
    if !own_mxid(state, &req.mxid, &req.localpart, &req.domain) {
        return empty();
    }
    let identity = match state.service.identity_by_localpart(&state.workspace, &req.localpart).await {
        Ok(Some(identity)) => identity,
        Ok(None) => return empty(),
        Err(_) => return internal(),
    };
    let profile = match key {
        ProfileKey::DisplayName => json!({"display_name": identity.display_name}),
        ProfileKey::ThreePids => json!({"threepids": threepid_list(&identity)}),
        ProfileKey::Roles => json!({"roles": []}),
    };
    reply(StatusCode::OK, json!({"profile": profile}))
}

async fn display_name(
    http: HttpRequest,
    payload: web::Payload,
    state: web::Data<Ma1sdState>,
) -> HttpResponse {
    profile(http, payload, &state, ProfileKey::DisplayName).await
}

async fn threepids(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    profile(http, payload, &state, ProfileKey::ThreePids).await
}

async fn roles(http: HttpRequest, payload: web::Payload, state: web::Data<Ma1sdState>) -> HttpResponse {
    profile(http, payload, &state, ProfileKey::Roles).await
}

/// Binds the store's listener: the server, ready to run, and its port.
pub fn server(
    settings: &crate::config::Settings,
    service: Service,
) -> anyhow::Result<(actix_web::dev::Server, u16)> {
    use anyhow::Context as _;
    let ma1sd = &settings.ma1sd;
    let listener = std::net::TcpListener::bind(&ma1sd.http_address).with_context(|| {
        format!("cannot listen on {} (ma1sd.http_address / IAMD_MA1SD_HTTP_ADDRESS)", ma1sd.http_address)
    })?;
    let port = listener.local_addr()?.port();
    let state = web::Data::new(Ma1sdState {
        service,
        workspace: settings.compat.workspace.clone(),
        domain: ma1sd.domain.clone(),
        max_body_bytes: settings.http.max_body_bytes,
    });
    let base = ma1sd.base_url.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(state.clone()).configure(routes(&base))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}
