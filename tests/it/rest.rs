//! The per-operation REST API under `/api/v1` (docs/rest.md) through the real binary: every
//! endpoint of the contract's table as an admin, the bearer and capability rules, the mapping
//! of protocol errors to statuses, list pagination, `Idempotency-Key` and change-password.
//!
//! Data is set up through the gateway (`POST /api/v1/iam` with the trusted secret); the calls
//! under test carry a user's API key or JWT.

use crate::support::server::{error_type, ok, TestServer, GATEWAY_SECRET};
use crate::support::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

const PASSWORD: &str = "a long enough passphrase";
const NEW_PASSWORD: &str = "a brand new long passphrase";

/// The fields a user record always has, and those it has when set (Netsoc's account fields).
const USER_OPTIONAL_FIELDS: [&str; 4] = ["first_name", "last_name", "ssh_key", "renewed"];
const USER_FIELDS: [&str; 11] = [
    "id",
    "workspace",
    "default_workspace",
    "username",
    "name",
    "email",
    "roles",
    "enabled",
    "must_change_password",
    "created",
    "verified",
];
/// The fields of a workspace record, exactly.
const WORKSPACE_FIELDS: [&str; 4] = ["id", "name", "enabled", "created"];
/// The fields an API key record always has, and those it may have.
const KEY_FIELDS: [&str; 5] = ["id", "user_id", "name", "prefix", "created"];
const KEY_OPTIONAL_FIELDS: [&str; 2] = ["expires", "last_used"];

// ----------------------------------------------------------------------------------------
// HTTP helpers

/// A REST call with a raw body: (status, JSON body), `Value::Null` for an empty body and the
/// text as a `Value::String` when it is not JSON.
async fn rest_raw(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    server.request(method, path, bearer, body, headers).await
}

/// A REST call with a JSON body.
async fn rest(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    rest_raw(server, method, path, bearer, body.map(|b| b.to_string()), headers).await
}

async fn get(server: &TestServer, path: &str, bearer: &str) -> (u16, Value) {
    rest(server, Method::GET, path, Some(bearer), None, &[]).await
}

async fn post(server: &TestServer, path: &str, bearer: &str, body: Value) -> (u16, Value) {
    rest(server, Method::POST, path, Some(bearer), Some(body), &[]).await
}

/// A POST without a body (the action endpoints: disable, enable, reset-password, rotate).
async fn post_empty(server: &TestServer, path: &str, bearer: &str) -> (u16, Value) {
    rest(server, Method::POST, path, Some(bearer), None, &[]).await
}

async fn patch(server: &TestServer, path: &str, bearer: &str, body: Value) -> (u16, Value) {
    rest(server, Method::PATCH, path, Some(bearer), Some(body), &[]).await
}

async fn delete(server: &TestServer, path: &str, bearer: &str) -> (u16, Value) {
    rest(server, Method::DELETE, path, Some(bearer), None, &[]).await
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------
// Assertions

/// A protocol error: `status` with `{"error":{"type":kind,"message":…}}`, a non-empty message.
#[track_caller]
fn assert_error(reply: &(u16, Value), status: u16, kind: &str, what: &str) {
    let (got, body) = reply;
    assert_eq!((*got, error_type(body)), (status, kind), "{what}: {got} {body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: the error carries a message: {body}"
    );
}

#[track_caller]
fn assert_auth_failure(reply: &(u16, Value), what: &str) {
    assert_eq!(reply, &(401, json!({"error": "auth failure"})), "{what}");
}

#[track_caller]
fn assert_access_denied(reply: &(u16, Value), what: &str) {
    assert_eq!(reply, &(403, json!({"error": "access denied"})), "{what}");
}

/// 204 with an empty body.
#[track_caller]
fn assert_no_content(reply: &(u16, Value), what: &str) {
    assert_eq!(reply, &(204, Value::Null), "{what}");
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[track_caller]
fn assert_user_record(v: &Value) {
    let expected: BTreeSet<String> = USER_FIELDS.iter().map(|s| s.to_string()).collect();
    let set: BTreeSet<String> =
        keys_of(v).into_iter().filter(|k| !USER_OPTIONAL_FIELDS.contains(&k.as_str())).collect();
    assert_eq!(set, expected, "a user record: {v}");
    assert!(v["roles"].is_array() && v["enabled"].is_boolean(), "{v}");
    assert_eq!(v["default_workspace"], v["workspace"], "TrustGraph's alias equals the workspace: {v}");
}

#[track_caller]
fn assert_workspace_record(v: &Value) {
    let expected: BTreeSet<String> = WORKSPACE_FIELDS.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys_of(v), expected, "a workspace record: {v}");
}

#[track_caller]
fn assert_key_record(v: &Value) {
    let keys = keys_of(v);
    for field in KEY_FIELDS {
        assert!(keys.contains(field), "an API key record has {field}: {v}");
    }
    for field in &keys {
        assert!(
            KEY_FIELDS.contains(&field.as_str()) || KEY_OPTIONAL_FIELDS.contains(&field.as_str()),
            "an API key record has no field {field}: {v}"
        );
    }
}

/// The `items` of a list reply, asserting the list shape.
#[track_caller]
fn items(reply: &(u16, Value), what: &str) -> Vec<Value> {
    let (status, body) = reply;
    assert_eq!(*status, 200, "{what}: {body}");
    let keys = keys_of(body);
    assert!(keys.contains("items"), "{what}: a list has items: {body}");
    assert!(keys.iter().all(|k| k == "items" || k == "next_cursor"), "{what}: the list shape: {body}");
    body["items"].as_array().unwrap_or_else(|| panic!("{what}: items is a list: {body}")).clone()
}

fn item_ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()).collect()
}

// ----------------------------------------------------------------------------------------
// The world

/// Workspaces `acme` and `globex`; in `acme` an admin, a writer and a reader, in `globex` a
/// reader `other`; an API key of the admin.
struct World {
    server: TestServer,
    ids: HashMap<&'static str, String>,
    admin_key: String,
}

async fn world(db: &TestDb) -> World {
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    for ws in ["acme", "globex"] {
        ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": ws}})).await);
    }
    let mut ids = HashMap::new();
    for (name, ws, role) in [
        ("admin", "acme", "admin"),
        ("writer", "acme", "writer"),
        ("reader", "acme", "reader"),
        ("other", "globex", "reader"),
    ] {
        ids.insert(name, server.create_user(ws, name, PASSWORD, &[role]).await);
    }
    let admin_key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": ids["admin"], "name": "admin-key"}}))
        .await)["api_key_plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    World { server, ids, admin_key }
}

/// A JWT from `login` through the gateway.
async fn jwt_of(server: &TestServer, username: &str, password: &str) -> String {
    server.jwt(username, password).await
}

/// How many users `ws` lists (one page of the default limit).
async fn user_count(server: &TestServer, bearer: &str, ws: &str) -> usize {
    items(&get(server, &format!("/api/v1/workspaces/{ws}/users"), bearer).await, "list-users").len()
}

async fn resolve(server: &TestServer, api_key: &str) -> Value {
    server.call(json!({"operation": "resolve-api-key", "api_key": api_key})).await
}

