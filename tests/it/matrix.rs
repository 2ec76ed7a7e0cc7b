//! The full authorisation matrix: the users `reader`, `writer` and `admin` of workspace
//! `acme` (JWT bearers), each operation aimed at `acme` (own) or at `globex` (other), on every
//! protocol operation and on every REST endpoint of docs/rest.md, plus the cells whose target
//! is the caller itself (its own API keys, its own password). Tested twice, at the two ends of
//! the one access path (`service::access`):
//! - through the service: every protocol operation, each user a `Caller::User` authenticated
//!   from its JWT, as any transport would hand it over (`Service::handle_as`);
//! - end to end, over HTTP to the running application: every operation of
//!   `POST /api/v1/iam`, every REST endpoint and the caller's own cells.
//!
//! What each cell should answer comes from the tables below, written from the README's
//! "What each operation needs" — never computed by iamd's code:
//! - granted: the endpoint's success status (REST) or HTTP 200 without `error` (protocol);
//! - denied: exactly 403 `{"error":"access denied"}`, or — only for a reader or writer
//!   addressing the other workspace — the service's ownership refusal
//!   (`operation-not-permitted`); run with `IAMD_MATRIX_REPORT=1` to list those cells.
//!
//! Every user or key a cell acts on is a fresh victim made for it through the gateway, so the
//! destructive cells disturb no other; the cells that change what the rest rely on come last
//! (bootstrap, then disabling `globex` and finally `acme`). Every cell is counted: a skipped
//! one fails the test. All disagreements are reported together.

use crate::support::server::{ok, TestServer};
use crate::support::smtp::SmtpServer;
use crate::support::TestDb;
use iamd::authn_audit::Origin;
use iamd::protocol::IamRequest;
use iamd::service::{Caller, Refusal, Service};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

const PASSWORD: &str = "a long enough passphrase";

// ----------------------------------------------------------------------------------------
// The expectation tables

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Role {
    Reader,
    Writer,
    Admin,
}

const ROLES: [Role; 3] = [Role::Reader, Role::Writer, Role::Admin];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// Not `admin`: bootstrap creates a user of that name.
    fn username(self) -> String {
        format!("m-{}", self.name())
    }
}

/// Where a cell's target is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    /// In `acme`, the callers' own workspace.
    Own,
    /// In `globex`.
    Other,
    /// The operation concerns no workspace.
    Global,
}

impl Scope {
    fn workspace(self) -> &'static str {
        match self {
            Scope::Own => "acme",
            Scope::Other => "globex",
            Scope::Global => "",
        }
    }
}

/// Who may: the expectation table's one column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum May {
    /// Every authenticated user, whatever the workspace named.
    Anyone,
    /// Only an admin (users:*, keys:admin, workspaces:admin, iam:admin), in any workspace.
    AdminOnly,
    /// Every role, on itself, in its own workspace only (keys:self, own password).
    InOwnWorkspace,
}

fn expected_granted(may: May, role: Role, scope: Scope) -> bool {
    match may {
        May::Anyone => true,
        May::AdminOnly => role == Role::Admin,
        May::InOwnWorkspace => scope == Scope::Own,
    }
}

