//! `iamd projections rebuild [--online]` and `iamd projections verify` on real databases with
//! the real binary: drifted read tables are named by verify (never a hash) and repaired by a
//! rebuild that keeps `last_used`; an online rebuild while a client keeps creating and
//! resolving keys loses nothing and never shows an empty table; the synthetic log of
//! `projections generate` passes `audit verify` and rebuilds; a rebuild that cannot apply an
//! event fails naming it and leaves the live tables and no shadow schema behind.

use crate::support::history::{after, first, ok1};
use crate::support::server::{ok, run_iamd, TestServer};
use crate::support::TestDb;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

async fn query_one(db: &TestDb, sql: &str) -> tokio_postgres::Row {
    let client = db.pool().get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec(db: &TestDb, sql: &str) {
    let client = db.pool().get().await.unwrap();
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn shadow_schema_exists(db: &TestDb) -> bool {
    query_one(db, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'iamd_rebuild')").await.get(0)
}

/// Runs the binary off the async threads.
async fn iamd(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let url = db.url().to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_iamd(&url, &args)
    })
    .await
    .unwrap()
}

fn id(reply: &Value, field: &str) -> String {
    reply[field]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_drift_without_a_hash_and_rebuild_repairs_it_keeping_last_used() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[]);
    for ws in ["acme", "globex"] {
        ok(server
            .call(json!({"operation": "create-workspace", "workspace_record": {"id": ws, "name": ws}}))
            .await);
    }
    let alice = server.create_user("acme", "alice", PASSWORD, &["writer"]).await;
    let bob = server.create_user("acme", "bob", PASSWORD, &["reader"]).await;
    let dave = server.create_user("acme", "dave", PASSWORD, &["reader"]).await;
    let key = |user: &str, name: &str| {
        server.call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": user, "name": name}}))
    };
    let k_alice = ok(key(&alice, "laptop").await);
    let (k_alice_id, alice_key) =
        (id(&k_alice, "api_key"), k_alice["api_key_plaintext"].as_str().unwrap().to_owned());
    let k_bob_id = id(&ok(key(&bob, "ci").await), "api_key");
    let k_revoked = id(&ok(key(&bob, "old").await), "api_key");
    ok(server.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": k_revoked})).await);
    ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": bob,
            "user": {"username": "robert"}}))
        .await);
    // dave's name is freed in acme and taken in globex: only commit order replays this.
    ok(server.call(json!({"operation": "delete-user", "workspace": "acme", "user_id": dave})).await);
    let dave2 = server.create_user("globex", "dave", PASSWORD, &["admin"]).await;

    // A resolve stamps last_used (in the background, coalesced).
    ok(server.call(json!({"operation": "resolve-api-key", "api_key": alice_key})).await);
    let stamp_sql = format!("SELECT last_used FROM api_keys WHERE id = '{k_alice_id}'");
    let mut stamped: Option<chrono::DateTime<chrono::Utc>> = None;
    for _ in 0..200 {
        stamped = query_one(&db, &stamp_sql).await.get(0);
        if stamped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stamped = stamped.expect("resolve-api-key stamps last_used");

    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "an untouched database verifies: {out}{err}");
    assert!(out.contains("4 tables equal"), "{out}");

    // Drift, by SQL.
    let hashes: Vec<String> = {
        let client = db.pool().get().await.unwrap();
        let mut h: Vec<String> = client
            .query("SELECT encode(key_hash, 'hex') FROM api_keys", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        h.extend(
            client
                .query("SELECT password_hash FROM users WHERE password_hash IS NOT NULL", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0)),
        );
        h
    };
    assert!(hashes.len() >= 6, "{hashes:?}");
    exec(
        &db,
        &format!(
            "UPDATE users SET roles = '{{admin}}' WHERE id = '{alice}';
             UPDATE users SET password_hash = '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$TAMPEREDTAMPERED' \
               WHERE id = '{bob}';
             DELETE FROM api_keys WHERE id = '{k_bob_id}';
             INSERT INTO users (id, workspace, username, name, email, roles, enabled, must_change_password, \
               password_hash, account_version, created, updated) VALUES ('bogus-user', 'acme', 'mallory', 'M', '', \
               '{{admin}}', true, false, '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$BOGUSBOGUSBOGUS', 1, now(), now());
             UPDATE workspaces SET name = 'Tampered' WHERE id = 'acme';"
        ),
    )
    .await;

    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 2, "{out}{err}");
    for expected in [
        format!("users id={alice}: roles differs"),
        format!("users id={bob}: password_hash differs"),
        format!("api_keys id={k_bob_id}: produced by the log but missing from the live table"),
        "users id=bogus-user: in the live table but not produced by the log".to_owned(),
        "workspaces id=acme: name differs".to_owned(),
        "5 differences".to_owned(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(out.lines().count(), 6, "{out}");
    let printed = format!("{out}{err}");
    for secret in hashes.iter().map(String::as_str).chain(["TAMPERED", "BOGUSBOGUS", "argon2", "sha256:"]) {
        assert!(!printed.contains(secret), "verify printed a hash ({secret}):\n{printed}");
    }

    let (code, out, err) = iamd(&db, &["projections", "rebuild"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("events/s") && out.contains("4 tables swapped in"), "{out}");
    assert!(!shadow_schema_exists(&db).await);
    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");

    // The repaired tables serve: the key resolves with alice's real roles, last_used is kept,
    // the deleted key is back, the bogus user is gone, logins work for both daves' successors.
    let resolved = ok(server.call(json!({"operation": "resolve-api-key", "api_key": alice_key})).await);
    assert_eq!(resolved["resolved_roles"], json!(["writer"]));
    let kept: Option<chrono::DateTime<chrono::Utc>> = query_one(&db, &stamp_sql).await.get(0);
    assert_eq!(kept, Some(stamped));
    let back: i64 =
        query_one(&db, &format!("SELECT count(*) FROM api_keys WHERE id = '{k_bob_id}'")).await.get(0);
    assert_eq!(back, 1);
    let bogus: i64 = query_one(&db, "SELECT count(*) FROM users WHERE id = 'bogus-user'").await.get(0);
    assert_eq!(bogus, 0);
    let name: String = query_one(&db, "SELECT name FROM workspaces WHERE id = 'acme'").await.get(0);
    assert_eq!(name, "acme");
    server.jwt("robert", PASSWORD).await;
    let login =
        ok(server.call(json!({"operation": "login", "username": "dave", "password": PASSWORD})).await);
    assert!(login["jwt"].is_string());
    let owner: String =
        query_one(&db, "SELECT user_id FROM unique_usernames WHERE username_key = 'dave'").await.get(0);
    assert_eq!(owner, dave2);
    // The swapped-in tables keep the constraint names the store relies on: a taken username
    // is still `duplicate`, not an internal error.
    let dup = server
        .call(json!({"operation": "create-user", "workspace": "acme",
            "user": {"username": "Alice", "password": PASSWORD}}))
        .await;
    assert_eq!(dup["error"]["type"], "duplicate", "{dup}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_rebuild_while_keys_are_created_and_resolved_loses_nothing() {
    let db = TestDb::new().await;
    // History for the rebuild to chew on (and so to overlap the writes below).
    let (code, out, err) = iamd(&db, &["projections", "generate", "--events", "60000"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let server = Arc::new(TestServer::spawn(db.url(), &[]));
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "live"}})).await);
    let owner = server.create_user("live", "owner", PASSWORD, &["writer"]).await;

    // The writer: create a key, resolve it at once (it must resolve: after a command returns
    // every read sees it, swap or not), again and again until told to stop.
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, keys, failures, stop) = (server.clone(), keys.clone(), failures.clone(), stop.clone());
        let owner = owner.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let reply = server
                    .call(json!({"operation": "create-api-key", "workspace": "live",
                        "key": {"user_id": owner, "name": format!("k{n}")}}))
                    .await;
                let Some(plaintext) = reply["api_key_plaintext"].as_str() else {
                    failures.lock().unwrap().push(format!("create k{n}: {reply}"));
                    continue;
                };
                let resolved =
                    server.call(json!({"operation": "resolve-api-key", "api_key": plaintext})).await;
                if resolved["resolved_user_id"] != json!(owner) {
                    failures.lock().unwrap().push(format!("resolve k{n}: {resolved}"));
                }
                keys.lock().unwrap().push(plaintext.to_owned());
                if n % 25 == 0 {
                    // Now and then a user too (a username reservation).
                    let r = server
                        .call(json!({"operation": "create-user", "workspace": "live",
                            "user": {"username": format!("user{n}"), "password": PASSWORD}}))
                        .await;
                    if r.get("error").is_some() {
                        failures.lock().unwrap().push(format!("create user{n}: {r}"));
                    }
                }
            }
        })
    };
    while keys.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = keys.lock().unwrap().len();
    let (code, out, err) = iamd(&db, &["projections", "rebuild", "--online"]).await;
    let during = keys.lock().unwrap().len() - before;
    let after = keys.lock().unwrap().len();
    while keys.lock().unwrap().len() < after + 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("catch-up pass"), "{out}");
    assert!(during > 0, "no write completed while the rebuild ran: the test proved nothing\n{out}");
    assert!(failures.lock().unwrap().is_empty(), "{:?}", failures.lock().unwrap());
    assert!(!shadow_schema_exists(&db).await);

    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let keys = keys.lock().unwrap().clone();
    for key in &keys {
        let r = server.call(json!({"operation": "resolve-api-key", "api_key": key})).await;
        assert_eq!(r["resolved_user_id"], json!(owner), "{r}");
    }
    // The generated history is in the swapped-in tables too.
    let generated: i64 = query_one(&db, "SELECT count(*) FROM workspaces WHERE id LIKE 'gen-%'").await.get(0);
    assert!(generated > 32, "{generated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_log_passes_audit_verify_and_rebuilds() {
    let db = TestDb::new().await;
    let (code, out, err) = iamd(&db, &["projections", "generate", "--events", "20000"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("20000 events"), "{out}");
    let report = iamd::audit::verify(&db.pool(), None, |_| {}).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, 20_000);

    // Only the log was written: verify sees every row missing, and says how many.
    let (code, out, _) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("produced by the log but missing from the live table"), "{out}");
    assert!(out.lines().count() <= 4 * 50 + 1, "the listing is capped:\n{out}");

    let (code, out, err) = iamd(&db, &["projections", "rebuild"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("20000 events"), "{out}");
    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("20000 events, 4 tables equal"), "{out}");

    // A generated key's plaintext is derivable from its id, and it is in the table.
    let client = db.pool().get().await.unwrap();
    let key_id: String = client.query_one("SELECT id FROM api_keys LIMIT 1", &[]).await.unwrap().get(0);
    let hash = iamd::crypto::ApiKeyHash::of(&iamd::tools::generate::api_key_plaintext(&key_id));
    let found: i64 = client
        .query_one("SELECT count(*) FROM api_keys WHERE key_hash = $1", &[&hash.0.as_slice()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);
    let users: i64 = client.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    let reserved: i64 = client.query_one("SELECT count(*) FROM unique_usernames", &[]).await.unwrap().get(0);
    assert!(users > 100 && users == reserved, "{users} users, {reserved} reservations");

    // Generate refuses a log that iamd wrote to, unless forced.
    let store = db.store();
    ok1(&store, first("workspace:real", vec![workspace_created("real")])).await;
    let (code, out, err) = iamd(&db, &["projections", "generate", "--events", "10"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--force"), "{err}");
}

fn workspace_created(id: &str) -> iamd::events::Event {
    iamd::events::Event::WorkspaceCreated {
        workspace_id: id.into(),
        name: id.into(),
        created: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_that_cannot_replay_the_log_says_why_and_changes_nothing() {
    let db = TestDb::new().await;
    let store = db.store();
    ok1(&store, first("workspace:acme", vec![workspace_created("acme")])).await;
    // A crashed rebuild's leftovers are cleared first.
    exec(&db, "CREATE SCHEMA iamd_rebuild; CREATE TABLE iamd_rebuild.users (x int)").await;
    let (code, out, err) = iamd(&db, &["projections", "rebuild", "--online"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!shadow_schema_exists(&db).await);
    ok1(&store, first("workspace:acme2", vec![workspace_created("acme2")])).await;

    let insert = |stream: &str, event_type: &str, payload: &str| {
        format!(
            "INSERT INTO events (stream, version, event_type, schema_version, payload, metadata, \
               recorded_at, prev_hash, hash) VALUES ('{stream}', 1, '{event_type}', 1, '{payload}', '{{}}', \
               now(), '', '')"
        )
    };
    let cases = [
        // An event that does not decode: named by position.
        (insert("workspace:bad", "user.created", r#"{"user_id": "u"}"#), "does not decode"),
        // A second workspace.created for acme: the replayed table breaks the primary key.
        (
            insert(
                "workspace:acme3",
                "workspace.created",
                r#"{"workspace_id": "acme", "name": "x", "created": "2026-01-01T00:00:00Z"}"#,
            ),
            "workspaces_pkey",
        ),
    ];
    for (sql, why) in cases {
        let client = db.pool().get().await.unwrap();
        let position: i64 = client.query_one(&format!("{sql} RETURNING position"), &[]).await.unwrap().get(0);
        for args in [
            &["projections", "rebuild"][..],
            &["projections", "rebuild", "--online"],
            &["projections", "verify"],
        ] {
            let (code, out, err) = iamd(&db, args).await;
            assert_eq!(code, 1, "{args:?}: {out}{err}");
            assert!(err.contains(why), "{args:?}: {err}");
            if why == "does not decode" {
                assert!(err.contains(&format!("position {position}")), "{args:?}: {err}");
            }
            assert!(!shadow_schema_exists(&db).await, "{args:?} left its shadow schema");
        }
        // Out of the way for the next case (as a superuser could; events are append-only).
        client
            .batch_execute(&format!(
                "ALTER TABLE events DISABLE TRIGGER USER; DELETE FROM events WHERE position = {position}; \
                 ALTER TABLE events ENABLE TRIGGER USER"
            ))
            .await
            .unwrap();
    }
    let live: i64 = query_one(&db, "SELECT count(*) FROM workspaces").await.get(0);
    assert_eq!(live, 2, "the live tables are untouched");
    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
}

/// Commit order is not quite `(transaction_id, position)`: a command that takes a username
/// can get its transaction id first, then wait on the row lock of the command freeing it, and
/// commit after it. Replayed by transaction id, the name is taken before it is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_by_a_lower_transaction_id_than_the_one_that_freed_it_replays() {
    let db = TestDb::new().await;
    let store = db.store();
    let a = ok1(&store, first("workspace:a", vec![workspace_created("a")])).await;
    ok1(&store, after(&a, vec![user_created("u-old", "dave")])).await;
    ok1(&store, first("workspace:b", vec![workspace_created("b")])).await;
    // What those two commits leave in the log, written by hand with the transaction ids
    // crossed (above every real one, so only the locked reads see them; and longer in digits,
    // so a sort on their text form would put them first).
    let (taken_type, taken) = user_created("u-new", "dave").to_columns();
    let (freed_type, freed) =
        iamd::events::Event::UserDeleted { user_id: "u-old".into(), username: "dave".into(), reason: None }
            .to_columns();
    let client = db.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO events (transaction_id, stream, version, event_type, schema_version, payload, \
               metadata, recorded_at, prev_hash, hash) \
             SELECT (pg_current_xact_id()::text::bigint + d)::text::xid8, s, v, t, 1, p, '{}', now(), '', '' \
             FROM (VALUES (1000000, 'workspace:b', 2, $1, $2::jsonb), \
                          (1000001, 'workspace:a', 3, $3, $4::jsonb)) AS x(d, s, v, t, p)",
            &[&taken_type, &taken, &freed_type, &freed],
        )
        .await
        .unwrap();
    for args in [&["projections", "rebuild"][..], &["projections", "rebuild", "--online"]] {
        let (code, out, err) = iamd(&db, args).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let owner: String =
            query_one(&db, "SELECT user_id FROM unique_usernames WHERE username_key = 'dave'").await.get(0);
        assert_eq!(owner, "u-new", "{args:?}");
        let users: i64 = query_one(&db, "SELECT count(*) FROM users WHERE username = 'dave'").await.get(0);
        assert_eq!(users, 1, "{args:?}");
        let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
}

fn user_created(user_id: &str, username: &str) -> iamd::events::Event {
    iamd::events::Event::UserCreated {
        user_id: user_id.into(),
        username: username.into(),
        name: username.into(),
        email: String::new(),
        roles: vec!["reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: None,
        created: chrono::Utc::now(),
        self_registered: false,
        number: None,
    }
}

/// Each table's rows as one digest (`last_used` left out: it is not an event).
async fn table_digests(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns) in [
        ("workspaces", "id, name, enabled, created"),
        (
            "users",
            "id, workspace, username, name, email, roles, enabled, must_change_password, password_hash, \
             account_version, created",
        ),
        ("api_keys", "key_hash, id, user_id, workspace, name, prefix, expires, created"),
        ("unique_usernames", "username_key, user_id"),
    ] {
        let sql = format!(
            "SELECT count(*)::text || ' ' || COALESCE(md5(string_agg(r::text, ',' ORDER BY r::text)), '') \
             FROM (SELECT {columns} FROM {table}) r"
        );
        out.push(format!("{table}: {}", query_one(db, &sql).await.get::<_, String>(0)));
    }
    out
}

/// The replay regroups each page's statements into multi-row statements, keeping only each
/// stream's order per table; it must leave exactly what the append path's inline reducers
/// left. Six workspaces take turns (one command each per round), so their events share pages
/// and their statements share batches; each changes the same rows again and again (a user is
/// disabled twice in a row, each bumping the account version; renamed twice; keys created and
/// revoked; several events in one command), and a name deleted in one workspace is taken in
/// the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regrouped_replay_leaves_what_the_inline_reducers_left() {
    use iamd::events::{Event, RevokeReason};
    const WORKSPACES: usize = 6;
    const USERS: usize = 4;
    let db = TestDb::new().await;
    let store = db.store();
    let key = |w: usize, u: usize, k: usize| format!("k{w}-{u}-{k}");
    let user = |w: usize, u: usize| format!("u{w}-{u}");
    let commands = |w: usize| -> Vec<Vec<Event>> {
        let mut c: Vec<Vec<Event>> = vec![vec![workspace_created(&format!("c{w}"))]];
        for u in 0..USERS {
            c.push(vec![user_created(&user(w, u), &format!("user{w}-{u}"))]);
        }
        for u in 0..USERS {
            for k in 0..3 {
                let id = key(w, u, k);
                c.push(vec![Event::ApiKeyCreated {
                    key_id: id.clone(),
                    user_id: user(w, u),
                    name: format!("key {k}"),
                    prefix: "tg_x".into(),
                    key_hash: iamd::crypto::ApiKeyHash::of(&format!("tg_{id}")).to_tagged(),
                    expires: None,
                    created: chrono::Utc::now(),
                }]);
            }
        }
        for u in 0..USERS {
            let id = user(w, u);
            c.push(vec![Event::UserDisabled { user_id: id.clone() }]);
            c.push(vec![Event::UserEnabled { user_id: id.clone() }]);
            c.push(vec![Event::UserDisabled { user_id: id.clone() }]);
            c.push(vec![Event::UserDisabled { user_id: id.clone() }]);
            c.push(vec![Event::ApiKeyRevoked { key_id: key(w, u, 0), reason: RevokeReason::Revoked }]);
            c.push(vec![
                Event::UserChanged {
                    user_id: id.clone(),
                    username: Some(format!("renamed{w}-{u}")),
                    name: Some("R".into()),
                    email: None,
                    roles: None,
                    must_change_password: None,
                },
                Event::UserEnabled { user_id: id.clone() },
            ]);
            c.push(vec![Event::UserChanged {
                user_id: id.clone(),
                username: Some(format!("final{w}-{u}")),
                name: None,
                email: Some(format!("{id}@example.com")),
                roles: Some(vec!["admin".into(), "reader".into()]),
                must_change_password: Some(true),
            }]);
            c.push(vec![Event::UserPasswordChanged {
                user_id: id.clone(),
                password_hash: format!("h1-{id}"),
            }]);
            c.push(vec![Event::UserPasswordReset { user_id: id.clone(), password_hash: format!("h2-{id}") }]);
            c.push(vec![Event::ApiKeyRevoked { key_id: key(w, u, 2), reason: RevokeReason::Revoked }]);
        }
        c.push(vec![Event::WorkspaceRenamed { name: format!("C{w}") }]);
        c.push(vec![Event::WorkspaceDisabled {}, Event::WorkspaceEnabled {}]);
        c.push(vec![Event::WorkspaceDisabled {}]);
        c.push(vec![Event::WorkspaceRenamed { name: format!("Final {w}") }]);
        // The last user is deleted; the next workspace takes the name one round later.
        c.push(vec![
            Event::ApiKeyRevoked { key_id: key(w, USERS - 1, 1), reason: RevokeReason::UserDeleted },
            Event::UserDeleted {
                user_id: user(w, USERS - 1),
                username: format!("final{w}-{}", USERS - 1),
                reason: None,
            },
        ]);
        let previous = (w + WORKSPACES - 1) % WORKSPACES;
        c.push(vec![user_created(&format!("taker{w}"), &format!("final{previous}-{}", USERS - 1))]);
        c
    };
    let mut plans: Vec<_> = (0..WORKSPACES).map(|w| commands(w).into_iter()).collect();
    let mut heads: Vec<Option<iamd::store::StreamHead>> = vec![None; WORKSPACES];
    // Round after round, each workspace's next command in turn.
    let mut appended = true;
    while appended {
        appended = false;
        for (w, (plan, head)) in plans.iter_mut().zip(heads.iter_mut()).enumerate() {
            let Some(events) = plan.next() else { continue };
            let append = match head {
                None => first(&format!("workspace:c{w}"), events),
                Some(head) => after(head, events),
            };
            *head = Some(ok1(&store, append).await);
            appended = true;
        }
    }
    let inline = table_digests(&db).await;
    // Disabled three times (the enable does not bump it), a password change and a reset.
    let version: i64 = query_one(&db, "SELECT account_version FROM users WHERE id = 'u2-1'").await.get(0);
    assert_eq!(version, 6);

    let (code, out, err) = iamd(&db, &["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 tables equal"), "{out}");
    for args in [&["projections", "rebuild"][..], &["projections", "rebuild", "--online"]] {
        let (code, out, err) = iamd(&db, args).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert_eq!(table_digests(&db).await, inline, "{args:?}");
    }
    let owner: String =
        query_one(&db, "SELECT user_id FROM unique_usernames WHERE username_key = 'final0-3'").await.get(0);
    assert_eq!(owner, "taker1");
}