// ----------------------------------------------------------------------------------------
// 1. Every endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_its_status_and_shape_to_an_admin_and_its_effect_is_visible() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let a = admin_key.as_str();
    let s = &server;

    // POST /api/v1/auth/login, without a bearer.
    let login = rest(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "writer", "password": PASSWORD})),
        &[],
    )
    .await;
    assert_eq!(login.0, 200, "login: {}", login.1);
    assert!(login.1["jwt"].as_str().is_some_and(|j| j.split('.').count() == 3), "{}", login.1);
    assert!(login.1["jwt_expires"].as_str().is_some_and(|e| !e.is_empty()), "{}", login.1);
    let writer_jwt = login.1["jwt"].as_str().unwrap().to_owned();
    let (status, me) = get(s, "/api/v1/auth/whoami", &writer_jwt).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(ids["writer"].as_str())), "{me}");
    // With the optional workspace.
    let login = rest(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "writer", "password": PASSWORD, "workspace": "acme"})),
        &[],
    )
    .await;
    assert_eq!(login.0, 200, "login with a workspace: {}", login.1);

    // GET /api/v1/auth/whoami: the caller's own user record.
    let (status, me) = get(s, "/api/v1/auth/whoami", a).await;
    assert_eq!(status, 200, "{me}");
    assert_user_record(&me);
    assert_eq!(
        (me["id"].as_str(), me["username"].as_str(), me["workspace"].as_str()),
        (Some(ids["admin"].as_str()), Some("admin"), Some("acme"))
    );
    assert_eq!(me["roles"], json!(["admin"]));

    // GET /api/v1/auth/bootstrap-status.
    let status = get(s, "/api/v1/auth/bootstrap-status", a).await;
    assert_eq!(status, (200, json!({"bootstrap_available": false})), "an admin exists: bootstrapped");

    // GET /api/v1/workspaces.
    let listed = items(&get(s, "/api/v1/workspaces", a).await, "list-workspaces");
    listed.iter().for_each(assert_workspace_record);
    assert_eq!(item_ids(&listed), ["acme", "globex"], "oldest first");

    // POST /api/v1/workspaces → 201 workspace.
    let (status, created) =
        post(s, "/api/v1/workspaces", a, json!({"id": "initech", "name": "Initech"})).await;
    assert_eq!(status, 201, "create-workspace: {created}");
    assert_workspace_record(&created);
    assert_eq!((created["id"].as_str(), created["name"].as_str()), (Some("initech"), Some("Initech")));
    assert_eq!(created["enabled"], true);
    let listed = items(&get(s, "/api/v1/workspaces", a).await, "list-workspaces");
    assert_eq!(item_ids(&listed), ["acme", "globex", "initech"]);

    // GET /api/v1/workspaces/{id}.
    let (status, got) = get(s, "/api/v1/workspaces/initech", a).await;
    assert_eq!((status, &got), (200, &created), "get-workspace");

    // PATCH /api/v1/workspaces/{id}.
    let (status, patched) = patch(s, "/api/v1/workspaces/initech", a, json!({"name": "Initech Two"})).await;
    assert_eq!(status, 200, "update-workspace: {patched}");
    assert_workspace_record(&patched);
    assert_eq!((patched["name"].as_str(), &patched["enabled"]), (Some("Initech Two"), &json!(true)));
    let (_, got) = get(s, "/api/v1/workspaces/initech", a).await;
    assert_eq!(got["name"], "Initech Two", "the rename is visible: {got}");

    // GET /api/v1/workspaces/{ws}/users.
    let users = items(&get(s, "/api/v1/workspaces/acme/users", a).await, "list-users");
    users.iter().for_each(assert_user_record);
    assert_eq!(item_ids(&users), [ids["admin"].clone(), ids["writer"].clone(), ids["reader"].clone()]);

    // POST /api/v1/workspaces/{ws}/users → 201 user.
    let (status, carol) = post(
        s,
        "/api/v1/workspaces/initech/users",
        a,
        json!({"username": "carol", "password": PASSWORD, "name": "Carol", "email": "carol@example.com",
            "roles": ["writer"], "must_change_password": false}),
    )
    .await;
    assert_eq!(status, 201, "create-user: {carol}");
    assert_user_record(&carol);
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["workspace"], "initech");
    assert_eq!((carol["name"].as_str(), carol["email"].as_str()), (Some("Carol"), Some("carol@example.com")));
    assert_eq!(carol["roles"], json!(["writer"]));
    assert_eq!((&carol["enabled"], &carol["must_change_password"]), (&json!(true), &json!(false)));
    assert!(!carol.to_string().contains(PASSWORD), "no password in a record");
    let carol_id = carol["id"].as_str().unwrap().to_owned();
    let carol_path = format!("/api/v1/workspaces/initech/users/{carol_id}");
    let users = items(&get(s, "/api/v1/workspaces/initech/users", a).await, "list-users");
    assert_eq!(item_ids(&users), std::slice::from_ref(&carol_id));

    // GET /api/v1/workspaces/{ws}/users/{id}.
    let (status, got) = get(s, &carol_path, a).await;
    assert_eq!((status, &got), (200, &carol), "get-user");

    // PATCH /api/v1/workspaces/{ws}/users/{id}.
    let (status, patched) = patch(s, &carol_path, a, json!({"name": "Carol C.", "roles": ["reader"]})).await;
    assert_eq!(status, 200, "update-user: {patched}");
    assert_user_record(&patched);
    assert_eq!((patched["name"].as_str(), &patched["roles"]), (Some("Carol C."), &json!(["reader"])));
    let (_, got) = get(s, &carol_path, a).await;
    assert_eq!(got["name"], "Carol C.", "the update is visible: {got}");
    assert_eq!(got["roles"], json!(["reader"]));
    assert_eq!(got["username"], "carol", "what is not given is kept");
    assert_eq!(got["email"], "carol@example.com");

    // POST /api/v1/workspaces/{ws}/users/{id}/api-keys → 201 {"api_key_plaintext","api_key"}.
    let (status, created) = post(s, &format!("{carol_path}/api-keys"), a, json!({"name": "laptop"})).await;
    assert_eq!(status, 201, "create-api-key: {created}");
    assert_eq!(
        keys_of(&created),
        ["api_key", "api_key_plaintext"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        "{created}"
    );
    let plaintext = created["api_key_plaintext"].as_str().unwrap().to_owned();
    assert!(plaintext.starts_with("tg_"), "{plaintext}");
    let key = created["api_key"].clone();
    assert_key_record(&key);
    assert_eq!((key["user_id"].as_str(), key["name"].as_str()), (Some(carol_id.as_str()), Some("laptop")));
    assert!(!key.to_string().contains(&plaintext));
    let key_id = key["id"].as_str().unwrap().to_owned();
    let resolved = ok(resolve(s, &plaintext).await);
    assert_eq!(resolved["resolved_user_id"], carol_id.as_str(), "the new key resolves");

    // GET /api/v1/workspaces/{ws}/users/{id}/api-keys.
    let reply = get(s, &format!("{carol_path}/api-keys"), a).await;
    assert!(!reply.1.to_string().contains(&plaintext), "never the plaintext in a list: {}", reply.1);
    let keys = items(&reply, "list-api-keys");
    keys.iter().for_each(assert_key_record);
    assert_eq!(item_ids(&keys), std::slice::from_ref(&key_id));

    // DELETE /api/v1/api-keys/{id} → 204; the key no longer resolves.
    assert_no_content(&delete(s, &format!("/api/v1/api-keys/{key_id}"), a).await, "revoke-api-key");
    assert_eq!(error_type(&resolve(s, &plaintext).await), "auth-failed", "a revoked key is dead");

    // POST .../reset-password → 200 {"temporary_password"}; it logs in.
    let (status, reset) = post_empty(s, &format!("{carol_path}/reset-password"), a).await;
    assert_eq!(status, 200, "reset-password: {reset}");
    assert_eq!(keys_of(&reset), BTreeSet::from(["temporary_password".to_owned()]), "{reset}");
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert!(!temporary.is_empty());
    let old = server.call(json!({"operation": "login", "username": "carol", "password": PASSWORD})).await;
    assert_eq!(error_type(&old), "auth-failed", "the old password is gone");
    let carol_jwt = jwt_of(s, "carol", &temporary).await;

    // POST /api/v1/auth/change-password → 204 (the caller's own).
    let changed = post(
        s,
        "/api/v1/auth/change-password",
        &carol_jwt,
        json!({"password": temporary, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_no_content(&changed, "change-password");
    jwt_of(s, "carol", NEW_PASSWORD).await;

    // POST .../disable → 204; visible.
    assert_no_content(&post_empty(s, &format!("{carol_path}/disable"), a).await, "disable-user");
    let (_, got) = get(s, &carol_path, a).await;
    assert_eq!(got["enabled"], false, "disabled: {got}");

    // POST .../enable → 200 user; visible.
    let (status, enabled) = post_empty(s, &format!("{carol_path}/enable"), a).await;
    assert_eq!(status, 200, "enable-user: {enabled}");
    assert_user_record(&enabled);
    assert_eq!((enabled["id"].as_str(), &enabled["enabled"]), (Some(carol_id.as_str()), &json!(true)));
    let (_, got) = get(s, &carol_path, a).await;
    assert_eq!(got["enabled"], true, "enabled again: {got}");

    // DELETE /api/v1/workspaces/{ws}/users/{id} → 204; then 404.
    assert_no_content(&delete(s, &carol_path, a).await, "delete-user");
    assert_error(&get(s, &carol_path, a).await, 404, "not-found", "a deleted user");
    let users = items(&get(s, "/api/v1/workspaces/initech/users", a).await, "list-users");
    assert!(users.is_empty(), "{users:?}");

    // POST /api/v1/signing-keys/rotate → 200 {"signing_key_public"}; both keys published.
    let (status, rotated) = post_empty(s, "/api/v1/signing-keys/rotate", a).await;
    assert_eq!(status, 200, "rotate-signing-key: {rotated}");
    assert_eq!(keys_of(&rotated), BTreeSet::from(["signing_key_public".to_owned()]), "{rotated}");
    assert!(rotated["signing_key_public"].as_str().unwrap().contains("PUBLIC KEY"), "{rotated}");
    let jwks: Value =
        reqwest::get(format!("{}/.well-known/jwks.json", s.base)).await.unwrap().json().await.unwrap();
    // Ed25519 and P-256 (the /v1 tokens'): each algorithm's new key and the one in grace.
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(4), "the new keys and the ones in grace: {jwks}");

    // POST /api/v1/workspaces/{id}/disable → 204; visible.
    assert_no_content(&post_empty(s, "/api/v1/workspaces/initech/disable", a).await, "disable-workspace");
    let (status, got) = get(s, "/api/v1/workspaces/initech", a).await;
    assert_eq!((status, &got["enabled"]), (200, &json!(false)), "{got}");
    let listed = items(&get(s, "/api/v1/workspaces", a).await, "list-workspaces");
    let initech = listed.iter().find(|w| w["id"] == "initech").expect("still listed");
    assert_eq!(initech["enabled"], false);

    // Workspace `default` changes nothing: bootstrapped means an admin exists.
    let (status, _) = post(s, "/api/v1/workspaces", a, json!({"id": "default"})).await;
    assert_eq!(status, 201);
    let status = get(s, "/api/v1/auth/bootstrap-status", a).await;
    assert_eq!(status, (200, json!({"bootstrap_available": false})), "bootstrap-status after `default`");
}

// ----------------------------------------------------------------------------------------
// 2. Authentication and capabilities

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearers_are_required_and_a_reader_may_only_read_itself_and_manage_its_own_keys() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let s = &server;

    // No bearer, garbage, an unknown key, the gateway secret: 401 on a protected endpoint.
    for bearer in
        [None, Some("garbage"), Some("not.a.jwt"), Some("tg_unknownkey0123456789"), Some(GATEWAY_SECRET)]
    {
        for path in ["/api/v1/workspaces", "/api/v1/auth/whoami", "/api/v1/workspaces/acme/users"] {
            let reply = rest(s, Method::GET, path, bearer, None, &[]).await;
            assert_auth_failure(&reply, &format!("GET {path} with {bearer:?}"));
        }
    }
    let reply = rest(s, Method::POST, "/api/v1/workspaces", None, Some(json!({"id": "nobodys"})), &[]).await;
    assert_auth_failure(&reply, "create-workspace without a bearer");
    let (status, _) = get(s, "/api/v1/workspaces/nobodys", &admin_key).await;
    assert_eq!(status, 404, "nothing was created");

    // login and bootstrap-status need no bearer.
    let login = rest(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "reader", "password": PASSWORD})),
        &[],
    )
    .await;
    assert_eq!(login.0, 200, "login without a bearer: {}", login.1);
    let reader = login.1["jwt"].as_str().unwrap().to_owned();
    let status = rest(s, Method::GET, "/api/v1/auth/bootstrap-status", None, None, &[]).await;
    assert_eq!(status, (200, json!({"bootstrap_available": false})), "bootstrap-status without a bearer");

    // A reader: its own record, …
    let (status, me) = get(s, "/api/v1/auth/whoami", &reader).await;
    assert_eq!(status, 200, "{me}");
    assert_user_record(&me);
    assert_eq!((me["id"].as_str(), me["username"].as_str()), (Some(ids["reader"].as_str()), Some("reader")));

    // … but no workspace administration, no user listing, nothing in globex.
    let r = &reader;
    let other = &ids["other"];
    let own = &ids["reader"];
    let denied: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/workspaces".into(), None),
        (Method::POST, "/api/v1/workspaces".into(), Some(json!({"id": "mine"}))),
        (Method::GET, "/api/v1/workspaces/acme".into(), None),
        (Method::GET, "/api/v1/workspaces/acme/users".into(), None),
        (Method::POST, "/api/v1/signing-keys/rotate".into(), None),
        (Method::GET, "/api/v1/workspaces/globex".into(), None),
        (Method::PATCH, "/api/v1/workspaces/globex".into(), Some(json!({"name": "Mine"}))),
        (Method::POST, "/api/v1/workspaces/globex/disable".into(), None),
        (Method::GET, "/api/v1/workspaces/globex/users".into(), None),
        (
            Method::POST,
            "/api/v1/workspaces/globex/users".into(),
            Some(json!({"username": "intruder", "password": PASSWORD})),
        ),
        (Method::GET, format!("/api/v1/workspaces/globex/users/{other}"), None),
        (Method::PATCH, format!("/api/v1/workspaces/globex/users/{other}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/workspaces/globex/users/{other}"), None),
        (Method::POST, format!("/api/v1/workspaces/globex/users/{other}/disable"), None),
        (Method::POST, format!("/api/v1/workspaces/globex/users/{other}/reset-password"), None),
        (Method::GET, format!("/api/v1/workspaces/globex/users/{other}/api-keys"), None),
        (
            Method::POST,
            format!("/api/v1/workspaces/globex/users/{other}/api-keys"),
            Some(json!({"name": "theirs"})),
        ),
        // Even its own keys, addressed in another workspace.
        (Method::GET, format!("/api/v1/workspaces/globex/users/{own}/api-keys"), None),
        (Method::POST, format!("/api/v1/workspaces/globex/users/{own}/api-keys"), Some(json!({"name": "x"}))),
    ];
    for (method, path, body) in denied {
        let reply = rest(s, method.clone(), &path, Some(r), body, &[]).await;
        assert_access_denied(&reply, &format!("reader {method} {path}"));
    }
    let (_, globex) = get(s, "/api/v1/workspaces/globex", &admin_key).await;
    assert_eq!(globex["enabled"], true, "nothing was applied: {globex}");
    let (_, theirs) = get(s, &format!("/api/v1/workspaces/globex/users/{other}"), &admin_key).await;
    assert_eq!(
        (theirs["enabled"].as_bool(), theirs["name"].as_str()),
        (Some(true), Some("other")),
        "{theirs}"
    );

    // Its own API keys: create, list, use, revoke.
    let keys_path = format!("/api/v1/workspaces/acme/users/{own}/api-keys");
    let (status, created) = post(s, &keys_path, r, json!({"name": "mine"})).await;
    assert_eq!(status, 201, "a reader creates its own key: {created}");
    let plaintext = created["api_key_plaintext"].as_str().unwrap().to_owned();
    let key_id = created["api_key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["api_key"]["user_id"], own.as_str());
    let keys = items(&get(s, &keys_path, r).await, "a reader lists its own keys");
    assert_eq!(item_ids(&keys), std::slice::from_ref(&key_id));
    let (status, me) = get(s, "/api/v1/auth/whoami", &plaintext).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(own.as_str())), "its key is a bearer: {me}");

    // Not another user's keys.
    let writer = &ids["writer"];
    let writer_key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": writer, "name": "w"}}))
        .await);
    let writer_plaintext = writer_key["api_key_plaintext"].as_str().unwrap().to_owned();
    let writer_key_id = writer_key["api_key"]["id"].as_str().unwrap().to_owned();
    let theirs = format!("/api/v1/workspaces/acme/users/{writer}/api-keys");
    assert_access_denied(&get(s, &theirs, r).await, "a reader lists the writer's keys");
    assert_access_denied(
        &post(s, &theirs, r, json!({"name": "x"})).await,
        "a reader creates a key for the writer",
    );
    assert_access_denied(
        &delete(s, &format!("/api/v1/api-keys/{writer_key_id}"), r).await,
        "a reader revokes the writer's key",
    );
    assert_access_denied(
        &delete(s, &format!("/api/v1/api-keys/{writer_key_id}"), &plaintext).await,
        "a reader's API key revokes the writer's key",
    );
    ok(resolve(s, &writer_plaintext).await);
    let writer_keys = items(&get(s, &theirs, &admin_key).await, "the admin lists the writer's keys");
    assert_eq!(item_ids(&writer_keys), [writer_key_id], "the reader added nothing");

    // Revoke its own.
    assert_no_content(
        &delete(s, &format!("/api/v1/api-keys/{key_id}"), r).await,
        "a reader revokes its own key",
    );
    assert_eq!(error_type(&resolve(s, &plaintext).await), "auth-failed");
    assert_auth_failure(&get(s, "/api/v1/auth/whoami", &plaintext).await, "a revoked key as a bearer");
}