/// Every protocol operation: (operation, concerns a workspace (an own and an other cell per
/// role) or none (one cell per role), who may). User and key operations target ANOTHER
/// user here; the caller's own are in `OWN_CELLS`. The last two change what the others rely
/// on and run last.
const PROTOCOL: [(&str, bool, May); 36] = [
    ("login", true, May::Anyone),
    ("whoami", true, May::Anyone),
    ("bootstrap-status", true, May::Anyone),
    ("get-signing-key-public", true, May::Anyone),
    ("list-my-workspaces", true, May::Anyone),
    ("change-password", true, May::AdminOnly),
    ("reset-password", true, May::AdminOnly),
    ("create-user", true, May::AdminOnly),
    ("list-users", true, May::AdminOnly),
    ("get-user", true, May::AdminOnly),
    ("update-user", true, May::AdminOnly),
    ("disable-user", true, May::AdminOnly),
    ("enable-user", true, May::AdminOnly),
    ("delete-user", true, May::AdminOnly),
    ("create-api-key", true, May::AdminOnly),
    ("list-api-keys", true, May::AdminOnly),
    ("revoke-api-key", true, May::AdminOnly),
    ("get-workspace", true, May::AdminOnly),
    ("update-workspace", true, May::AdminOnly),
    ("create-workspace", false, May::AdminOnly),
    ("list-workspaces", false, May::AdminOnly),
    ("rotate-signing-key", false, May::AdminOnly),
    ("resolve-api-key", false, May::AdminOnly),
    ("authorise", false, May::AdminOnly),
    ("authorise-many", false, May::AdminOnly),
    ("authenticate-anonymous", false, May::AdminOnly),
    ("mint-token", true, May::AdminOnly),
    ("logout-all", true, May::AdminOnly),
    ("validate-token", false, May::AdminOnly),
    ("issue-token", false, May::AdminOnly),
    ("request-verification", false, May::Anyone),
    ("verify-email", false, May::Anyone),
    ("request-password-reset", false, May::Anyone),
    ("complete-password-reset", false, May::Anyone),
    ("bootstrap", false, May::AdminOnly),
    ("disable-workspace", true, May::AdminOnly),
];

/// 22 workspace operations × 3 roles × 2 workspaces + 14 workspace-less × 3 roles.
const PROTOCOL_CELLS: usize = 174;

/// Every REST endpoint but change-password (the caller's own only: `OWN_CELLS`):
/// (method, path as docs/rest.md writes it, operation, concerns a workspace, who may,
/// success status). Disabling a workspace runs last.
const REST: [(&str, &str, &str, bool, May, u16); 26] = [
    ("POST", "/api/v1/auth/login", "login", true, May::Anyone, 200),
    ("GET", "/api/v1/auth/whoami", "whoami", false, May::Anyone, 200),
    ("GET", "/api/v1/auth/bootstrap-status", "bootstrap-status", false, May::Anyone, 200),
    ("GET", "/api/v1/auth/validate", "validate", false, May::Anyone, 204),
    ("POST", "/api/v1/auth/introspect", "introspect", false, May::Anyone, 200),
    ("GET", "/api/v1/workspaces", "list-workspaces", false, May::AdminOnly, 200),
    ("POST", "/api/v1/workspaces", "create-workspace", false, May::AdminOnly, 201),
    ("GET", "/api/v1/workspaces/{id}", "get-workspace", true, May::AdminOnly, 200),
    ("PATCH", "/api/v1/workspaces/{id}", "update-workspace", true, May::AdminOnly, 200),
    ("GET", "/api/v1/workspaces/{ws}/users", "list-users", true, May::AdminOnly, 200),
    ("POST", "/api/v1/workspaces/{ws}/users", "create-user", true, May::AdminOnly, 201),
    ("GET", "/api/v1/workspaces/{ws}/users/{id}", "get-user", true, May::AdminOnly, 200),
    ("PATCH", "/api/v1/workspaces/{ws}/users/{id}", "update-user", true, May::AdminOnly, 200),
    ("DELETE", "/api/v1/workspaces/{ws}/users/{id}", "delete-user", true, May::AdminOnly, 204),
    ("POST", "/api/v1/workspaces/{ws}/users/{id}/disable", "disable-user", true, May::AdminOnly, 204),
    ("POST", "/api/v1/workspaces/{ws}/users/{id}/enable", "enable-user", true, May::AdminOnly, 200),
    (
        "POST",
        "/api/v1/workspaces/{ws}/users/{id}/reset-password",
        "reset-password",
        true,
        May::AdminOnly,
        200,
    ),
    ("GET", "/api/v1/workspaces/{ws}/users/{id}/api-keys", "list-api-keys", true, May::AdminOnly, 200),
    ("POST", "/api/v1/workspaces/{ws}/users/{id}/api-keys", "create-api-key", true, May::AdminOnly, 201),
    ("DELETE", "/api/v1/api-keys/{id}", "revoke-api-key", true, May::AdminOnly, 204),
    ("POST", "/api/v1/signing-keys/rotate", "rotate-signing-key", false, May::AdminOnly, 200),
    ("POST", "/api/v1/users/{id}/token", "issue-token", false, May::AdminOnly, 200),
    ("POST", "/api/v1/auth/register", "register", false, May::Anyone, 201),
    ("POST", "/api/v1/auth/verification", "request-verification", false, May::Anyone, 204),
    ("POST", "/api/v1/auth/password-reset", "request-password-reset", false, May::Anyone, 204),
    ("POST", "/api/v1/workspaces/{id}/disable", "disable-workspace", true, May::AdminOnly, 204),
];

