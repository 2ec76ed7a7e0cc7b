//! `iamd audit replay` against real PostgreSQL: a history built through the gateway in three
//! phases, a second apart, replayed at the instant after each phase, in the library and through
//! the binary, which never prints a password or key hash.

use crate::support::server::{ok, run_iamd, TestServer};
use crate::support::TestDb;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "a long enough passphrase";

/// The `workspaces` of the JSON report at `at` (optionally only `workspace`).
async fn state_at(db: &TestDb, at: DateTime<Utc>, workspace: Option<&str>) -> Value {
    let states = iamd::audit::replay_in_pages(&db.pool(), at, workspace, 3).await.expect("replay");
    let unpaged = iamd::audit::replay(&db.pool(), at, workspace).await.expect("replay");
    assert_eq!(states, unpaged, "paging changed the result");
    iamd::audit::render_json(&states, at)["workspaces"].clone()
}

/// Sleeps past `until` (and at least 1.1 s) so the next phase is recorded after it.
async fn next_phase(until: DateTime<Utc>) {
    let left = (until - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left.max(Duration::from_millis(1100)) + Duration::from_millis(100)).await;
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `iamd audit replay ARGS…`: (exit code, stdout, stderr).
fn run_binary(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let args: Vec<&str> = ["audit", "replay"].iter().chain(args).copied().collect();
    let (code, stdout, stderr) = run_iamd(db.url(), &args);
    for secret in ["$argon2", "tg_"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    (code, stdout, stderr)
}

fn user(id: &str, username: &str, roles: &[&str], enabled: bool, version: i64) -> Value {
    json!({"id": id, "username": username, "roles": roles, "enabled": enabled, "account_version": version})
}

fn key(id: &str, user_id: &str, name: &str, state: &str) -> Value {
    json!({"id": id, "user_id": user_id, "name": name, "state": state})
}

/// Users and keys are listed in id order, as the state holds them.
fn by_id(mut list: Vec<Value>) -> Vec<Value> {
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    list
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_shows_each_instant_as_it_stood() {
    let db = TestDb::new().await;
    let t0 = Utc::now();
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let id = |reply: &Value, field: &str| reply[field]["id"].as_str().expect("an id").to_owned();

    // Phase 1: acme with alice (writer, keys laptop and ci expiring soon) and bob; globex.
    for (ws, name) in [("acme", "Acme"), ("globex", "Globex")] {
        ok(server
            .call(json!({"operation": "create-workspace", "workspace_record": {"id": ws, "name": name}}))
            .await);
    }
    let create_user = |username: &'static str, role: &'static str| {
        server.call(json!({"operation": "create-user", "workspace": "acme",
            "user": {"username": username, "password": PASSWORD, "roles": [role]}}))
    };
    let alice = id(&ok(create_user("alice", "writer").await), "user");
    let bob = id(&ok(create_user("bob", "reader").await), "user");
    let create_key = |name: &'static str, expires: String| {
        server.call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": alice, "name": name, "expires": expires}}))
    };
    let k1 = id(&ok(create_key("laptop", String::new()).await), "api_key");
    let expires = Utc::now() + chrono::Duration::seconds(2);
    let k3 = id(&ok(create_key("ci", iso(expires)).await), "api_key");
    let t1 = Utc::now();
    assert!(t1 < expires, "phase 1 took too long for the expiring key");
    next_phase(expires).await;

    // Phase 2: alice gains reader, a second key; the first is revoked; bob is disabled.
    ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": alice,
            "user": {"roles": ["reader", "writer"]}}))
        .await);
    let k2 = id(&ok(create_key("phone", String::new()).await), "api_key");
    ok(server.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": k1})).await);
    ok(server.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": bob})).await);
    let t2 = Utc::now();
    next_phase(t2).await;

    // Phase 3: acme is disabled, which disables alice and revokes her live keys.
    ok(server.call(json!({"operation": "disable-workspace", "workspace_record": {"id": "acme"}})).await);
    let t3 = Utc::now();

    let globex = json!({"id": "globex", "name": "Globex", "enabled": true, "users": [], "api_keys": []});
    let acme = |enabled: bool, users: Vec<Value>, keys: Vec<Value>| {
        json!({"id": "acme", "name": "Acme", "enabled": enabled,
               "users": by_id(users), "api_keys": by_id(keys)})
    };
    let at_t1 = acme(
        true,
        vec![user(&alice, "alice", &["writer"], true, 1), user(&bob, "bob", &["reader"], true, 1)],
        vec![key(&k1, &alice, "laptop", "valid"), key(&k3, &alice, "ci", "valid")],
    );
    let at_t2 = acme(
        true,
        vec![user(&alice, "alice", &["reader", "writer"], true, 1), user(&bob, "bob", &["reader"], false, 2)],
        vec![
            key(&k1, &alice, "laptop", "revoked"),
            key(&k2, &alice, "phone", "valid"),
            key(&k3, &alice, "ci", "expired"),
        ],
    );
    let at_t3 = acme(
        false,
        vec![
            user(&alice, "alice", &["reader", "writer"], false, 2),
            user(&bob, "bob", &["reader"], false, 2),
        ],
        vec![
            key(&k1, &alice, "laptop", "revoked"),
            key(&k2, &alice, "phone", "revoked"),
            key(&k3, &alice, "ci", "revoked"),
        ],
    );

    assert_eq!(state_at(&db, t0, None).await, json!([]));
    assert_eq!(state_at(&db, t1, None).await, json!([at_t1, globex]));
    assert_eq!(state_at(&db, t2, None).await, json!([at_t2, globex]));
    assert_eq!(state_at(&db, t3, None).await, json!([at_t3, globex]));
    assert_eq!(state_at(&db, t2, Some("acme")).await, json!([at_t2]));
    assert_eq!(state_at(&db, t3, Some("globex")).await, json!([globex]));
    assert_eq!(state_at(&db, t3, Some("initech")).await, json!([]));
    assert_eq!(state_at(&db, t0, Some("acme")).await, json!([]));

    // The binary: JSON at T2, text filtered to one workspace, a bad instant.
    let (code, stdout, stderr) = run_binary(&db, &["--at", &iso(t2), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["workspaces"], json!([at_t2, globex]));
    let at: DateTime<Utc> = doc["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, t2);

    let (code, stdout, stderr) = run_binary(&db, &["--at", &iso(t3), "--workspace", "acme"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "workspace acme \"Acme\" disabled");
    assert!(
        lines.contains(&format!("  user alice {alice} roles=reader,writer disabled version=2").as_str()),
        "{stdout}"
    );
    assert!(lines.contains(&format!("  key phone {k2} of {alice} revoked").as_str()), "{stdout}");
    assert_eq!(lines.len(), 6, "{stdout}");

    let (code, stdout, stderr) = run_binary(&db, &["--at", "yesterday"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--at") && stderr.contains("RFC 3339"), "{stderr}");
}