// ----------------------------------------------------------------------------------------
// 3. Errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_map_to_their_statuses_and_never_echo_a_password() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let s = &server;
    let a = admin_key.as_str();
    let users = "/api/v1/workspaces/acme/users";
    let before = user_count(s, a, "acme").await;

    // Malformed JSON, a field of the wrong type: 400 invalid-argument.
    let reply = rest_raw(s, Method::POST, users, Some(a), Some("{not json".into()), &[]).await;
    assert_error(&reply, 400, "invalid-argument", "malformed JSON");
    let reply = rest_raw(
        s,
        Method::POST,
        users,
        Some(a),
        Some(r#"{"username": "bob", "password": 987654321987}"#.into()),
        &[],
    )
    .await;
    assert_error(&reply, 400, "invalid-argument", "a password of the wrong type");
    assert!(!reply.1.to_string().contains("987654321987"), "the value is not echoed: {}", reply.1);
    let reply = post(s, users, a, json!({"username": "bob", "password": PASSWORD, "roles": "admin"})).await;
    assert_error(&reply, 400, "invalid-argument", "roles of the wrong type");
    let reply =
        rest_raw(s, Method::PATCH, &format!("{users}/{}", ids["writer"]), Some(a), Some("[1,".into()), &[])
            .await;
    assert_error(&reply, 400, "invalid-argument", "malformed JSON on update-user");

    // A weak password: 422 weak-password, not echoed.
    let weak = "Zq9wK";
    let reply = post(s, users, a, json!({"username": "bob", "password": weak})).await;
    assert_error(&reply, 422, "weak-password", "a short password");
    assert!(!reply.1.to_string().contains(weak), "{}", reply.1);
    let reply =
        post(s, users, a, json!({"username": "bobbobbobbobbob", "password": "BOBBOBBOBBOBBOB"})).await;
    assert_error(&reply, 422, "weak-password", "the username as the password");
    assert!(!reply.1.to_string().contains("BOBBOBBOBBOBBOB"), "{}", reply.1);

    // A duplicate username: 409 duplicate (usernames are global and case-insensitive).
    let secret = "a secret nobody should see again";
    let reply = post(s, users, a, json!({"username": "writer", "password": secret})).await;
    assert_error(&reply, 409, "duplicate", "a duplicate username");
    assert!(!reply.1.to_string().contains(secret));
    let reply =
        post(s, "/api/v1/workspaces/globex/users", a, json!({"username": "WRITER", "password": secret}))
            .await;
    assert_error(&reply, 409, "duplicate", "a duplicate username in another workspace");
    let reply = post(s, "/api/v1/workspaces", a, json!({"id": "acme"})).await;
    assert_error(&reply, 409, "duplicate", "a duplicate workspace");

    // Unknown things: 404 not-found.
    assert_error(&get(s, &format!("{users}/no-such-user"), a).await, 404, "not-found", "an unknown user");
    assert_error(
        &patch(s, &format!("{users}/no-such-user"), a, json!({"name": "x"})).await,
        404,
        "not-found",
        "updating an unknown user",
    );
    assert_error(
        &delete(s, &format!("{users}/no-such-user"), a).await,
        404,
        "not-found",
        "deleting an unknown user",
    );
    assert_error(&get(s, "/api/v1/workspaces/nowhere", a).await, 404, "not-found", "an unknown workspace");
    assert_error(&get(s, "/api/v1/workspaces/nowhere/users", a).await, 404, "not-found", "users of nowhere");

    // A user of acme addressed under globex by an admin: 403 operation-not-permitted.
    let writer_in_globex = format!("/api/v1/workspaces/globex/users/{}", ids["writer"]);
    let foreign = [
        get(s, &writer_in_globex, a).await,
        patch(s, &writer_in_globex, a, json!({"name": "Moved"})).await,
        delete(s, &writer_in_globex, a).await,
        post_empty(s, &format!("{writer_in_globex}/disable"), a).await,
        post_empty(s, &format!("{writer_in_globex}/reset-password"), a).await,
        get(s, &format!("{writer_in_globex}/api-keys"), a).await,
        post(s, &format!("{writer_in_globex}/api-keys"), a, json!({"name": "x"})).await,
    ];
    for (i, reply) in foreign.iter().enumerate() {
        assert_error(reply, 403, "operation-not-permitted", &format!("acme's writer under globex, call {i}"));
    }
    let (status, writer) = get(s, &format!("{users}/{}", ids["writer"]), a).await;
    assert_eq!(status, 200, "the writer is still there: {writer}");
    assert_eq!(
        (writer["enabled"].as_bool(), writer["name"].as_str()),
        (Some(true), Some("writer")),
        "{writer}"
    );
    jwt_of(s, "writer", PASSWORD).await;

    // Login with a wrong password: 401 auth-failed, the password not echoed.
    let wrong = "definitely the wrong passphrase";
    let reply = rest(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "writer", "password": wrong})),
        &[],
    )
    .await;
    assert_error(&reply, 401, "auth-failed", "login with a wrong password");
    assert!(!reply.1.to_string().contains(wrong), "{}", reply.1);
    let reply = rest(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "nobody", "password": wrong})),
        &[],
    )
    .await;
    assert_error(&reply, 401, "auth-failed", "login of an unknown user");
    let reply =
        rest_raw(s, Method::POST, "/api/v1/auth/login", None, Some("{\"username\":".into()), &[]).await;
    assert_error(&reply, 400, "invalid-argument", "login with malformed JSON");

    // Creating a user in a disabled workspace: 409 disabled.
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "initech"}})).await);
    ok(server.call(json!({"operation": "disable-workspace", "workspace_record": {"id": "initech"}})).await);
    let reply =
        post(s, "/api/v1/workspaces/initech/users", a, json!({"username": "dora", "password": secret})).await;
    assert_error(&reply, 409, "disabled", "create-user in a disabled workspace");
    assert!(!reply.1.to_string().contains(secret));

    assert_eq!(user_count(s, a, "acme").await, before, "no refused request created a user");
    assert_eq!(user_count(s, a, "globex").await, 1);

    // Revoking a key that does not exist: not-found (the path names no workspace to require).
    assert_error(&delete(s, "/api/v1/api-keys/no-such-key", a).await, 404, "not-found", "an unknown key");
}

