//! The protocol's rules through the real binary over `POST /api/v1/iam`: who may call it,
//! bad input (clear error, nothing changed), request-id dedupe, workspace scoping, username
//! uniqueness across workspaces, key expiry, updates, the bootstrap token mode and the
//! start-up failures an operator sees.

use crate::support::server::{command, error_type, ok, TestServer, GATEWAY_SECRET};
use crate::support::TestDb;
use serde_json::{json, Value};

async fn count(db: &TestDb, table: &str) -> i64 {
    let client = db.pool().get().await.unwrap();
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

/// A server (no start-up bootstrap) with workspace `acme` and a writer `alice` in it.
async fn with_alice(db: &TestDb, env: &[(&str, &str)]) -> (TestServer, String) {
    let mut env = env.to_vec();
    env.push(("IAMD_BOOTSTRAP_ON_START", "false"));
    let server = TestServer::spawn(db.url(), &env);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let alice = ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {
            "username": "alice", "password": "alice long passphrase", "roles": ["writer"]}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (server, alice)
}

async fn new_key(server: &TestServer, workspace: &str, user_id: &str, name: &str) -> (String, String) {
    let r = ok(server
        .call(json!({"operation": "create-api-key", "workspace": workspace,
            "key": {"user_id": user_id, "name": name}}))
        .await);
    (r["api_key_plaintext"].as_str().unwrap().to_owned(), r["api_key"]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_gateway_secret_or_a_user_credential_may_call_and_roles_decide_the_rest() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    let boot = ok(server.call(json!({"operation": "bootstrap"})).await);
    let admin_key = boot["bootstrap_admin_api_key"].as_str().unwrap().to_owned();
    let (writer_key, _) = new_key(&server, "acme", &alice, "k").await;
    let body = json!({"operation": "list-workspaces"}).to_string();

    let denied = json!({"error": "auth failure"});
    for bearer in [None, Some("wrong"), Some("test-gateway-secret-012345678"), Some("tg_unknownkey")] {
        assert_eq!(server.post(bearer, &body).await, (401, denied.clone()), "bearer {bearer:?}");
    }
    assert_eq!(server.post(Some(GATEWAY_SECRET), &body).await.0, 200);
    assert_eq!(server.post(Some(&admin_key), &body).await.0, 200);
    // A writer is someone, but listing workspaces takes workspaces:admin.
    let forbidden = json!({"error": "access denied"});
    assert_eq!(server.post(Some(&writer_key), &body).await, (403, forbidden));
    let whoami = json!({"operation": "whoami"}).to_string();
    assert_eq!(server.post(Some(&writer_key), &whoami).await.1["user"]["id"], alice.as_str());

    // An admin key stops working the moment it is revoked.
    let admin_id = boot["bootstrap_admin_user_id"].as_str().unwrap();
    let keys = ok(server
        .call(json!({"operation": "list-api-keys", "workspace": "default", "user_id": admin_id}))
        .await);
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap();
    ok(server.call(json!({"operation": "revoke-api-key", "workspace": "default", "key_id": key_id})).await);
    assert_eq!(server.post(Some(&admin_key), &body).await.0, 401);
}

#[tokio::test]
async fn without_a_gateway_secret_configured_only_admin_keys_are_accepted() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_HTTP_GATEWAY_SECRET", "")]);
    let admin_key = server.bootstrap_key().expect("bootstrapped at start");
    let admin_key = admin_key.as_str();
    let body = json!({"operation": "list-workspaces"}).to_string();
    assert_eq!(server.post(Some(GATEWAY_SECRET), &body).await.0, 401);
    assert_eq!(server.post(Some(""), &body).await.0, 401);
    assert_eq!(server.post(Some(admin_key), &body).await.0, 200);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    let events = count(&db, "events").await;
    let s = Some(GATEWAY_SECRET);

    let (status, body) = server.post(s, "{not json").await;
    assert_eq!((status, error_type(&body)), (400, "invalid-argument"), "{body}");
    let (status, body) = server.post(s, r#"{"operation": "login", "password": 123456789}"#).await;
    assert_eq!((status, error_type(&body)), (400, "invalid-argument"));
    assert!(!body.to_string().contains("123456789"), "the value is not echoed: {body}");
    let (status, body) = server.post(s, r#"{"operation": "drop-everything"}"#).await;
    assert_eq!((status, error_type(&body)), (400, "invalid-argument"));
    let (status, body) = server.post(s, "{}").await;
    assert_eq!((status, error_type(&body)), (400, "invalid-argument"));
    let (status, _) = server.post(s, "").await;
    assert_eq!(status, 400);
    let huge = json!({"operation": "create-workspace", "workspace_record": {"id": "x", "name": "n".repeat(100_000)}});
    let (status, body) = server.post(s, &huge.to_string()).await;
    assert_eq!((status, error_type(&body)), (413, "invalid-argument"));
    let (status, _) = server.post(s, "{\"operation\": \"login\", \"username\": \"\u{0}\"}").await;
    assert_eq!(status, 400, "a raw control character is not JSON");
    let (status, body) =
        server.post(s, r#"{"operation": "login", "username": "\u0000", "password": "x"}"#).await;
    assert_eq!((status, error_type(&body)), (200, "invalid-argument"), "no text column holds a NUL");
    let (status, body) =
        server.post(s, r#"{"operation": "get-user", "workspace": "acme", "user_id": "a\u0001"}"#).await;
    assert_eq!((status, error_type(&body)), (200, "not-found"), "{body}");

    let refusals = [
        (
            json!({"operation": "create-user", "workspace": "nowhere", "user": {"username": "x", "password": "long enough passphrase"}}),
            "not-found",
        ),
        (json!({"operation": "create-user", "workspace": "acme"}), "invalid-argument"),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bob", "password": "long enough passphrase", "roles": ["root"]}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bob", "password": "short"}}),
            "weak-password",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bobbobbobbobbob", "password": "BOBBOBBOBBOBBOB"}}),
            "weak-password",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bob"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bob", "name": "B\u{0}b", "password": "long enough passphrase"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "update-workspace", "workspace_record": {"id": "acme", "name": "A\u{0}"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "b".repeat(300), "password": "long enough passphrase"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-user", "workspace": "acme", "user": {"username": "bad name", "password": "long enough passphrase"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-user", "user": {"username": "bob", "password": "long enough passphrase"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "update-user", "workspace": "acme", "user_id": alice, "user": {"password": "new long passphrase"}}),
            "invalid-argument",
        ),
        (json!({"operation": "get-user", "workspace": "acme", "user_id": "no-such-user"}), "not-found"),
        (json!({"operation": "get-user", "workspace": "acme"}), "invalid-argument"),
        (json!({"operation": "get-workspace", "workspace_record": {"id": "nowhere"}}), "not-found"),
        (json!({"operation": "list-users", "workspace": "nowhere"}), "not-found"),
        (json!({"operation": "create-workspace", "workspace_record": {"id": "_system"}}), "invalid-argument"),
        (
            json!({"operation": "create-workspace", "workspace_record": {"id": "w".repeat(65)}}),
            "invalid-argument",
        ),
        (json!({"operation": "create-workspace"}), "invalid-argument"),
        (json!({"operation": "disable-workspace", "workspace_record": {"id": "nowhere"}}), "not-found"),
        (
            json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": "k", "expires": "soon"}}),
            "invalid-argument",
        ),
        (
            json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": "k", "expires": "2001-01-01T00:00:00Z"}}),
            "invalid-argument",
        ),
        (json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": "no-such-key"}), "not-found"),
        (json!({"operation": "revoke-api-key", "workspace": "acme"}), "invalid-argument"),
        (json!({"operation": "resolve-api-key", "api_key": "tg_nope"}), "auth-failed"),
        (
            json!({"operation": "resolve-api-key", "api_key": format!("tg_{}", "x".repeat(10_000))}),
            "auth-failed",
        ),
        (json!({"operation": "resolve-api-key"}), "auth-failed"),
        (json!({"operation": "login", "username": "alice"}), "auth-failed"),
        (
            json!({"operation": "change-password", "user_id": alice, "password": "alice long passphrase"}),
            "invalid-argument",
        ),
        (json!({"operation": "reset-password"}), "invalid-argument"),
        (
            json!({"operation": "list-users", "workspace": "acme", "actor": "a".repeat(5000)}),
            "invalid-argument",
        ),
    ];
    for (request, expected) in refusals {
        let reply = server.call(request.clone()).await;
        assert_eq!(error_type(&reply), expected, "{request} -> {reply}");
        assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(count(&db, "events").await, events, "no refused request recorded anything");
    assert_eq!(count(&db, "users").await, 1);
    assert_eq!(count(&db, "api_keys").await, 0);
    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert_eq!(server.get("/no/such/route").await.0, 404);
}

#[tokio::test]
async fn a_repeated_request_id_is_answered_without_applying_again() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    let create = json!({"operation": "create-user", "workspace": "acme", "request_id": "req-1",
        "user": {"username": "bob", "password": "bobs long passphrase"}});
    let first = ok(server.call(create.clone()).await);
    let events = count(&db, "events").await;
    let again = ok(server.call(create).await);
    assert_eq!(again["user"], first["user"], "an equivalent answer");
    assert_eq!(again["replayed"], true);
    assert_eq!(count(&db, "events").await, events, "not applied twice");

    let key = json!({"operation": "create-api-key", "workspace": "acme", "request_id": "req-2",
        "key": {"user_id": alice, "name": "laptop"}});
    let first = ok(server.call(key.clone()).await);
    assert!(first["api_key_plaintext"].as_str().unwrap().starts_with("tg_"));
    let again = ok(server.call(key).await);
    assert_eq!(again["api_key"], first["api_key"]);
    assert!(again.get("api_key_plaintext").is_none(), "a one-time secret is never stored to replay");
    assert_eq!(count(&db, "api_keys").await, 1);
    let stored: Vec<String> = {
        let client = db.pool().get().await.unwrap();
        let rows = client.query("SELECT response::text FROM processed_requests", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };
    assert!(stored.iter().all(|r| !r.contains(first["api_key_plaintext"].as_str().unwrap())));

    let reset = json!({"operation": "reset-password", "user_id": alice, "request_id": "req-3"});
    assert!(ok(server.call(reset.clone()).await)["temporary_password"].is_string());
    assert!(ok(server.call(reset).await).get("temporary_password").is_none());

    let reused = server.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": alice, "request_id": "req-1"})).await;
    assert_eq!(error_type(&reused), "invalid-argument", "{reused}");
    let got = ok(server.call(json!({"operation": "get-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(got["user"]["enabled"], true);
}

#[tokio::test]
async fn workspaces_scope_their_users_and_keys_and_usernames_are_global() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    ok(server
        .call(json!({"operation": "create-workspace", "workspace_record": {"id": "beta", "name": "Beta"}}))
        .await);
    let taken = server
        .call(json!({"operation": "create-user", "workspace": "beta", "user": {
            "username": "Alice", "password": "another long passphrase"}}))
        .await;
    assert_eq!(error_type(&taken), "duplicate", "{taken}");
    let bob = ok(server
        .call(json!({"operation": "create-user", "workspace": "beta", "user": {
            "username": "bob", "password": "bobs long passphrase", "roles": ["reader", "admin"]}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rename = server
        .call(json!({"operation": "update-user", "workspace": "beta", "user_id": bob, "user": {"username": "ALICE"}}))
        .await;
    assert_eq!(error_type(&rename), "duplicate");
    let (_, alice_key_id) = new_key(&server, "acme", &alice, "k").await;

    let not_permitted = [
        json!({"operation": "get-user", "workspace": "beta", "user_id": alice}),
        json!({"operation": "update-user", "workspace": "beta", "user_id": alice, "user": {"name": "x"}}),
        json!({"operation": "disable-user", "workspace": "beta", "user_id": alice}),
        json!({"operation": "list-api-keys", "workspace": "beta", "user_id": alice}),
        json!({"operation": "create-api-key", "workspace": "beta", "key": {"user_id": alice, "name": "x"}}),
        json!({"operation": "revoke-api-key", "workspace": "beta", "key_id": alice_key_id}),
        json!({"operation": "reset-password", "workspace": "beta", "user_id": alice}),
        json!({"operation": "change-password", "workspace": "beta", "user_id": alice,
            "password": "alice long passphrase", "new_password": "a new long passphrase"}),
    ];
    for request in not_permitted {
        let reply = server.call(request.clone()).await;
        assert_eq!(error_type(&reply), "operation-not-permitted", "{request} -> {reply}");
    }
    let got = ok(server.call(json!({"operation": "get-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(got["user"]["enabled"], true, "nothing was applied");

    // login without a workspace resolves the user's own.
    let jwt = ok(server
        .call(json!({"operation": "login", "username": "bob", "password": "bobs long passphrase"}))
        .await);
    let payload = jwt["jwt"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    use base64::Engine;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap();
    assert_eq!(claims["workspace"], "beta");
    assert_eq!(claims["is_admin"], true);
    assert_eq!(claims["roles"], json!(["reader", "admin"]));
}

#[tokio::test]
async fn updates_change_only_what_is_given_and_keys_expire() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    let (key, _) = new_key(&server, "acme", &alice, "k").await;

    let updated = ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": alice,
            "user": {"name": "Alice A.", "roles": ["reader", "admin"]}}))
        .await);
    assert_eq!(updated["user"]["name"], "Alice A.");
    assert_eq!(updated["user"]["username"], "alice");
    let r = ok(server.call(json!({"operation": "resolve-api-key", "api_key": key})).await);
    assert_eq!(r["resolved_roles"], json!(["reader", "admin"]), "never stale after a write");

    ok(server.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": alice})).await);
    let still = ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": alice, "user": {"name": "Alice B."}}))
        .await);
    assert_eq!(still["user"]["enabled"], false, "an omitted `enabled` never re-enables");
    let still = ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": alice, "user": {"enabled": true}}))
        .await);
    assert_eq!(still["user"]["enabled"], false, "nor does `enabled: true` (TrustGraph always sends it)");
    ok(server.call(json!({"operation": "enable-user", "workspace": "acme", "user_id": alice})).await);
    let r = server.call(json!({"operation": "resolve-api-key", "api_key": key})).await;
    assert_eq!(error_type(&r), "auth-failed", "re-enabling does not bring revoked keys back");

    let ws = ok(server
        .call(
            json!({"operation": "update-workspace", "workspace_record": {"id": "acme", "name": "Acme Two"}}),
        )
        .await);
    assert_eq!(ws["workspace"]["name"], "Acme Two");
    assert_eq!(ws["workspace"]["enabled"], true);

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let short = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": alice, "name": "short-lived", "expires": soon}}))
        .await);
    let short_key = short["api_key_plaintext"].as_str().unwrap();
    assert!(!short["api_key"]["expires"].as_str().unwrap().is_empty());
    ok(server.call(json!({"operation": "resolve-api-key", "api_key": short_key})).await);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = server.call(json!({"operation": "resolve-api-key", "api_key": short_key})).await;
    assert_eq!(error_type(&r), "auth-failed", "an expired key no longer resolves");
}

#[tokio::test]
async fn with_a_bootstrap_token_no_secret_travels_in_a_response() {
    let db = TestDb::new().await;
    let token = "tg_operator-chosen-token-0123456789";
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_TOKEN", token)]);
    assert!(server.stdout().iter().all(|l| !l.contains("tg_")), "{:?}", server.stdout());
    assert!(server.stderr().iter().all(|l| !l.contains(token)));
    let r = ok(server.call(json!({"operation": "resolve-api-key", "api_key": token})).await);
    assert_eq!(r["resolved_workspace"], "default");
    assert_eq!(r["resolved_roles"], json!(["admin"]));
    assert_eq!(ok(server.call(json!({"operation": "bootstrap"})).await), json!({}));
    assert_eq!(server.post(Some(token), &json!({"operation": "list-workspaces"}).to_string()).await.0, 200);
}

/// TrustGraph's order: its bootstrapper creates workspace `default` before iamd bootstraps.
/// Start-up bootstrap and `iamd bootstrap` still create the admin then, once.
#[tokio::test]
async fn start_up_and_cli_bootstrap_create_the_admin_in_a_default_workspace_made_first() {
    for how in ["on_start", "cli"] {
        let db = TestDb::new().await;
        let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
        ok(server
            .call(json!({"operation": "create-workspace", "workspace_record": {"id": "default"}}))
            .await);
        drop(server);
        let key = if how == "on_start" {
            let server = TestServer::spawn(db.url(), &[]);
            let said = server.bootstrap_key().unwrap_or_default();
            let status = ok(server.call(json!({"operation": "bootstrap-status"})).await);
            assert!(status.get("bootstrap_available").is_none(), "{how}: {status}");
            said
        } else {
            let (code, stdout, stderr) = crate::support::server::run_iamd(db.url(), &["bootstrap"]);
            assert_eq!(code, 0, "{stderr}");
            let (code, again, _) = crate::support::server::run_iamd(db.url(), &["bootstrap"]);
            assert_eq!(code, 0);
            assert!(again.contains("already bootstrapped"), "{again}");
            stdout
        };
        let key =
            key.split_whitespace().find(|w| w.starts_with("tg_")).unwrap_or_else(|| panic!("{how}: {key}"));
        let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
        let r = ok(server.call(json!({"operation": "resolve-api-key", "api_key": key})).await);
        assert_eq!(
            (&r["resolved_default_workspace"], &r["resolved_roles"]),
            (&json!("default"), &json!(["admin"]))
        );
        let users = ok(server.call(json!({"operation": "list-users", "workspace": "default"})).await);
        assert_eq!(users["users"].as_array().unwrap().len(), 1, "{how}: one admin");
    }
}

#[test]
fn start_up_failures_are_one_readable_line() {
    // No database listening.
    let out = command("postgres://postgres@127.0.0.1:1/iamd", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach PostgreSQL at 127.0.0.1:1/iamd"), "{stderr}");
    assert!(stderr.contains("Start PostgreSQL"), "{stderr}");

    // A misspelt setting names itself.
    let out = command("postgres://postgres@127.0.0.1:1/iamd", &[("IAMD_HTTP_LISTN", "x")]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IAMD_HTTP_LISTN"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A grace period below the protocol's minimum.
    let out = command("postgres://postgres@127.0.0.1:1/iamd", &[("IAMD_SIGNING_GRACE_PERIOD", "30m")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing.grace_period must be at least 1h"));
}

#[tokio::test]
async fn enable_user_restores_login_not_keys_and_delete_user_frees_the_username() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "globex"}})).await);
    let (key, _) = new_key(&server, "acme", &alice, "k").await;
    let login = json!({"operation": "login", "username": "alice", "password": "alice long passphrase"});
    let resolve = json!({"operation": "resolve-api-key", "api_key": key});

    ok(server.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(error_type(&server.call(login.clone()).await), "auth-failed");
    let wrong =
        server.call(json!({"operation": "enable-user", "workspace": "globex", "user_id": alice})).await;
    assert_eq!(error_type(&wrong), "operation-not-permitted");
    let enabled =
        ok(server.call(json!({"operation": "enable-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(enabled["user"]["enabled"], true);
    ok(server.call(login.clone()).await);
    assert_eq!(error_type(&server.call(resolve.clone()).await), "auth-failed", "keys stay revoked");
    // Enabling an enabled user changes nothing.
    let events = count(&db, "events").await;
    ok(server.call(json!({"operation": "enable-user", "user_id": alice})).await);
    assert_eq!(count(&db, "events").await, events);

    let (key, _) = new_key(&server, "acme", &alice, "k2").await;
    let wrong =
        server.call(json!({"operation": "delete-user", "workspace": "globex", "user_id": alice})).await;
    assert_eq!(error_type(&wrong), "operation-not-permitted");
    let deleted =
        ok(server.call(json!({"operation": "delete-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(deleted, json!({}));
    assert_eq!(error_type(&server.call(login.clone()).await), "auth-failed");
    let resolve = json!({"operation": "resolve-api-key", "api_key": key});
    assert_eq!(error_type(&server.call(resolve).await), "auth-failed", "its keys died with it");
    let gone = server.call(json!({"operation": "get-user", "workspace": "acme", "user_id": alice})).await;
    assert_eq!(error_type(&gone), "not-found");
    let again = server.call(json!({"operation": "delete-user", "user_id": alice})).await;
    assert_eq!(error_type(&again), "not-found");
    // The username is free again, in any workspace; the log keeps the whole story.
    ok(server
        .call(json!({"operation": "create-user", "workspace": "globex",
            "user": {"username": "ALICE", "password": "another long passphrase"}}))
        .await);
    assert_eq!(count(&db, "users").await, 1);
    let client = db.pool().get().await.unwrap();
    let deleted_events: i64 = client
        .query_one("SELECT count(*) FROM events WHERE event_type = 'user.deleted'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deleted_events, 1);
}

/// A cursor as iamd encodes them, naming a time and an id it never gave out.
fn forged_cursor(micros: i64, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&(micros, id)).unwrap())
}

/// Every text field of every operation (nested ones too), and REST path parameters, fed with
/// hostile text: a NUL character and a lone surrogate are refused wherever they stand
/// (`invalid-argument`, or 400 for JSON that is not text) and change nothing; 64 KiB and
/// control characters may be refused or taken, but never answer 5xx or `internal-error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_in_any_field_is_refused_without_a_5xx_and_changes_nothing() {
    let db = TestDb::new().await;
    let (server, alice) = with_alice(&db, &[]).await;
    let (_, key_id) = new_key(&server, "acme", &alice, "k").await;
    const FIELDS: [&str; 29] = [
        "workspace",
        "token",
        "duration",
        "actor",
        "user_id",
        "username",
        "key_id",
        "api_key",
        "password",
        "new_password",
        "request_id",
        "client_ip",
        "user_context_json",
        "capability",
        "resource_json",
        "parameters_json",
        "authorise_checks",
        "cursor",
        "user.username",
        "user.name",
        "user.email",
        "user.password",
        "user.workspace",
        "user.roles",
        "workspace_record.id",
        "workspace_record.name",
        "key.user_id",
        "key.name",
        "key.expires",
    ];
    // A request each operation could carry out, before one field is spoiled.
    let template = |op: &str| {
        json!({"operation": op, "workspace": "acme", "user_id": alice, "username": "alice",
            "key_id": key_id, "password": "alice long passphrase", "new_password": "a new long passphrase",
            "capability": "graph:read", "user_context_json": "{}", "authorise_checks": "[]",
            "user": {"username": "zed", "name": "Zed", "password": "zed long passphrase", "roles": ["reader"]},
            "workspace_record": {"id": "fresh", "name": "Fresh"},
            "key": {"user_id": alice, "name": "another"}})
    };
    let spoil = |request: &mut Value, field: &str, value: Value| match field.split_once('.') {
        Some(("user", "roles")) => request["user"]["roles"] = json!([value]),
        Some((outer, inner)) => request[outer][inner] = value,
        None => request[field] = value,
    };
    let events = || async { count(&db, "events").await };
    let before = events().await;
    let mut sent = 0;
    for op in iamd::protocol::Operation::ALL.map(|op| op.as_str()) {
        for field in FIELDS {
            for hostile in ["a\u{0}b", "@@SURROGATE@@"] {
                let mut request = template(op);
                spoil(&mut request, field, json!(hostile));
                let body = request.to_string().replace("@@SURROGATE@@", "\\ud800x");
                let (status, reply) = server.post(Some(GATEWAY_SECRET), &body).await;
                let kind = error_type(&reply);
                assert!(
                    (status == 200 || status == 400) && kind == "invalid-argument",
                    "{op} {field} {hostile:?}: {status} {reply}"
                );
                sent += 1;
            }
            for hostile in ["x".repeat(64 * 1024), "\u{1}\u{1f}\u{7f}\u{202e}".to_string()] {
                let mut request = template(op);
                spoil(&mut request, field, json!(hostile));
                let (status, reply) = server.post(Some(GATEWAY_SECRET), &request.to_string()).await;
                assert!(
                    status < 500 && error_type(&reply) != "internal-error",
                    "{op} {field}: {status} {reply}"
                );
                sent += 1;
            }
        }
    }
    assert_eq!(sent, iamd::protocol::Operation::ALL.len() * FIELDS.len() * 4);
    // The NUL and surrogate rounds ran first for each field, but a 64 KiB or control-character
    // round may have been taken; what must hold is that no NUL ever reached the log.
    let client = db.pool().get().await.unwrap();
    let nul: i64 = client
        .query_one("SELECT count(*) FROM events WHERE payload::text LIKE '%\\u0000%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nul, 0);
    assert!(events().await >= before);

    // REST path parameters of every endpoint, as an admin (the gateway secret is no REST
    // bearer), one parameter spoiled at a time, the other valid, with a body that would
    // otherwise be carried out.
    let root = ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {
            "username": "root", "password": "root long passphrase", "roles": ["admin"]}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (admin_key, _) = new_key(&server, "acme", &root, "root-key").await;
    let before = events().await;
    use reqwest::Method as M;
    let user_body = json!({"username": "zed", "password": "zed long passphrase"});
    let routes = [
        (M::GET, "/api/v1/workspaces/{ws}", json!(null)),
        (M::PATCH, "/api/v1/workspaces/{ws}", json!({"name": "renamed"})),
        (M::POST, "/api/v1/workspaces/{ws}/disable", json!(null)),
        (M::GET, "/api/v1/workspaces/{ws}/users", json!(null)),
        (M::POST, "/api/v1/workspaces/{ws}/users", user_body),
        (M::GET, "/api/v1/workspaces/{ws}/users/{id}", json!(null)),
        (M::PATCH, "/api/v1/workspaces/{ws}/users/{id}", json!({"name": "renamed"})),
        (M::DELETE, "/api/v1/workspaces/{ws}/users/{id}", json!(null)),
        (M::POST, "/api/v1/workspaces/{ws}/users/{id}/disable", json!(null)),
        (M::POST, "/api/v1/workspaces/{ws}/users/{id}/enable", json!(null)),
        (M::POST, "/api/v1/workspaces/{ws}/users/{id}/reset-password", json!(null)),
        (M::GET, "/api/v1/workspaces/{ws}/users/{id}/api-keys", json!(null)),
        (M::POST, "/api/v1/workspaces/{ws}/users/{id}/api-keys", json!({"name": "hostile"})),
        (M::DELETE, "/api/v1/api-keys/{key}", json!(null)),
    ];
    // Percent-encoded: NUL, NUL inside, a lone surrogate's bytes (not UTF-8), control
    // characters, a right-to-left override, 8 KiB (a request line much longer than that the
    // HTTP parser refuses before iamd sees it).
    let long = "x".repeat(8 * 1024);
    let hostile = ["%00", "a%00b", "%ED%A0%80", "%01%1F%7F", "%E2%80%AE", long.as_str()];
    let mut sent = 0;
    for (method, pattern, body) in &routes {
        for param in ["{ws}", "{id}", "{key}"].into_iter().filter(|p| pattern.contains(p)) {
            for bad in hostile {
                let path = pattern
                    .replace(param, bad)
                    .replace("{ws}", "acme")
                    .replace("{id}", &alice)
                    .replace("{key}", &key_id);
                let body = (!body.is_null()).then(|| body.to_string());
                let (status, reply) =
                    server.request(method.clone(), &path, Some(&admin_key), body, &[]).await;
                assert!(
                    status < 500 && error_type(&reply) != "internal-error",
                    "{method} {pattern} with {param} = {}: {status} {reply}",
                    &bad[..bad.len().min(12)]
                );
                assert!(
                    status >= 400,
                    "{method} {pattern} with {param} spoiled is refused: {status} {reply}"
                );
                sent += 1;
            }
        }
    }
    assert_eq!(sent, 6 * (5 + 8 * 2 + 1));
    for path in [
        format!("/api/v1/workspaces/acme/users?cursor={}", forged_cursor(-219_000_000_000_000_000, "u")),
        format!("/api/v1/workspaces/acme/users?cursor={}", forged_cursor(1_764_000_000_000_000, "a\0b")),
    ] {
        let (status, reply) = server.request(M::GET, &path, Some(&admin_key), None, &[]).await;
        assert_eq!((status, error_type(&reply)), (400, "invalid-argument"), "{path}: {reply}");
    }
    assert_eq!(events().await, before, "hostile paths change nothing");
}
