//! `iamd audit log` against real PostgreSQL: a history made through the gateway, read back by
//! the binary whole and through each filter (workspace, user, interval), as text and as JSON
//! lines, never printing a password, an API key or a hash.

use crate::support::server::{ok, run_iamd, TestServer};
use crate::support::TestDb;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "a long enough passphrase";
const NEW_PASSWORD: &str = "another long passphrase";

/// `iamd audit log ARGS…`: (exit code, stdout lines), after checking nothing secret was printed.
fn audit_log(db: &TestDb, args: &[&str], secrets: &[&str]) -> (i32, Vec<String>, String) {
    let args: Vec<&str> = ["audit", "log"].iter().chain(args).copied().collect();
    let (code, stdout, stderr) = run_iamd(db.url(), &args);
    for secret in secrets.iter().chain(&["$argon2", PASSWORD, NEW_PASSWORD]) {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} printed:\n{stdout}");
    }
    (code, stdout.lines().map(str::to_owned).collect(), stderr)
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["event_type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_tells_who_did_what_and_filters_by_workspace_user_and_time() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let call = |request: Value| server.call(request);

    for (ws, name) in [("acme", "Acme"), ("globex", "Globex")] {
        ok(call(json!({"operation": "create-workspace", "actor": "ops", "request_id": format!("r-{ws}"),
            "workspace_record": {"id": ws, "name": name}}))
        .await);
    }
    let alice = server.create_user("acme", "alice", PASSWORD, &["writer"]).await;
    let bob = server.create_user("acme", "bob", PASSWORD, &["reader"]).await;
    let carol = server.create_user("globex", "carol", PASSWORD, &["reader"]).await;
    let key = ok(call(json!({"operation": "create-api-key", "workspace": "acme", "actor": "ops",
        "key": {"user_id": alice, "name": "laptop"}}))
    .await);
    let (key_id, plaintext) = (
        key["api_key"]["id"].as_str().unwrap().to_owned(),
        key["api_key_plaintext"].as_str().unwrap().to_owned(),
    );

    // An instant between the first phase and the second.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;

    ok(call(json!({"operation": "revoke-api-key", "workspace": "acme", "actor": alice,
        "request_id": "r-revoke", "key_id": key_id}))
    .await);
    ok(call(json!({"operation": "change-password", "workspace": "acme", "actor": alice,
        "user_id": alice, "password": PASSWORD, "new_password": NEW_PASSWORD}))
    .await);
    ok(call(json!({"operation": "update-user", "workspace": "acme", "actor": alice,
        "user_id": bob, "user": {"roles": ["writer"]}}))
    .await);
    let secrets = [plaintext.as_str()];

    // Everything, as JSON lines, in log order.
    let (code, lines, _) = audit_log(&db, &["--json"], &secrets);
    assert_eq!(code, 0);
    let all = json_lines(&lines);
    let positions: Vec<i64> = all.iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "not in log order: {positions:?}");
    for line in &all {
        for withheld in ["key_hash", "password_hash"] {
            assert!(line["payload"].get(withheld).is_none(), "{line}");
        }
    }
    let first = &all.iter().find(|l| l["event_type"] == "workspace.created").unwrap();
    assert_eq!(
        (&first["actor"], &first["source"], &first["request_id"], &first["operation"], &first["target"]),
        (
            &json!("ops"),
            &json!("http"),
            &json!("r-acme"),
            &json!("create-workspace"),
            &json!("workspace acme")
        )
    );
    let changed = all.iter().find(|l| l["event_type"] == "user.password.changed").unwrap();
    assert_eq!(changed["withheld"], json!(["password_hash"]));
    assert_eq!(changed["target"], json!(format!("user {alice}")));
    assert!(all.iter().any(|l| l["target"] == json!("user ".to_owned() + &carol)));

    // One workspace.
    let (_, lines, _) = audit_log(&db, &["--json", "--workspace", "globex"], &secrets);
    let globex = json_lines(&lines);
    assert_eq!(types(&globex), ["workspace.created", "user.created"]);
    assert!(globex.iter().all(|l| l["stream"] == "workspace:globex"));

    // One user: the events about alice, her key's creation and revocation, and what she did
    // (the role change of bob she made).
    let (_, lines, _) = audit_log(&db, &["--json", "--user", &alice], &secrets);
    let about_alice = json_lines(&lines);
    assert_eq!(
        types(&about_alice),
        ["user.created", "api_key.created", "api_key.revoked", "user.password.changed", "user.changed"]
    );
    assert_eq!(about_alice[2]["request_id"], "r-revoke");
    assert_eq!(about_alice[4]["target"], json!(format!("user {bob}")));
    assert_eq!(about_alice[4]["change"], "changed: roles [writer]");

    // An interval: since the middle instant, and until it; together they are everything.
    let iso = middle.to_rfc3339_opts(SecondsFormat::Micros, true);
    let (_, lines, _) = audit_log(&db, &["--json", "--since", &iso], &secrets);
    let after = json_lines(&lines);
    assert_eq!(types(&after), ["api_key.revoked", "user.password.changed", "user.changed"]);
    let (_, lines, _) = audit_log(&db, &["--json", "--until", &iso], &secrets);
    assert_eq!(json_lines(&lines).len() + after.len(), all.len());

    // Text lines: one per event, saying when, who, through what, on what and what changed.
    let (code, lines, stderr) = audit_log(&db, &["--user", &alice, "--since", &iso], &secrets);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("by {alice} via http (request r-revoke, revoke-api-key)"))
            && lines[0].ends_with(&format!("api key {key_id}: revoked (revoked)")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(&format!("user {alice}: password changed (its sessions ended)")),
        "{}",
        lines[1]
    );
    assert!(stderr.contains("audit log: 3 events"), "{stderr}");
}

#[tokio::test]
async fn bad_instants_and_a_missing_database_fail_in_one_line() {
    let db = TestDb::new().await;
    let (code, _, stderr) = run_iamd(db.url(), &["audit", "log", "--since", "yesterday"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--since \"yesterday\" is not an RFC 3339 instant"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let (code, _, stderr) =
        run_iamd("postgres://postgres@127.0.0.1:1/none", &["audit", "log", "--workspace", "acme"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot reach PostgreSQL"), "{stderr}");
}