// ----------------------------------------------------------------------------------------
// 4. Pagination

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_oldest_first_with_a_cursor_until_the_last_page() {
    let db = TestDb::new().await;
    let World { server, admin_key, .. } = world(&db).await;
    let s = &server;
    let a = admin_key.as_str();
    // A workspace of its own: exactly the seven users below, nobody else.
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "paged"}})).await);
    let mut created = Vec::new();
    for i in 0..7 {
        let r = ok(server
            .call(json!({"operation": "create-user", "workspace": "paged",
                "user": {"username": format!("paged-{i}"), "password": PASSWORD}}))
            .await);
        created.push(r["user"]["id"].as_str().unwrap().to_owned());
    }
    let base = "/api/v1/workspaces/paged/users";

    // The default limit takes them all in one page.
    let reply = get(s, base, a).await;
    let all = items(&reply, "the default page");
    assert_eq!(item_ids(&all), created, "oldest first");
    assert!(reply.1.get("next_cursor").is_none(), "one page, no cursor: {}", reply.1);

    // limit=3: 3, 3, 1.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 5, "too many pages: {sizes:?}");
        let path = match &cursor {
            None => format!("{base}?limit=3"),
            Some(c) => format!("{base}?limit=3&cursor={}", encode(c)),
        };
        let reply = get(s, &path, a).await;
        let page_items = items(&reply, &path);
        page_items.iter().for_each(assert_user_record);
        sizes.push(page_items.len());
        seen.extend(item_ids(&page_items));
        match reply.1.get("next_cursor") {
            None => break,
            Some(next) => {
                let next = next.as_str().unwrap_or_else(|| panic!("a cursor is a string: {}", reply.1));
                assert!(!next.is_empty(), "{}", reply.1);
                cursor = Some(next.to_owned());
            }
        }
    }
    assert_eq!(sizes, [3, 3, 1], "pages of three; next_cursor absent on the last page only");
    assert_eq!(seen, created, "every user once, in creation order");

    // A page that ends exactly at the end is the last page.
    let reply = get(s, &format!("{base}?limit=7"), a).await;
    assert_eq!(item_ids(&items(&reply, "limit=7")), created);
    assert!(reply.1.get("next_cursor").is_none(), "the last page has no cursor: {}", reply.1);
    let reply = get(s, &format!("{base}?limit=500"), a).await;
    assert_eq!(item_ids(&items(&reply, "limit=500")), created);

    // Out of range and garbage: 400.
    for query in ["limit=0", "limit=501", "cursor=garbage-cursor", "limit=3&cursor=%2F%2F%2Fnot-a-cursor"] {
        let (status, body) = get(s, &format!("{base}?{query}"), a).await;
        assert_eq!(status, 400, "?{query}: {body}");
    }

    // Lists of workspaces and keys page too.
    let reply = get(s, "/api/v1/workspaces?limit=2", a).await;
    assert_eq!(item_ids(&items(&reply, "workspaces ?limit=2")), ["acme", "globex"]);
    let next = reply.1["next_cursor"].as_str().expect("more workspaces").to_owned();
    let reply = get(s, &format!("/api/v1/workspaces?limit=2&cursor={}", encode(&next)), a).await;
    assert_eq!(item_ids(&items(&reply, "workspaces page 2")), ["paged"]);
    assert!(reply.1.get("next_cursor").is_none(), "{}", reply.1);
}

