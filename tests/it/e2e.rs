//! End to end: the real `iamd serve` binary on its own database, driven over HTTP through the
//! upstream manual flow — bootstrap → workspace → user → key → resolve → login (JWT verified
//! with the published public key) → change-password → reset-password → revoke → disable-user →
//! disable-workspace → rotate-signing-key — then a restart that must keep every state, and a
//! dump of the database that must hold no plaintext secret.

use crate::support::server::{error_type, ok, TestServer};
use crate::support::TestDb;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

const ALICE_PASSWORD: &str = "correct horse battery staple";
const ALICE_NEW_PASSWORD: &str = "a different long passphrase";

/// Verifies a JWT with a PEM public key the way a service would (EdDSA only).
fn verify(jwt: &str, pem: &str) -> Option<Value> {
    let key = DecodingKey::from_ed_pem(pem.as_bytes()).ok()?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["iamd"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).ok().map(|d| d.claims)
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

async fn login(server: &TestServer, username: &str, password: &str) -> Value {
    server.call(json!({"operation": "login", "username": username, "password": password})).await
}

async fn event_count(db: &TestDb) -> i64 {
    let client = db.pool().get().await.unwrap();
    client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_flow_end_to_end_survives_a_restart_and_leaves_no_plaintext() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let mut secrets: Vec<String> = vec![ALICE_PASSWORD.into(), ALICE_NEW_PASSWORD.into()];

    // bootstrap: once, then a no-op with empty fields.
    let boot = ok(server.call(json!({"operation": "bootstrap"})).await);
    let admin_id = boot["bootstrap_admin_user_id"].as_str().unwrap().to_owned();
    let admin_key = boot["bootstrap_admin_api_key"].as_str().unwrap().to_owned();
    assert!(admin_key.starts_with("tg_") && admin_key.len() >= 3 + 22, "{admin_key}");
    secrets.push(admin_key.clone());
    assert_eq!(ok(server.call(json!({"operation": "bootstrap"})).await), json!({}));
    let resolved = ok(server.call(json!({"operation": "resolve-api-key", "api_key": admin_key})).await);
    assert_eq!(resolved["resolved_user_id"], admin_id.as_str());
    assert_eq!(resolved["resolved_workspace"], "default");
    assert_eq!(resolved["resolved_roles"], json!(["admin"]));
    // The bootstrap admin has no usable password.
    assert_eq!(error_type(&login(&server, "admin", "").await), "auth-failed");

    // From here on the admin API key is the bearer.
    let admin = |req: Value| {
        let server = &server;
        let key = admin_key.clone();
        async move { server.call_as(&key, req).await }
    };
    let ws = ok(admin(json!({"operation": "create-workspace",
        "workspace_record": {"id": "acme", "name": "Acme Corp"}}))
    .await);
    assert_eq!(ws["workspace"]["id"], "acme");
    assert_eq!(ws["workspace"]["enabled"], true);
    assert_eq!(
        error_type(
            &admin(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await
        ),
        "duplicate"
    );

    let created = ok(admin(json!({"operation": "create-user", "workspace": "acme", "user": {
        "username": "alice", "name": "Alice", "email": "alice@example.com",
        "password": ALICE_PASSWORD, "roles": ["writer"]}}))
    .await);
    let alice = created["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["user"]["workspace"], "acme");
    assert_eq!(created["user"]["roles"], json!(["writer"]));
    assert!(created["user"].get("password").is_none() && created["user"].get("password_hash").is_none());

    // create-api-key → plaintext once, prefix = its first 4 characters.
    let key = ok(admin(json!({"operation": "create-api-key", "workspace": "acme",
        "key": {"user_id": alice, "name": "laptop"}}))
    .await);
    let alice_key = key["api_key_plaintext"].as_str().unwrap().to_owned();
    secrets.push(alice_key.clone());
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(key["api_key"]["prefix"], &alice_key[..4]);
    assert_eq!(key["api_key"]["user_id"], alice.as_str());

    let resolved = ok(server.call(json!({"operation": "resolve-api-key", "api_key": alice_key})).await);
    assert_eq!(resolved["resolved_user_id"], alice.as_str());
    assert_eq!(resolved["resolved_workspace"], "acme");
    assert_eq!(resolved["resolved_roles"], json!(["writer"]));

    let listed =
        ok(admin(json!({"operation": "list-api-keys", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&alice_key[4..]), "a list never shows the key");

    // login → a JWT that verifies with get-signing-key-public.
    let pem = ok(server.call(json!({"operation": "get-signing-key-public"})).await)["signing_key_public"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let token = ok(login(&server, "alice", ALICE_PASSWORD).await);
    let jwt = token["jwt"].as_str().unwrap().to_owned();
    assert!(!token["jwt_expires"].as_str().unwrap().is_empty());
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let claims = verify(&jwt, &pem).expect("the token verifies with the published key");
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["workspace"], "acme");
    assert_eq!(claims["roles"], json!(["writer"]));
    assert_eq!(claims["is_admin"], false);
    assert_eq!(claims["version"], 1);
    assert_eq!(claims["iss"], "iamd");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // Case-insensitive username, the right workspace, the wrong one.
    ok(login(&server, "ALICE", ALICE_PASSWORD).await);
    let in_ws =
        json!({"operation": "login", "username": "alice", "password": ALICE_PASSWORD, "workspace": "acme"});
    ok(server.call(in_ws).await);
    let wrong_ws = json!({"operation": "login", "username": "alice", "password": ALICE_PASSWORD, "workspace": "default"});
    assert_eq!(error_type(&server.call(wrong_ws).await), "auth-failed");

    // One auth-failed bucket with one message, whatever went wrong.
    let wrong = login(&server, "alice", "not the password at all").await;
    let unknown = login(&server, "nobody", "not the password at all").await;
    assert_eq!(error_type(&wrong), "auth-failed");
    assert_eq!(wrong, unknown);

    // change-password: wrong current → auth-failed; weak → weak-password; then it works.
    let change = |current: &str, new: &str| json!({"operation": "change-password", "user_id": alice, "password": current, "new_password": new});
    assert_eq!(error_type(&server.call(change("wrong password!!", ALICE_NEW_PASSWORD)).await), "auth-failed");
    assert_eq!(error_type(&server.call(change(ALICE_PASSWORD, "short")).await), "weak-password");
    assert_eq!(error_type(&server.call(change(ALICE_PASSWORD, "alice")).await), "weak-password");
    ok(server.call(change(ALICE_PASSWORD, ALICE_NEW_PASSWORD)).await);
    assert_eq!(error_type(&login(&server, "alice", ALICE_PASSWORD).await), "auth-failed");
    let token = ok(login(&server, "alice", ALICE_NEW_PASSWORD).await);
    assert_eq!(verify(token["jwt"].as_str().unwrap(), &pem).unwrap()["version"], 2, "logout everywhere");

    // reset-password → a temporary password, once; must_change_password set.
    let reset = ok(admin(json!({"operation": "reset-password", "user_id": alice})).await);
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert!(temporary.len() >= 16);
    secrets.push(temporary.clone());
    ok(login(&server, "alice", &temporary).await);
    assert_eq!(error_type(&login(&server, "alice", ALICE_NEW_PASSWORD).await), "auth-failed");
    let got = ok(admin(json!({"operation": "get-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(got["user"]["must_change_password"], true);

    // revoke → resolve fails.
    ok(admin(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": key_id})).await);
    let gone = server.call(json!({"operation": "resolve-api-key", "api_key": alice_key})).await;
    assert_eq!(error_type(&gone), "auth-failed");
    assert_eq!(
        error_type(
            &admin(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": key_id})).await
        ),
        "not-found"
    );

    // disable-user: no login, its keys revoked.
    let second = ok(admin(json!({"operation": "create-api-key", "workspace": "acme",
        "key": {"user_id": alice, "name": "ci"}}))
    .await);
    let second_key = second["api_key_plaintext"].as_str().unwrap().to_owned();
    secrets.push(second_key.clone());
    ok(admin(json!({"operation": "disable-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(error_type(&login(&server, "alice", &temporary).await), "auth-failed");
    let r = server.call(json!({"operation": "resolve-api-key", "api_key": second_key})).await;
    assert_eq!(error_type(&r), "auth-failed");
    let got = ok(admin(json!({"operation": "get-user", "workspace": "acme", "user_id": alice})).await);
    assert_eq!(got["user"]["enabled"], false);
    let listed =
        ok(admin(json!({"operation": "list-api-keys", "workspace": "acme", "user_id": alice})).await);
    assert!(listed.get("api_keys").is_none(), "no active key left: {listed}");
    assert_eq!(
        error_type(&admin(json!({"operation": "reset-password", "user_id": alice})).await),
        "disabled"
    );

    // disable-workspace: its users disabled, their keys revoked.
    let bob = ok(admin(json!({"operation": "create-user", "workspace": "acme", "user": {
        "username": "bob", "password": "bobs long passphrase", "roles": ["reader"]}}))
    .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_key = ok(admin(json!({"operation": "create-api-key", "workspace": "acme",
        "key": {"user_id": bob, "name": "k"}}))
    .await)["api_key_plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(bob_key.clone());
    ok(admin(json!({"operation": "disable-workspace", "workspace_record": {"id": "acme"}})).await);
    let r = server.call(json!({"operation": "resolve-api-key", "api_key": bob_key})).await;
    assert_eq!(error_type(&r), "auth-failed");
    assert_eq!(error_type(&login(&server, "bob", "bobs long passphrase").await), "auth-failed");
    let users = ok(admin(json!({"operation": "list-users", "workspace": "acme"})).await);
    assert!(users["users"].as_array().unwrap().iter().all(|u| u["enabled"] == false), "{users}");
    let ws = ok(admin(json!({"operation": "get-workspace", "workspace_record": {"id": "acme"}})).await);
    assert_eq!(ws["workspace"]["enabled"], false);
    let refused = admin(json!({"operation": "create-user", "workspace": "acme", "user": {
        "username": "carol", "password": "carols long passphrase"}}))
    .await;
    assert_eq!(error_type(&refused), "disabled");

    // rotate-signing-key: a new active key; the old one still verifies tokens in its grace.
    let rotated = ok(admin(json!({"operation": "rotate-signing-key"})).await);
    let new_pem = ok(server.call(json!({"operation": "get-signing-key-public"})).await)["signing_key_public"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_pem, pem);
    assert_eq!(rotated["signing_key_public"], new_pem.as_str());
    let fresh = ok(admin(json!({"operation": "create-user", "workspace": "default", "user": {
        "username": "dave", "password": "daves long passphrase"}}))
    .await);
    assert_eq!(fresh["user"]["workspace"], "default");
    let dave_jwt =
        ok(login(&server, "dave", "daves long passphrase").await)["jwt"].as_str().unwrap().to_owned();
    assert!(verify(&dave_jwt, &new_pem).is_some());
    assert_ne!(kid(&dave_jwt), kid(&jwt));

    // A restart keeps every state.
    let before: Vec<Value> = futures_after(&server, &admin_key).await;
    let events_before = event_count(&db).await;
    let server = server.restart();
    assert_eq!(futures_after(&server, &admin_key).await, before);
    assert_eq!(event_count(&db).await, events_before);
    assert_eq!(ok(server.call(json!({"operation": "bootstrap"})).await), json!({}));
    let r = ok(server.call(json!({"operation": "resolve-api-key", "api_key": admin_key})).await);
    assert_eq!(r["resolved_user_id"], admin_id.as_str());
    let still = ok(login(&server, "dave", "daves long passphrase").await)["jwt"].as_str().unwrap().to_owned();
    assert!(verify(&still, &new_pem).is_some(), "the active key survives the restart");
    assert_eq!(server.bootstrap_key(), None, "no bootstrap key after a restart");

    // The database holds no plaintext password or API key.
    let dump = db.dump();
    assert!(dump.contains("alice@example.com"), "the dump has the data");
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "plaintext secret found in the database dump");
    }
}

/// Everything an admin can read, for comparing before and after a restart.
async fn futures_after(server: &TestServer, admin_key: &str) -> Vec<Value> {
    let mut out = vec![server.call_as(admin_key, json!({"operation": "list-workspaces"})).await];
    for ws in ["default", "acme"] {
        let users = server.call_as(admin_key, json!({"operation": "list-users", "workspace": ws})).await;
        for u in users["users"].as_array().unwrap() {
            out.push(
                server
                    .call_as(
                        admin_key,
                        json!({"operation": "list-api-keys", "workspace": ws, "user_id": u["id"]}),
                    )
                    .await,
            );
        }
        out.push(users);
    }
    out.push(server.call(json!({"operation": "get-signing-key-public"})).await);
    // last_used is stamped in the background; it is not state to compare.
    for v in &mut out {
        strip(v, "last_used");
    }
    out
}

fn strip(v: &mut Value, field: &str) {
    match v {
        Value::Object(m) => {
            m.remove(field);
            m.values_mut().for_each(|x| strip(x, field));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, field)),
        _ => {}
    }
}

#[tokio::test]
async fn serve_bootstraps_at_start_printing_the_admin_key_once_and_never_logging_it() {
    let db = TestDb::new().await;
    let server = TestServer::binary(db.url(), &[("IAMD_LOG_LEVEL", "debug")]);
    let admin_key = server.bootstrap_key().expect("the bootstrap key is printed once");
    assert!(admin_key.starts_with("tg_"));
    assert!(server.stderr().iter().all(|l| !l.contains(&admin_key)), "the key never reaches the log");
    let r = server.call_as(&admin_key, json!({"operation": "list-workspaces"})).await;
    assert_eq!(r["workspaces"][0]["id"], "default");
    // The bootstrap operation is now a no-op, and a restart prints no key.
    assert_eq!(ok(server.call(json!({"operation": "bootstrap"})).await), json!({}));
    let server = server.restart();
    assert!(server.stdout().iter().all(|l| !l.contains("tg_")), "{:?}", server.stdout());
    ok(server.call_as(&admin_key, json!({"operation": "list-workspaces"})).await);
}