/// 15 workspace endpoints × 3 roles × 2 workspaces + 11 workspace-less × 3 roles.
const REST_CELLS: usize = 123;

/// The endpoints that take an email token and nothing else (no bearer matters): what they
/// answer is `tests/it/accounts.rs`'s, with real tokens from real mail.
const EMAIL_TOKEN_ENDPOINTS: [&str; 2] =
    ["POST /api/v1/auth/verify", "POST /api/v1/auth/password-reset/complete"];

/// The endpoints only `OWN_CELLS` covers.
const CHANGE_PASSWORD: &str = "POST /api/v1/auth/change-password";
const LOGOUT_ALL: &str = "POST /api/v1/auth/logout-all";

/// The caller's own keys, password and sessions (`May::InOwnWorkspace`): per role, in `acme`
/// the protocol's create-, list-, revoke-api-key, change-password and logout-all and the five
/// REST endpoints (5 + 5), and for a reader and a writer the same addressed through `globex`
/// where a request can name a workspace (5 protocol + 2 REST). An admin's own user is in
/// `acme`: through `globex` its request contradicts itself (the ownership rule's business, not
/// a role's).
const OWN_CELLS: usize = 3 * (5 + 5) + 2 * (5 + 2);

/// The scopes of an operation, in order: `globex` before `acme` for disabling a workspace,
/// so that disabling the callers' own comes last of all.
fn scopes(op: &str, scoped: bool) -> Vec<Scope> {
    match (scoped, op) {
        (false, _) => vec![Scope::Global],
        (true, "disable-workspace") => vec![Scope::Other, Scope::Own],
        (true, _) => vec![Scope::Own, Scope::Other],
    }
}

// ----------------------------------------------------------------------------------------
// The world

/// How the cells reach the access check.
enum Via {
    /// End to end: HTTP to the application.
    Http(TestServer),
    /// The service itself (its own actix System is the test's).
    Service(Service),
}

struct World {
    via: Via,
    /// Where the mail of the email flows goes (they refuse to run without one).
    _smtp: SmtpServer,
    ids: HashMap<Role, String>,
    jwts: HashMap<Role, String>,
    next: AtomicU32,
}

/// Cheap argon2: the matrix is about authorisation, and it hashes a victim per cell.
const CHEAP_ARGON2: [(&str, &str); 3] = [
    ("IAMD_BOOTSTRAP_ON_START", "false"),
    ("IAMD_ARGON2_MEMORY_KIB", "256"),
    ("IAMD_ARGON2_ITERATIONS", "1"),
];