// ----------------------------------------------------------------------------------------
// 5. Idempotency-Key

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_creates_once_and_answers_the_same_record() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let s = &server;
    let a = Some(admin_key.as_str());
    let users = "/api/v1/workspaces/acme/users";
    let before = items(&get(s, users, &admin_key).await, "list-users").len();

    let body = json!({"username": "dave", "password": PASSWORD, "name": "Dave"});
    let header = [("Idempotency-Key", "idem-create-dave")];
    let (status, first) = rest(s, Method::POST, users, a, Some(body.clone()), &header).await;
    assert_eq!(status, 201, "{first}");
    assert_user_record(&first);
    let (status, again) = rest(s, Method::POST, users, a, Some(body), &header).await;
    assert!(status == 201 || status == 200, "a repeat answers success, got {status} {again}");
    assert_eq!(again["id"], first["id"], "the same user: {again}");
    assert_eq!(again["username"], "dave");
    let after = items(&get(s, users, &admin_key).await, "list-users");
    assert_eq!(after.len(), before + 1, "one user created");
    assert_eq!(after.iter().filter(|u| u["username"] == "dave").count(), 1);

    // Without the header, the same body is a new request: a duplicate.
    let reply = post(s, users, &admin_key, json!({"username": "dave", "password": PASSWORD})).await;
    assert_error(&reply, 409, "duplicate", "the same user without an Idempotency-Key");

    let keys = format!("/api/v1/workspaces/acme/users/{}/api-keys", ids["writer"]);
    let header = [("Idempotency-Key", "idem-key-ci")];
    let (status, first) = rest(s, Method::POST, &keys, a, Some(json!({"name": "ci"})), &header).await;
    assert_eq!(status, 201, "{first}");
    let plaintext = first["api_key_plaintext"].as_str().expect("the plaintext, once").to_owned();
    let (status, again) = rest(s, Method::POST, &keys, a, Some(json!({"name": "ci"})), &header).await;
    assert!(status == 201 || status == 200, "a repeat answers success, got {status} {again}");
    assert_eq!(again["api_key"]["id"], first["api_key"]["id"], "the same key: {again}");
    assert!(again.get("api_key_plaintext").is_none(), "a one-time secret is never replayed: {again}");
    assert!(!again.to_string().contains(&plaintext));
    let listed = items(&get(s, &keys, &admin_key).await, "list-api-keys");
    assert_eq!(item_ids(&listed), [first["api_key"]["id"].as_str().unwrap().to_owned()], "one key created");
    assert_eq!(ok(resolve(s, &plaintext).await)["resolved_user_id"], ids["writer"].as_str());
}

/// Issue 15, F1: an `Idempotency-Key` is its caller's own. Writer A and a reader B of another
/// workspace each use the same keys for their own requests, and each request is applied for
/// its own caller (before, B was answered from A's record: B's key stayed alive after a 204,
/// B's password stayed the same, and B received A's key record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_each_callers_own() {
    let db = TestDb::new().await;
    let World { server, ids, .. } = world(&db).await;
    let s = &server;
    let (a, b) = (jwt_of(s, "writer", PASSWORD).await, jwt_of(s, "other", PASSWORD).await);
    let keys_a = format!("/api/v1/workspaces/acme/users/{}/api-keys", ids["writer"]);
    let keys_b = format!("/api/v1/workspaces/globex/users/{}/api-keys", ids["other"]);
    let created = [("Idempotency-Key", "shared-create")];

    let (status, key_a) =
        rest(s, Method::POST, &keys_a, Some(&a), Some(json!({"name": "a"})), &created).await;
    assert_eq!(status, 201, "{key_a}");
    let (status, key_b) =
        rest(s, Method::POST, &keys_b, Some(&b), Some(json!({"name": "b"})), &created).await;
    assert_eq!(status, 201, "B's own request is applied: {key_b}");
    assert_eq!(key_b["api_key"]["user_id"], ids["other"].as_str(), "B's own key: {key_b}");
    assert_ne!(key_b["api_key"]["id"], key_a["api_key"]["id"]);
    let plaintext_b = key_b["api_key_plaintext"].as_str().expect("B's plaintext, once").to_owned();
    assert_eq!(ok(resolve(s, &plaintext_b).await)["resolved_user_id"], ids["other"].as_str());

    let revoked = [("Idempotency-Key", "shared-revoke")];
    for (key, bearer) in [(&key_a, &a), (&key_b, &b)] {
        let path = format!("/api/v1/api-keys/{}", key["api_key"]["id"].as_str().unwrap());
        let reply = rest(s, Method::DELETE, &path, Some(bearer), None, &revoked).await;
        assert_no_content(&reply, "each caller revokes its own key under the same Idempotency-Key");
    }
    assert_eq!(error_type(&resolve(s, &plaintext_b).await), "auth-failed", "B's key is revoked");

    let changed = [("Idempotency-Key", "shared-change")];
    for (bearer, new) in [(&a, "writer's new passphrase"), (&b, "other's new passphrase")] {
        let body = json!({"password": PASSWORD, "new_password": new});
        let reply =
            rest(s, Method::POST, "/api/v1/auth/change-password", Some(bearer), Some(body), &changed).await;
        assert_no_content(&reply, "each caller changes its own password under the same Idempotency-Key");
    }
    let login = s
        .call(json!({"operation": "login", "username": "other", "password": "other's new passphrase"}))
        .await;
    assert!(ok(login)["jwt"].is_string(), "B's password was changed");

    // The gateway's request ids are the gateway's: the same id from it is its own request.
    let reply = s
        .call(json!({"operation": "create-workspace", "request_id": "shared-create",
        "workspace_record": {"id": "from-gateway"}}))
        .await;
    assert_eq!(ok(reply)["workspace"]["id"], "from-gateway");
}

/// The same caller reusing an `Idempotency-Key` for a different request (other fields, another
/// operation) is refused — 422 over REST, `invalid-argument` over the protocol — and nothing
/// is applied; the same request again is answered from the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_for_another_request_is_refused_and_applies_nothing() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let s = &server;
    let a = Some(admin_key.as_str());
    let header = [("Idempotency-Key", "idem-reused")];
    let (status, _) =
        rest(s, Method::POST, "/api/v1/workspaces", a, Some(json!({"id": "initech"})), &header).await;
    assert_eq!(status, 201);

    let reply = rest(s, Method::POST, "/api/v1/workspaces", a, Some(json!({"id": "hooli"})), &header).await;
    assert_error(&reply, 422, "invalid-argument", "another body under the same key");
    assert_eq!(reply.1["error"]["message"], "request_id was already used for a different request");
    assert_eq!(get(s, "/api/v1/workspaces/hooli", &admin_key).await.0, 404, "nothing was applied");
    let path = format!("/api/v1/workspaces/acme/users/{}/disable", ids["reader"]);
    let reply = rest(s, Method::POST, &path, a, None, &header).await;
    assert_error(&reply, 422, "invalid-argument", "another operation under the same key");
    let reader = get(s, &format!("/api/v1/workspaces/acme/users/{}", ids["reader"]), &admin_key).await;
    assert_eq!(reader.1["enabled"], true, "the reader was not disabled: {}", reader.1);
    let (status, again) =
        rest(s, Method::POST, "/api/v1/workspaces", a, Some(json!({"id": "initech"})), &header).await;
    assert_eq!((status, again["id"].as_str()), (201, Some("initech")), "the same request is answered");

    // The protocol: the same rule, as invalid-argument in the reply.
    let create = |id: &str, password: &str| {
        json!({"operation": "create-user", "workspace": "acme", "request_id": "idem-proto",
            "user": {"username": id, "password": password}})
    };
    ok(s.call_as(&admin_key, create("erin", PASSWORD)).await);
    let reply = s.call_as(&admin_key, create("erin", "another long passphrase")).await;
    assert_eq!(
        error_type(&reply),
        "invalid-argument",
        "a different password is a different request: {reply}"
    );
    assert!(!reply.to_string().contains("another long passphrase"));
    let reply = s.call_as(&admin_key, create("frank", PASSWORD)).await;
    assert_eq!(error_type(&reply), "invalid-argument", "{reply}");
    assert_eq!(user_count(s, &admin_key, "acme").await, 4, "admin, writer, reader and erin only");
    let reply = s.call_as(&admin_key, create("erin", PASSWORD)).await;
    assert_eq!((reply["replayed"].as_bool(), reply["user"]["username"].as_str()), (Some(true), Some("erin")));
}

/// Identical requests sent at once under one key: one effect; every other answer is the
/// record's (replayed) or 409 "request in progress", never a second user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_at_once_under_one_key_apply_once() {
    let db = TestDb::new().await;
    let World { server, admin_key, .. } = world(&db).await;
    let s = &server;
    let body = json!({"username": "grace", "password": PASSWORD}).to_string();
    let header = [("Idempotency-Key", "idem-at-once")];
    let replies = futures_util::future::join_all((0..8).map(|_| {
        rest_raw(
            s,
            Method::POST,
            "/api/v1/workspaces/acme/users",
            Some(&admin_key),
            Some(body.clone()),
            &header,
        )
    }))
    .await;
    for (status, reply) in &replies {
        match status {
            201 => assert_eq!(reply["username"], "grace"),
            409 => assert_eq!(reply["error"]["message"], "request in progress", "{reply}"),
            _ => panic!("{status} {reply}"),
        }
    }
    let users = items(&get(s, "/api/v1/workspaces/acme/users", &admin_key).await, "list-users");
    assert_eq!(users.iter().filter(|u| u["username"] == "grace").count(), 1, "one effect");
}

/// Issue 15, item 5: usernames compare by their PRECIS key (RFC 8265 UsernameCaseMapped with
/// full case folding) across every workspace, and a name mixing scripts is refused — over
/// REST and the protocol alike. Before, each of these was created beside the other and logged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_that_look_alike_are_one_username() {
    let db = TestDb::new().await;
    let World { server, admin_key, .. } = world(&db).await;
    let s = &server;
    let users = |ws: &str| format!("/api/v1/workspaces/{ws}/users");
    let (status, admin2) =
        post(s, &users("acme"), &admin_key, json!({"username": "admin2", "password": PASSWORD})).await;
    assert_eq!(status, 201, "{admin2}");
    let cyrillic =
        post(s, &users("acme"), &admin_key, json!({"username": "\u{0430}dmin2", "password": PASSWORD})).await;
    assert_error(&cyrillic, 400, "invalid-argument", "a Cyrillic а among Latin letters");
    assert!(cyrillic.1["error"]["message"].as_str().unwrap().contains("mixes scripts"), "{}", cyrillic.1);
    let fullwidth =
        post(s, &users("globex"), &admin_key, json!({"username": "ａｄｍｉｎ２", "password": PASSWORD}))
            .await;
    assert_error(&fullwidth, 409, "duplicate", "fullwidth admin2, in another workspace");
    let reply = s
        .call(json!({"operation": "create-user", "workspace": "globex",
        "user": {"username": "ADMIN2", "password": PASSWORD}}))
        .await;
    assert_eq!(error_type(&reply), "duplicate", "{reply}");

    let (status, _) =
        post(s, &users("acme"), &admin_key, json!({"username": "straße", "password": PASSWORD})).await;
    assert_eq!(status, 201);
    let upper =
        post(s, &users("globex"), &admin_key, json!({"username": "STRASSE", "password": PASSWORD})).await;
    assert_error(&upper, 409, "duplicate", "STRASSE beside straße");
    // A rename to a look-alike of another user's name is a duplicate too.
    let (_, other) =
        post(s, &users("globex"), &admin_key, json!({"username": "someone", "password": PASSWORD})).await;
    let path = format!("/api/v1/workspaces/globex/users/{}", other["id"].as_str().unwrap());
    assert_error(
        &patch(s, &path, &admin_key, json!({"username": "Ａｄｍｉｎ2"})).await,
        409,
        "duplicate",
        "rename",
    );

    // Login compares the same way; the display form stays as it was typed.
    let login =
        ok(s.call(json!({"operation": "login", "username": "ＡＤＭＩＮ２", "password": PASSWORD})).await);
    let whoami = ok(s.call_as(login["jwt"].as_str().unwrap(), json!({"operation": "whoami"})).await);
    assert_eq!(
        (whoami["user"]["id"].as_str(), whoami["user"]["username"].as_str()),
        (admin2["id"].as_str(), Some("admin2"))
    );
    let login = ok(s.call(json!({"operation": "login", "username": "STRASSE", "password": PASSWORD})).await);
    assert!(login["jwt"].is_string());
}