/// The settings of a matrix world: cheap argon2, an SMTP server, self-registration into
/// `acme`.
fn settings(smtp: &SmtpServer) -> Vec<(String, String)> {
    let accounts =
        [("IAMD_ACCOUNTS_SELF_REGISTRATION", "true"), ("IAMD_ACCOUNTS_REGISTRATION_WORKSPACE", "acme")];
    CHEAP_ARGON2
        .iter()
        .chain(accounts.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(smtp.env().into_iter().map(|(k, v)| (k.to_owned(), v)))
        .collect()
}

/// The world over HTTP.
async fn world(db: &TestDb) -> World {
    let smtp = SmtpServer::start();
    let env = settings(&smtp);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    populated(Via::Http(TestServer::spawn(db.url(), &env)), smtp).await
}

/// The world of the service alone. Must run inside an actix System (`#[actix_web::test]`).
async fn service_world(db: &TestDb) -> World {
    let smtp = SmtpServer::start();
    let url = ("IAMD_DATABASE_URL".to_owned(), db.url().to_owned());
    let settings =
        iamd::config::Settings::from_sources("", settings(&smtp).into_iter().chain([url])).unwrap();
    let service = iamd::startup::build_service(&settings).await.unwrap();
    service.ensure_signing_key().await.unwrap();
    populated(Via::Service(service), smtp).await
}

/// Workspaces `acme` and `globex`; in `acme` a reader, a writer and an admin, logged in.
async fn populated(via: Via, smtp: SmtpServer) -> World {
    let mut w =
        World { via, _smtp: smtp, ids: HashMap::new(), jwts: HashMap::new(), next: AtomicU32::new(0) };
    for ws in ["acme", "globex"] {
        ok(w.gateway(json!({"operation": "create-workspace", "workspace_record": {"id": ws}})).await);
    }
    for role in ROLES {
        let r = ok(w
            .gateway(json!({"operation": "create-user", "workspace": "acme",
                "user": {"username": role.username(), "password": PASSWORD, "roles": [role.name()]}}))
            .await);
        w.ids.insert(role, r["user"]["id"].as_str().unwrap().to_owned());
        let jwt = w.login(&role.username(), PASSWORD).await;
        w.jwts.insert(role, jwt);
    }
    w
}

impl World {
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A request from the gateway (which no rule refuses): the reply.
    async fn gateway(&self, request: Value) -> Value {
        match &self.via {
            Via::Http(server) => server.call(request).await,
            Via::Service(service) => {
                let request = IamRequest::from_json(request.to_string().as_bytes()).unwrap();
                let reply = service.handle_as(&Caller::Gateway, request, &Origin::of("test")).await;
                serde_json::to_value(reply.expect("the gateway is never refused")).unwrap()
            }
        }
    }

    /// A JWT from login through the gateway.
    async fn login(&self, username: &str, password: &str) -> String {
        let r =
            ok(self.gateway(json!({"operation": "login", "username": username, "password": password})).await);
        r["jwt"].as_str().expect("a jwt").to_owned()
    }

    /// A new JWT for `role`, whose sessions ended (a password change, logout-all).
    async fn relogin(&mut self, role: Role, password: &str) {
        let jwt = self.login(&role.username(), password).await;
        self.jwts.insert(role, jwt);
    }

    /// A fresh reader in `ws`: (id, username).
    async fn victim(&self, ws: &str) -> (String, String) {
        let username = self.unique("victim");
        let r = ok(self
            .gateway(json!({"operation": "create-user", "workspace": ws,
                "user": {"username": username, "password": PASSWORD, "roles": ["reader"]}}))
            .await);
        (r["user"]["id"].as_str().unwrap().to_owned(), username)
    }

    /// A fresh API key of `user` in `ws`: (id, plaintext).
    async fn key_of(&self, ws: &str, user: &str) -> (String, String) {
        let r = ok(self
            .gateway(json!({"operation": "create-api-key", "workspace": ws,
                "key": {"user_id": user, "name": self.unique("key")}}))
            .await);
        (r["api_key"]["id"].as_str().unwrap().to_owned(), r["api_key_plaintext"].as_str().unwrap().to_owned())
    }

    async fn disable_user(&self, ws: &str, user: &str) {
        ok(self.gateway(json!({"operation": "disable-user", "workspace": ws, "user_id": user})).await);
    }

    /// A protocol request as `role`: over HTTP, `POST /api/v1/iam` with its JWT; through the
    /// service, the `Caller` its JWT authenticates as, its answer written as HTTP writes it
    /// (a refusal: 403 `access denied`; a reply: 200).
    async fn iam(&self, role: Role, request: &Value) -> (u16, Value) {
        let jwt = &self.jwts[&role];
        match &self.via {
            Via::Http(server) => server.post(Some(jwt), &request.to_string()).await,
            Via::Service(service) => {
                let origin = Origin::of("test");
                let principal = service.authenticate_from(jwt, &origin).await.unwrap().expect("a valid JWT");
                let req = IamRequest::from_json(request.to_string().as_bytes()).unwrap();
                match service.handle_as(&Caller::User(principal), req, &origin).await {
                    Ok(reply) => (200, serde_json::to_value(reply).unwrap()),
                    Err(Refusal::Forbidden) => (403, json!({"error": "access denied"})),
                    Err(Refusal::Unauthenticated) => (401, json!({"error": "auth failure"})),
                }
            }
        }
    }

    /// A REST call as `role`: (status, JSON body), `Value::Null` for an empty body.
    async fn rest(&self, role: Role, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let Via::Http(server) = &self.via else { panic!("REST is HTTP") };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        server.request(method, path, Some(&self.jwts[&role]), body.map(Value::to_string), &[]).await
    }
}

// ----------------------------------------------------------------------------------------
// The verdicts

/// How success looks.
#[derive(Clone, Copy)]
enum Success {
    /// `POST /api/v1/iam`: 200 without `error`.
    Protocol,
    /// `POST /api/v1/iam` of an operation whose own answer is always `auth-failed`
    /// (authenticate-anonymous): that answer, not a 403.
    ProtocolAuthFailed,
    /// A REST endpoint: this status, without `error`.
    Rest(u16),
}

#[derive(Default)]
struct Tally {
    cells: usize,
    disagreements: Vec<String>,
    /// Denials that came from the service's ownership rule, not the access check.
    ownership: Vec<String>,
}

impl Tally {
    /// Judges one cell, and says whether it was granted (succeeded). `ownership_ok`: an
    /// `operation-not-permitted` is an acceptable denial.
    fn record(
        &mut self,
        cell: String,
        granted: bool,
        ownership_ok: bool,
        success: Success,
        reply: (u16, Value),
    ) -> bool {
        self.cells += 1;
        let (status, body) = reply;
        let no_error = body.get("error").is_none();
        let (was_granted, ownership_status) = match success {
            Success::Protocol => (status == 200 && no_error, 200),
            Success::ProtocolAuthFailed => (status == 200 && body["error"]["type"] == "auth-failed", 200),
            Success::Rest(expected) => (status == expected && no_error, 403),
        };
        let access_denied = status == 403 && body == json!({"error": "access denied"});
        let ownership = status == ownership_status && body["error"]["type"] == "operation-not-permitted";
        if granted {
            if !was_granted {
                self.disagreements.push(format!("{cell}\n    expected granted, got {status} {body}"));
            }
        } else if access_denied {
        } else if ownership && ownership_ok {
            self.ownership.push(format!("{cell} -> {status} {body}"));
        } else {
            self.disagreements.push(format!("{cell}\n    expected 403 access denied, got {status} {body}"));
        }
        was_granted
    }

    #[track_caller]
    fn finish(self, cells: usize) {
        if std::env::var_os("IAMD_MATRIX_REPORT").is_some() && !self.ownership.is_empty() {
            eprintln!("denied by the ownership rule, not the access check:\n{}", self.ownership.join("\n"));
        }
        assert!(
            self.disagreements.is_empty(),
            "{} of {} cells disagree with the table:\n{}",
            self.disagreements.len(),
            self.cells,
            self.disagreements.join("\n")
        );
        assert_eq!(self.cells, cells, "every cell ran, once");
    }
}

// ----------------------------------------------------------------------------------------
// The requests

/// The request of a protocol cell, its victim made first.
async fn protocol_request(w: &World, op: &str, scope: Scope) -> Value {
    let ws = scope.workspace();
    let request = match op {
        "login" => {
            let (_, username) = w.victim(ws).await;
            json!({"username": username, "password": PASSWORD, "workspace": ws})
        }
        "whoami" | "bootstrap-status" | "get-signing-key-public" | "list-my-workspaces" | "list-users" => {
            json!({"workspace": ws})
        }
        "change-password" => {
            let (user, _) = w.victim(ws).await;
            json!({"workspace": ws, "user_id": user, "password": PASSWORD,
                "new_password": "a different long passphrase"})
        }
        "reset-password" | "get-user" | "disable-user" | "delete-user" | "list-api-keys" => {
            json!({"workspace": ws, "user_id": w.victim(ws).await.0})
        }
        "enable-user" => {
            let (user, _) = w.victim(ws).await;
            w.disable_user(ws, &user).await;
            json!({"workspace": ws, "user_id": user})
        }
        "update-user" => {
            json!({"workspace": ws, "user_id": w.victim(ws).await.0, "user": {"name": "Renamed"}})
        }
        "create-user" => json!({"workspace": ws,
            "user": {"username": w.unique("new"), "password": PASSWORD, "roles": ["reader"]}}),
        "create-api-key" => {
            json!({"workspace": ws, "key": {"user_id": w.victim(ws).await.0, "name": w.unique("key")}})
        }
        "revoke-api-key" => {
            let (user, _) = w.victim(ws).await;
            json!({"workspace": ws, "key_id": w.key_of(ws, &user).await.0})
        }
        "get-workspace" | "disable-workspace" => json!({"workspace_record": {"id": ws}}),
        "update-workspace" => json!({"workspace_record": {"id": ws, "name": "Renamed"}}),
        "create-workspace" => json!({"workspace_record": {"id": w.unique("ws")}}),
        "list-workspaces" | "rotate-signing-key" | "bootstrap" => json!({}),
        "resolve-api-key" => {
            let (user, _) = w.victim("acme").await;
            json!({"api_key": w.key_of("acme", &user).await.1})
        }
        "authorise" => json!({"user_id": w.ids[&Role::Reader], "capability": "graph:read",
            "resource_json": json!({"workspace": "acme"}).to_string()}),
        "authorise-many" => json!({"user_id": w.ids[&Role::Reader],
            "authorise_checks": json!([{"capability": "graph:read", "resource": {"workspace": "acme"}}]).to_string()}),
        "authenticate-anonymous" => json!({"client_ip": "192.0.2.1"}),
        "logout-all" => json!({"workspace": ws, "user_id": w.victim(ws).await.0}),
        "validate-token" => json!({"token": w.jwts[&Role::Reader]}),
        "issue-token" => json!({"user_id": w.victim("acme").await.0, "duration": "1h"}),
        // Victims have no address: nothing to mail, the one answer for anyone.
        "request-verification" | "request-password-reset" => json!({"username": w.victim("acme").await.1}),
        // Not a token: the one auth-failed, for anyone.
        "verify-email" => json!({"token": "not.a.token"}),
        "complete-password-reset" => {
            json!({"token": "not.a.token", "new_password": "a brand new passphrase"})
        }
        "mint-token" => json!({"workspace": ws, "user_id": w.victim(ws).await.0,
            "user_context_json": json!({"purpose": "matrix"}).to_string()}),
        other => panic!("no request for {other}"),
    };
    let mut request = request;
    request["operation"] = json!(op);
    request
}

/// The path and body of a REST cell, its victim made first.
async fn rest_request(w: &World, op: &str, template: &str, scope: Scope) -> (String, Option<Value>) {
    let ws = scope.workspace();
    let path = |id: &str| template.replace("{ws}", ws).replace("{id}", id);
    match op {
        "login" => {
            let (_, username) = w.victim(ws).await;
            (path(""), Some(json!({"username": username, "password": PASSWORD, "workspace": ws})))
        }
        "whoami" | "bootstrap-status" | "list-workspaces" | "rotate-signing-key" | "validate" => {
            (path(""), None)
        }
        "introspect" => (path(""), Some(json!({"token": w.jwts[&Role::Reader]}))),
        "register" => {
            let name = w.unique("registrant");
            (
                path(""),
                Some(json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.org")})),
            )
        }
        "request-verification" | "request-password-reset" => {
            (path(""), Some(json!({"username": w.victim("acme").await.1})))
        }
        "issue-token" => (path(&w.victim("acme").await.0), Some(json!({"duration": "1h"}))),
        "create-workspace" => (path(""), Some(json!({"id": w.unique("ws")}))),
        "get-workspace" | "disable-workspace" | "list-users" => (path(ws), None),
        "update-workspace" => (path(ws), Some(json!({"name": "Renamed"}))),
        "create-user" => {
            (path(""), Some(json!({"username": w.unique("new"), "password": PASSWORD, "roles": ["reader"]})))
        }
        "get-user" | "delete-user" | "disable-user" | "reset-password" | "list-api-keys" => {
            (path(&w.victim(ws).await.0), None)
        }
        "update-user" => (path(&w.victim(ws).await.0), Some(json!({"name": "Renamed"}))),
        "enable-user" => {
            let (user, _) = w.victim(ws).await;
            w.disable_user(ws, &user).await;
            (path(&user), None)
        }
        "create-api-key" => (path(&w.victim(ws).await.0), Some(json!({"name": w.unique("key")}))),
        "revoke-api-key" => {
            let (user, _) = w.victim(ws).await;
            (path(&w.key_of(ws, &user).await.0), None)
        }
        other => panic!("no request for {other}"),
    }
}

/// `METHOD /path` of every endpoint in docs/rest.md's table.
fn documented_endpoints() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rest.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split('`').next())
        .filter(|endpoint| endpoint.contains(" /api/v1/"))
        .map(str::to_owned)
        .collect()
}