// ----------------------------------------------------------------------------------------
// 6. change-password

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_its_own_password_and_its_old_token_dies() {
    let db = TestDb::new().await;
    let World { server, .. } = world(&db).await;
    let s = &server;
    let token = jwt_of(s, "writer", PASSWORD).await;
    let path = "/api/v1/auth/change-password";

    // The wrong current password: 401 auth-failed, nothing changed.
    let wrong = "not my current passphrase";
    let reply = post(s, path, &token, json!({"password": wrong, "new_password": NEW_PASSWORD})).await;
    assert_error(&reply, 401, "auth-failed", "change-password with a wrong current password");
    assert!(!reply.1.to_string().contains(wrong) && !reply.1.to_string().contains(NEW_PASSWORD));
    assert_eq!(get(s, "/api/v1/auth/whoami", &token).await.0, 200, "the token still works");
    jwt_of(s, "writer", PASSWORD).await;

    // Without a bearer: 401.
    let reply = rest(
        s,
        Method::POST,
        path,
        None,
        Some(json!({"password": PASSWORD, "new_password": NEW_PASSWORD})),
        &[],
    )
    .await;
    assert_auth_failure(&reply, "change-password without a bearer");

    // The right one: 204, the old token is stale, the new password logs in.
    let reply = post(s, path, &token, json!({"password": PASSWORD, "new_password": NEW_PASSWORD})).await;
    assert_no_content(&reply, "change-password");
    assert_auth_failure(&get(s, "/api/v1/auth/whoami", &token).await, "the old JWT after a password change");
    let login = |password: &'static str| {
        rest(
            s,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "writer", "password": password})),
            &[],
        )
    };
    let (status, fresh) = login(NEW_PASSWORD).await;
    assert_eq!(status, 200, "login with the new password: {fresh}");
    let fresh = fresh["jwt"].as_str().unwrap().to_owned();
    let (status, me) = get(s, "/api/v1/auth/whoami", &fresh).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("writer")), "{me}");
    assert_error(&login(PASSWORD).await, 401, "auth-failed", "login with the old password");
}

// ----------------------------------------------------------------------------------------
// Findings of the security probe (issue 15)

/// A body that a browser may post across sites without a preflight (`text/plain`, a form,
/// multipart) is refused with 415 on login and on the protocol endpoint: no login CSRF. JSON,
/// declared or not, is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_a_browser_may_post_across_sites_are_refused() {
    let db = TestDb::new().await;
    let World { server, .. } = world(&db).await;
    let http = reqwest::Client::new();
    let login = json!({"username": "reader", "password": PASSWORD}).to_string();
    let iam = json!({"operation": "login", "username": "reader", "password": PASSWORD}).to_string();
    for (path, bearer, body) in
        [("/api/v1/auth/login", None, &login), ("/api/v1/iam", Some(GATEWAY_SECRET), &iam)]
    {
        let send = |content_type: Option<&'static str>| {
            let mut req = http.post(format!("{}{path}", server.base)).body(body.clone());
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        for refused in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let reply = send(Some(refused)).await;
            assert_error(&reply, 415, "invalid-argument", &format!("{path} as {refused}"));
        }
        for taken in [None, Some("application/json"), Some("application/json; charset=utf-8")] {
            let (status, reply) = send(taken).await;
            assert_eq!(status, 200, "{path} as {taken:?}: {reply}");
            assert!(reply["jwt"].is_string(), "{path} as {taken:?}: {reply}");
        }
    }
}

/// Revoking a key twice is not-found for its owner and for an admin alike (it was 403 for the
/// owner); an id no key can have is invalid-argument, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_revoked_key_is_not_found_for_everyone() {
    let db = TestDb::new().await;
    let World { server, ids, admin_key } = world(&db).await;
    let s = &server;
    let reader = jwt_of(s, "reader", PASSWORD).await;
    let own = format!("/api/v1/workspaces/acme/users/{}/api-keys", ids["reader"]);
    let (status, created) = post(s, &own, &reader, json!({"name": "once"})).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap());
    assert_no_content(&delete(s, &path, &reader).await, "the owner revokes its key");
    assert_error(&delete(s, &path, &reader).await, 404, "not-found", "the owner, again");
    assert_error(&delete(s, &path, &admin_key).await, 404, "not-found", "an admin, again");
    assert_error(&delete(s, "/api/v1/api-keys/%00", &reader).await, 400, "invalid-argument", "a NUL id");
}

/// A request the HTTP parser refuses is the client's mistake: 400, and no ERROR line (any
/// client could write them) unless debug logging is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_parser_refuses_write_no_error_lines() {
    use std::io::{Read, Write};
    let db = TestDb::new().await;
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    for raw in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"[..],
        &b"BLAH\x01 / HTTP/1.1\r\n\r\n"[..],
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        stream.write_all(raw).unwrap();
        let mut reply = [0u8; 12];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HTTP/1.1 400", "{}", String::from_utf8_lossy(raw));
    }
    // What the server logs arrives asynchronously: a served request after them comes later.
    assert_eq!(server.get("/healthz").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let errors = server.logged("\"ERROR\"");
    assert!(errors.is_empty(), "{errors:?}");
}

/// After reset-password, a login with the temporary password gives a token that may change
/// that password and read itself, nothing else, over the protocol and REST alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_password_only_lets_its_user_change_it() {
    let db = TestDb::new().await;
    let World { server, ids, .. } = world(&db).await;
    let s = &server;
    let reset = ok(s
        .call(json!({"operation": "reset-password", "workspace": "acme", "user_id": ids["admin"]}))
        .await);
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    let token = jwt_of(s, "admin", &temporary).await;
    let keys = format!("/api/v1/workspaces/acme/users/{}/api-keys", ids["admin"]);

    // Everything else: operation-not-permitted, "password change required" — even for an admin.
    let refused = post(s, &keys, &token, json!({"name": "sneaky"})).await;
    assert_error(&refused, 403, "operation-not-permitted", "REST create-api-key");
    assert_eq!(refused.1["error"]["message"], "password change required");
    let listed = get(s, "/api/v1/workspaces", &token).await;
    assert_error(&listed, 403, "operation-not-permitted", "REST list-workspaces");
    let reply = s
        .call_as(
            &token,
            json!({"operation": "create-api-key", "key": {"user_id": ids["admin"], "name": "x"}}),
        )
        .await;
    assert_eq!(error_type(&reply), "operation-not-permitted", "{reply}");
    let other = s
        .call_as(
            &token,
            json!({"operation": "change-password", "user_id": ids["reader"],
            "password": PASSWORD, "new_password": "someone else's new one"}),
        )
        .await;
    assert_eq!(error_type(&other), "operation-not-permitted", "nobody else's password: {other}");

    // Reading itself and changing its password: yes.
    let (status, me) = get(s, "/api/v1/auth/whoami", &token).await;
    assert_eq!((status, &me["must_change_password"]), (200, &json!(true)), "{me}");
    assert!(ok(s.call_as(&token, json!({"operation": "whoami"})).await)["user"].is_object());
    let changed = post(
        s,
        "/api/v1/auth/change-password",
        &token,
        json!({"password": temporary, "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_no_content(&changed, "change-password with the temporary token");
    let token = jwt_of(s, "admin", "a brand new passphrase").await;
    let (status, created) = post(s, &keys, &token, json!({"name": "now"})).await;
    assert_eq!(status, 201, "after the change, the user acts again: {created}");
}

/// A reply served from the record of an earlier request with the same `Idempotency-Key` says
/// so with `Idempotent-Replayed: true` (as the protocol says `"replayed": true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_reply_says_so_in_a_header() {
    let db = TestDb::new().await;
    let World { server, admin_key, .. } = world(&db).await;
    let http = reqwest::Client::new();
    let send = || {
        http.post(format!("{}/api/v1/workspaces", server.base))
            .bearer_auth(&admin_key)
            .header("Idempotency-Key", "idem-initech")
            .json(&json!({"id": "initech"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none(), "{:?}", first.headers());
    let again = send().await.unwrap();
    assert!(again.status().is_success(), "{}", again.status());
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
}

/// Logging out everywhere kills every token issued so far — and only tokens: API keys keep
/// working, a new login works. A user logs itself out; another user takes `users:admin`.
/// An email change and gaining the admin role end every session too (docs/accounts.md).
#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_and_nothing_else() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let password = "a long enough passphrase";
    let alice = server.create_user("acme", "alice", password, &["writer"]).await;
    let bob = server.create_user("acme", "bob", password, &["reader"]).await;
    let key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": "ci"}}))
        .await)["api_key_plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    let (laptop, phone) = (server.jwt("alice", password).await, server.jwt("alice", password).await);
    let bobs = server.jwt("bob", password).await;
    assert_eq!(get(&server, "/api/v1/auth/whoami", &laptop).await.0, 200);

    // Bob may not log Alice out; Alice logs herself out.
    let other = post(&server, "/api/v1/auth/logout-all", &bobs, json!({"user_id": alice})).await;
    assert_eq!(other, (403, json!({"error": "access denied"})));
    assert_eq!(get(&server, "/api/v1/auth/whoami", &phone).await.0, 200, "nothing ended");
    assert_eq!(post_empty(&server, "/api/v1/auth/logout-all", &laptop).await.0, 204);
    for token in [&laptop, &phone] {
        assert_eq!(get(&server, "/api/v1/auth/whoami", token).await.0, 401, "every token died");
    }
    assert_eq!(get(&server, "/api/v1/auth/whoami", &key).await.0, 200, "the API key still works");
    let fresh = server.jwt("alice", password).await;
    assert_eq!(get(&server, "/api/v1/auth/whoami", &fresh).await.1["id"], alice.as_str());
    assert_eq!(get(&server, "/api/v1/auth/whoami", &bobs).await.0, 200, "bob's session is his");

    // Over the protocol, through the gateway, for another user; an unknown user is not-found.
    ok(server.call(json!({"operation": "logout-all", "workspace": "acme", "user_id": bob})).await);
    assert_eq!(get(&server, "/api/v1/auth/whoami", &bobs).await.0, 401);
    let nobody =
        server.call(json!({"operation": "logout-all", "workspace": "acme", "user_id": "nobody"})).await;
    assert_eq!(error_type(&nobody), "not-found");

    // An email change and the admin role end sessions; a rename does not.
    let edit = |user: serde_json::Value| json!({"operation": "update-user", "workspace": "acme", "user_id": alice, "user": user});
    ok(server.call(edit(json!({"username": "alicia"}))).await);
    assert_eq!(get(&server, "/api/v1/auth/whoami", &fresh).await.0, 200, "a rename keeps sessions");
    ok(server.call(edit(json!({"email": "alicia@example.com"}))).await);
    assert_eq!(get(&server, "/api/v1/auth/whoami", &fresh).await.0, 401, "an email change ends them");
    let token = server.jwt("alicia", password).await;
    ok(server.call(edit(json!({"roles": ["writer", "admin"]}))).await);
    assert_eq!(get(&server, "/api/v1/auth/whoami", &token).await.0, 401, "becoming admin ends them");

    // Every ending is in the log, with its reason.
    let (code, stdout, stderr) = crate::support::server::run_iamd(db.url(), &["audit", "log", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let ended = stdout.lines().filter(|l| l.contains("sessions ended")).count();
    assert_eq!(ended, 4, "{stdout}");
}

/// Netsoc's account fields through REST: set on create, read back, changed alone; a
/// verification ends every session; an ssh key that is not an OpenSSH public key and a
/// `renewed` that is not RFC 3339 are refused and change nothing.
#[tokio::test]
async fn profile_fields_are_kept_read_back_and_validated() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f bob@laptop";
    let (status, created) = post(
        &w.server,
        "/api/v1/workspaces/acme/users",
        &w.admin_key,
        json!({"username": "bob", "password": PASSWORD, "first_name": "Bob", "last_name": "Builder",
            "ssh_key": key}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_user_record(&created);
    assert_eq!(
        (created["first_name"].as_str(), created["last_name"].as_str(), created["ssh_key"].as_str()),
        (Some("Bob"), Some("Builder"), Some(key))
    );
    assert_eq!((created["verified"].clone(), created.get("renewed")), (json!(false), None));
    let bob = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/workspaces/acme/users/{bob}");
    let token = jwt_of(&w.server, "bob", PASSWORD).await;

    // A rename of the first name keeps sessions; the rest of the profile stays.
    let (status, renamed) = patch(&w.server, &path, &w.admin_key, json!({"first_name": "Robert"})).await;
    assert_eq!(
        (status, renamed["first_name"].as_str(), renamed["last_name"].as_str()),
        (200, Some("Robert"), Some("Builder"))
    );
    assert_eq!(get(&w.server, "/api/v1/auth/whoami", &token).await.0, 200);

    // Verified and renewed (an admin's to set); verifying ends every session.
    let (status, verified) =
        patch(&w.server, &path, &w.admin_key, json!({"verified": true, "renewed": "2026-09-01T00:00:00Z"}))
            .await;
    assert_eq!(
        (status, verified["verified"].clone(), verified["renewed"].clone()),
        (200, json!(true), json!("2026-09-01T00:00:00Z"))
    );
    assert_eq!(get(&w.server, "/api/v1/auth/whoami", &token).await.0, 401);
    assert_eq!(get(&w.server, &path, &w.admin_key).await.1["verified"], true);

    // An email is unique in its workspace, whatever its case.
    let body = |name: &str, email: &str| json!({"username": name, "password": PASSWORD, "email": email});
    let users = "/api/v1/workspaces/acme/users";
    assert_eq!(post(&w.server, users, &w.admin_key, body("carl", "carl@example.com")).await.0, 201);
    let (status, reply) = post(&w.server, users, &w.admin_key, body("carla", "CARL@example.com")).await;
    assert_eq!((status, error_type(&reply)), (409, "duplicate"), "{reply}");
    let (status, _) =
        post(&w.server, "/api/v1/workspaces/globex/users", &w.admin_key, body("carla", "carl@example.com"))
            .await;
    assert_eq!(status, 201, "another workspace may have it");

    // Refusals change nothing.
    let events = || async { crate::support::server::run_iamd(db.url(), &["audit", "log"]).1.lines().count() };
    let before = events().await;
    for body in [
        json!({"ssh_key": "ssh-rsa nonsense"}),
        json!({"renewed": "next spring"}),
        json!({"first_name": "x".repeat(201)}),
    ] {
        let (status, reply) = patch(&w.server, &path, &w.admin_key, body.clone()).await;
        assert_eq!((status, error_type(&reply)), (400, "invalid-argument"), "{body}: {reply}");
    }
    assert_eq!(events().await, before);
}