// ----------------------------------------------------------------------------------------
// The matrices

#[actix_web::test]
async fn every_protocol_operation_is_granted_or_refused_by_the_service_by_role_and_workspace() {
    let db = TestDb::new().await;
    protocol_matrix(&service_world(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_operation_is_granted_or_denied_over_http_by_role_and_workspace() {
    let db = TestDb::new().await;
    protocol_matrix(&world(&db).await).await;
}

/// Every cell of [`PROTOCOL`], as each role.
async fn protocol_matrix(w: &World) {
    let ops: BTreeSet<&str> = PROTOCOL.iter().map(|(op, ..)| *op).collect();
    let all: BTreeSet<&str> = iamd::protocol::Operation::ALL.iter().map(|op| op.as_str()).collect();
    assert_eq!((ops.len(), &ops), (PROTOCOL.len(), &all), "the table names every operation once");
    let mut tally = Tally::default();
    for (op, scoped, may) in PROTOCOL {
        for role in ROLES {
            for scope in scopes(op, scoped) {
                let request = protocol_request(w, op, scope).await;
                let reply = w.iam(role, &request).await;
                let cell = format!("{} {scope:?} POST /api/v1/iam {request}", role.name());
                let ownership_ok = role != Role::Admin && scope == Scope::Other;
                let success =
                    if matches!(op, "authenticate-anonymous" | "verify-email" | "complete-password-reset") {
                        Success::ProtocolAuthFailed
                    } else {
                        Success::Protocol
                    };
                tally.record(cell, expected_granted(may, role, scope), ownership_ok, success, reply);
            }
        }
    }
    tally.finish(PROTOCOL_CELLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_endpoint_is_granted_or_denied_by_role_and_workspace() {
    let mut tabled: BTreeSet<String> =
        REST.iter().map(|(method, path, ..)| format!("{method} {path}")).collect();
    assert_eq!(tabled.len(), REST.len(), "no endpoint twice");
    tabled.insert(CHANGE_PASSWORD.to_owned());
    tabled.insert(LOGOUT_ALL.to_owned());
    tabled.extend(EMAIL_TOKEN_ENDPOINTS.map(str::to_owned));
    assert_eq!(tabled, documented_endpoints(), "the table holds every endpoint of docs/rest.md");

    let db = TestDb::new().await;
    let w = world(&db).await;
    let mut tally = Tally::default();
    for (method, template, op, scoped, may, success) in REST {
        for role in ROLES {
            for scope in scopes(op, scoped) {
                let (path, body) = rest_request(&w, op, template, scope).await;
                let reply = w.rest(role, method, &path, body.as_ref()).await;
                let shown = body.map(|b| b.to_string()).unwrap_or_default();
                let cell = format!("{} {scope:?} {method} {path} {shown}", role.name());
                let ownership_ok = role != Role::Admin && scope == Scope::Other;
                tally.record(
                    cell,
                    expected_granted(may, role, scope),
                    ownership_ok,
                    Success::Rest(success),
                    reply,
                );
            }
        }
    }
    tally.finish(REST_CELLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_keys_and_own_password_are_granted_to_every_role_in_its_own_workspace_only() {
    let db = TestDb::new().await;
    let mut w = world(&db).await;
    let mut tally = Tally::default();
    let may = May::InOwnWorkspace;
    for role in ROLES {
        let me = w.ids[&role].clone();
        let mut password = PASSWORD.to_owned();
        for scope in [Scope::Own, Scope::Other] {
            if role == Role::Admin && scope == Scope::Other {
                continue; // see OWN_CELLS
            }
            let ws = scope.workspace();
            let granted = expected_granted(may, role, scope);
            let ownership_ok = scope == Scope::Other;
            let cell = |what: &str| format!("{} {scope:?} own {what}", role.name());

            // The protocol's key operations on the caller's own user.
            let (key, _) = w.key_of("acme", &me).await;
            for request in [
                json!({"operation": "create-api-key", "workspace": ws, "key": {"user_id": me, "name": w.unique("mine")}}),
                json!({"operation": "list-api-keys", "workspace": ws, "user_id": me}),
                json!({"operation": "revoke-api-key", "workspace": ws, "key_id": key}),
            ] {
                let reply = w.iam(role, &request).await;
                tally.record(
                    cell(&format!("POST /api/v1/iam {request}")),
                    granted,
                    ownership_ok,
                    Success::Protocol,
                    reply,
                );
            }

            // The REST key endpoints; revoking names no workspace, so only in its own.
            let keys = format!("/api/v1/workspaces/{ws}/users/{me}/api-keys");
            let body = json!({"name": w.unique("mine")});
            let reply = w.rest(role, "POST", &keys, Some(&body)).await;
            tally.record(
                cell(&format!("POST {keys} {body}")),
                granted,
                ownership_ok,
                Success::Rest(201),
                reply,
            );
            let reply = w.rest(role, "GET", &keys, None).await;
            tally.record(cell(&format!("GET {keys}")), granted, ownership_ok, Success::Rest(200), reply);
            if scope == Scope::Own {
                let (key, _) = w.key_of("acme", &me).await;
                let path = format!("/api/v1/api-keys/{key}");
                let reply = w.rest(role, "DELETE", &path, None).await;
                tally.record(cell(&format!("DELETE {path}")), granted, false, Success::Rest(204), reply);
            }

            // The caller's own password: a change kills its token, so it logs in again.
            let next = format!("{PASSWORD} {}", w.unique("changed"));
            let request = json!({"operation": "change-password", "workspace": ws, "user_id": me,
                "password": password, "new_password": next});
            let reply = w.iam(role, &request).await;
            let changed = tally.record(
                cell(&format!("POST /api/v1/iam {request}")),
                granted,
                ownership_ok,
                Success::Protocol,
                reply,
            );
            if changed {
                password = next;
                w.relogin(role, &password).await;
            }
            if scope == Scope::Own {
                let next = format!("{PASSWORD} {}", w.unique("changed"));
                let body = json!({"password": password, "new_password": next});
                let reply = w.rest(role, "POST", "/api/v1/auth/change-password", Some(&body)).await;
                let changed = tally.record(
                    cell(&format!("{CHANGE_PASSWORD} {body}")),
                    granted,
                    false,
                    Success::Rest(204),
                    reply,
                );
                if changed {
                    password = next;
                    w.relogin(role, &password).await;
                }
            }

            // Logging itself out everywhere kills its token: it logs in again.
            let request = json!({"operation": "logout-all", "workspace": ws, "user_id": me});
            let reply = w.iam(role, &request).await;
            let ended = tally.record(
                cell(&format!("POST /api/v1/iam {request}")),
                granted,
                ownership_ok,
                Success::Protocol,
                reply,
            );
            if ended {
                w.relogin(role, &password).await;
            }
            if scope == Scope::Own {
                let reply = w.rest(role, "POST", "/api/v1/auth/logout-all", None).await;
                let ended = tally.record(cell(LOGOUT_ALL), granted, false, Success::Rest(204), reply);
                if ended {
                    w.relogin(role, &password).await;
                }
            }
        }
    }
    tally.finish(OWN_CELLS);
}
