//! The authentication audit (docs/authentication-audit.md) through the real binary and real
//! PostgreSQL: every login and resolve-api-key outcome, and failed HTTP bearers, recorded with
//! outcome, reason bucket, credential, key id, client address, source and request id — never a
//! password, key or hash — while every failure still answers the one `auth-failed`; the
//! endpoint's refusals, filters and paging; the CLI; and the bounded queue, which drops what it
//! cannot hold and counts exactly what it dropped.
//!
//! The writer is asynchronous, so the tests poll for what they expect within a deadline.

use crate::support::server::{error_type, ok, run_iamd, TestServer, GATEWAY_SECRET};
use crate::support::TestDb;
use iamd::authn_audit::{Attempt, AuthOperation, CredentialKind, Origin, Reason, Recorder};
use iamd::config::AuthenticationAuditSettings;
use iamd::crypto::ApiKeyHash;
use iamd::metrics::AuthenticationCounters;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough passphrase";
const WRONG_PASSWORD: &str = "not-the-passphrase-42";
/// How long the asynchronous writer may take before a test gives up.
const DEADLINE: Duration = Duration::from_secs(20);
const PATH: &str = "/api/v1/audit/authentications";
/// The fields of a record, exactly.
const FIELDS: [&str; 15] = [
    "id",
    "count",
    "at",
    "outcome",
    "reason",
    "credential",
    "operation",
    "workspace",
    "user_id",
    "key_id",
    "username",
    "username_digest",
    "client",
    "source",
    "request_id",
];

/// `(api_key_plaintext, key id)` of a new key of `user`.
async fn new_key(server: &TestServer, user: &str, name: &str) -> (String, String) {
    let r = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": user, "name": name}}))
        .await);
    (r["api_key_plaintext"].as_str().unwrap().to_owned(), r["api_key"]["id"].as_str().unwrap().to_owned())
}

/// `GET PATH?query` as `bearer`, with extra headers.
async fn audit(
    server: &TestServer,
    bearer: Option<&str>,
    query: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    server.request(Method::GET, &format!("{PATH}?{query}"), bearer, None, headers).await
}

/// Every record, paging with `limit` until a page comes back empty.
async fn all_records(server: &TestServer, bearer: &str, filter: &str, limit: u32) -> Vec<Value> {
    let (mut after, mut out) = (0i64, Vec::new());
    loop {
        let (status, body) =
            audit(server, Some(bearer), &format!("after={after}&limit={limit}{filter}"), &[]).await;
        assert_eq!(status, 200, "{body}");
        let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["items", "next_after"]), "{body}");
        let items = body["items"].as_array().unwrap().clone();
        let next = body["next_after"].as_i64().unwrap();
        if items.is_empty() {
            assert_eq!(next, after, "an empty page says where it stands");
            return out;
        }
        assert!(items.len() <= limit as usize);
        assert_eq!(next, items.last().unwrap()["id"].as_i64().unwrap());
        after = next;
        out.extend(items);
    }
}

/// Polls until a record carries each of `request_ids`; the records by request id.
async fn wait_for(server: &TestServer, bearer: &str, request_ids: &[&str]) -> HashMap<String, Value> {
    let started = Instant::now();
    loop {
        let records = all_records(server, bearer, "", 1000).await;
        let by_id: HashMap<String, Value> =
            records.iter().filter_map(|r| Some((r["request_id"].as_str()?.to_owned(), r.clone()))).collect();
        if request_ids.iter().all(|id| by_id.contains_key(*id)) {
            return by_id;
        }
        let missing: Vec<_> = request_ids.iter().filter(|id| !by_id.contains_key(**id)).collect();
        assert!(started.elapsed() < DEADLINE, "no record of {missing:?} after {DEADLINE:?}: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the fields of a record; `None` means JSON null.
#[track_caller]
fn assert_record(r: &Value, expected: &[(&str, Option<&str>)]) {
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS.into_iter().collect::<BTreeSet<_>>(), "{r}");
    assert!(r["id"].as_i64().is_some_and(|id| id > 0), "{r}");
    assert_eq!(r["count"], 1, "one attempt each here: {r}");
    assert!(chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).is_ok(), "{r}");
    for (field, value) in expected {
        assert_eq!(r[*field].as_str(), *value, "{field} of {r}");
    }
}

/// A protocol reply that is the one `auth-failed`.
#[track_caller]
fn assert_auth_failed(reply: &Value) -> Value {
    assert_eq!(error_type(reply), "auth-failed", "{reply}");
    assert_eq!(reply.as_object().unwrap().len(), 1, "nothing but the error: {reply}");
    reply["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_recorded_with_its_reason_and_never_a_secret() {
    let db = TestDb::new().await;
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let admin = server.create_user("acme", "auditor", PASSWORD, &["admin"]).await;
    let alice = server.create_user("acme", "alice", PASSWORD, &["reader"]).await;
    let bob = server.create_user("acme", "bob", PASSWORD, &["reader"]).await;
    ok(server.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": bob})).await);
    let (admin_key, _) = new_key(&server, &admin, "audit").await;
    let (alice_key, alice_key_id) = new_key(&server, &alice, "good").await;
    let (revoked_key, revoked_key_id) = new_key(&server, &alice, "old").await;
    ok(server
        .call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": revoked_key_id}))
        .await);
    let unknown_key = "tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    // A successful login over REST: the request id is the HTTP one.
    let (status, body) = server
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD}).to_string()),
            &[("X-Request-Id", "login-ok")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Failures through the gateway: the request id is the request's own.
    let mut failures = Vec::new();
    for (request_id, username, password) in [
        ("login-bad-password", "alice", WRONG_PASSWORD),
        ("login-unknown-user", "nobody-here", PASSWORD),
        ("login-disabled", "bob", PASSWORD),
        ("login-malformed", "alice", ""),
    ] {
        let reply = server
            .call(json!({"operation": "login", "username": username, "password": password, "request_id": request_id}))
            .await;
        failures.push(assert_auth_failed(&reply));
    }
    let resolved = ok(server
        .call(json!({"operation": "resolve-api-key", "api_key": alice_key, "request_id": "resolve-ok"}))
        .await);
    assert_eq!(resolved["resolved_user_id"], alice.as_str());
    for (request_id, key) in [("resolve-unknown", unknown_key), ("resolve-revoked", revoked_key.as_str())] {
        let reply = server
            .call(json!({"operation": "resolve-api-key", "api_key": key, "request_id": request_id}))
            .await;
        failures.push(assert_auth_failed(&reply));
    }
    // No oracle: every failure is the very same reply.
    assert!(failures.windows(2).all(|w| w[0] == w[1]), "{failures:?}");
    // A REST login failure is the same 401 as any other.
    let (status, body) = server
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": WRONG_PASSWORD}).to_string()),
            &[("X-Request-Id", "rest-login-bad")],
        )
        .await;
    assert_eq!((status, body["error"].clone()), (401, failures[0].clone()));
    // Failed bearers of HTTP calls.
    for (request_id, bearer) in [("bearer-revoked", revoked_key.as_str()), ("bearer-garbage", "aaa.bbb.ccc")]
    {
        let reply = audit(&server, Some(bearer), "", &[("X-Request-Id", request_id)]).await;
        assert_eq!(reply, (401, json!({"error": "auth failure"})), "{request_id}");
    }
    // The other endpoints that take only a user's bearer record their refusals alike.
    for (request_id, path) in [("bearer-metrics", "/metrics"), ("bearer-feed", "/api/v1/audit/events?wait=0")]
    {
        let reply = server
            .request(reqwest::Method::GET, path, Some(&revoked_key), None, &[("X-Request-Id", request_id)])
            .await;
        assert_eq!(reply, (401, json!({"error": "auth failure"})), "{request_id}");
    }

    let records = wait_for(
        &server,
        &admin_key,
        &[
            "login-ok",
            "login-bad-password",
            "login-unknown-user",
            "login-disabled",
            "login-malformed",
            "rest-login-bad",
            "resolve-ok",
            "resolve-unknown",
            "resolve-revoked",
            "bearer-revoked",
            "bearer-garbage",
            "bearer-metrics",
            "bearer-feed",
        ],
    )
    .await;
    let http = [("client", Some("127.0.0.1")), ("source", Some("http"))];
    let login = |request_id: &'static str, reason: &'static str, user: Option<&'static str>| {
        let outcome = if reason == "ok" { "success" } else { "failure" };
        vec![
            ("request_id", Some(request_id)),
            ("outcome", Some(outcome)),
            ("reason", Some(reason)),
            ("operation", Some("login")),
            ("credential", Some("password")),
            ("key_id", None),
            ("username", user),
        ]
    };
    for (request_id, reason, username, user_id) in [
        ("login-ok", "ok", Some("alice"), Some(alice.as_str())),
        ("login-bad-password", "bad-password", Some("alice"), Some(alice.as_str())),
        ("rest-login-bad", "bad-password", Some("alice"), Some(alice.as_str())),
        ("login-unknown-user", "unknown-user", None, None),
        ("login-disabled", "disabled", Some("bob"), Some(bob.as_str())),
        ("login-malformed", "malformed", None, None),
    ] {
        let r = &records[request_id];
        let mut expected = login(request_id, reason, username);
        expected.push(("user_id", user_id));
        expected.extend(http);
        assert_record(r, &expected);
    }
    for (request_id, digested) in
        [("login-ok", false), ("login-unknown-user", true), ("login-malformed", true)]
    {
        let digest = records[request_id]["username_digest"].as_str().unwrap_or_default();
        assert_eq!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            digested,
            "{request_id}"
        );
    }
    assert!(
        !records.values().any(|r| r.to_string().contains("nobody-here")),
        "a name that found no user is never kept"
    );
    assert_eq!(records["login-ok"]["workspace"], "acme");
    assert_eq!(records["login-unknown-user"]["workspace"], Value::Null);
    for (request_id, outcome, reason, key_id, user_id) in [
        ("resolve-ok", "success", "ok", Some(alice_key_id.as_str()), Some(alice.as_str())),
        ("resolve-unknown", "failure", "revoked-or-unknown", None, None),
        ("resolve-revoked", "failure", "revoked-or-unknown", None, None),
    ] {
        let mut expected = vec![
            ("request_id", Some(request_id)),
            ("outcome", Some(outcome)),
            ("reason", Some(reason)),
            ("operation", Some("resolve-api-key")),
            ("credential", Some("api-key")),
            ("key_id", key_id),
            ("user_id", user_id),
            ("username", None),
        ];
        expected.extend(http);
        assert_record(&records[request_id], &expected);
    }
    assert_eq!(records["resolve-ok"]["workspace"], "acme");
    for (request_id, credential, reason) in [
        ("bearer-revoked", "api-key", "revoked-or-unknown"),
        ("bearer-garbage", "jwt", "malformed"),
        ("bearer-metrics", "api-key", "revoked-or-unknown"),
        ("bearer-feed", "api-key", "revoked-or-unknown"),
    ] {
        let mut expected = vec![
            ("request_id", Some(request_id)),
            ("outcome", Some("failure")),
            ("reason", Some(reason)),
            ("operation", Some("http-bearer")),
            ("credential", Some(credential)),
            ("key_id", None),
            ("user_id", None),
        ];
        expected.extend(http);
        assert_record(&records[request_id], &expected);
    }

    // Successful bearers (the auditor's own polling) are not recorded: exactly these 13.
    let everything = all_records(&server, &admin_key, "", 1000).await;
    assert_eq!(everything.len(), 13, "{everything:?}");
    let ids: Vec<i64> = everything.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest id first: {ids:?}");

    // Paging: small pages give the same records in the same order.
    assert_eq!(all_records(&server, &admin_key, "", 4).await, everything);
    // Filters.
    let alice_failures =
        all_records(&server, &admin_key, &format!("&user_id={alice}&outcome=failure"), 100).await;
    let got: BTreeSet<&str> = alice_failures.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(got, BTreeSet::from(["login-bad-password", "rest-login-bad"]));
    let successes = all_records(&server, &admin_key, "&outcome=success", 100).await;
    let got: BTreeSet<&str> = successes.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(got, BTreeSet::from(["login-ok", "resolve-ok"]));
    let future = all_records(&server, &admin_key, "&since=2999-01-01T00:00:00Z", 100).await;
    assert!(future.is_empty());
    let (status, body) = audit(&server, Some(&admin_key), "outcome=maybe", &[]).await;
    assert_eq!((status, error_type(&body)), (400, "invalid-argument"), "{body}");

    // Who may read it: no bearer or a bad one 401, a non-admin 403, the gateway secret 401.
    let (reader_key, _) = new_key(&server, &alice, "reader").await;
    assert_eq!(audit(&server, None, "", &[]).await, (401, json!({"error": "auth failure"})));
    let gateway = audit(&server, Some(GATEWAY_SECRET), "", &[("X-Request-Id", "bearer-gateway")]).await;
    assert_eq!(gateway, (401, json!({"error": "auth failure"})));
    assert_eq!(audit(&server, Some(&reader_key), "", &[]).await, (403, json!({"error": "access denied"})));
    // The gateway's secret is no bearer of a user: a failure like any (and never stored).
    let mut expected = vec![("reason", Some("malformed")), ("credential", Some("jwt"))];
    expected.extend(http);
    assert_record(&wait_for(&server, &admin_key, &["bearer-gateway"]).await["bearer-gateway"], &expected);

    // The CLI shows the same records, as JSON lines and as text.
    let (code, stdout, stderr) = run_iamd(db.url(), &["audit", "authentications", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let everything_now = all_records(&server, &admin_key, "", 1000).await;
    assert_eq!(lines, everything_now);
    let (code, text, stderr) =
        run_iamd(db.url(), &["audit", "authentications", "--user", &alice, "--outcome", "failure"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.contains(" failure bad-password login password ")), "{text}");
    assert!(text.contains("client=127.0.0.1") && text.contains("request=rest-login-bad"), "{text}");
    assert!(stderr.contains("2 records"), "{stderr}");
    let (code, _, stderr) = run_iamd(db.url(), &["audit", "authentications", "--since", "yesterday"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--since"), "{stderr}");

    // No secret anywhere: not in the records, the CLI's output or the server's log.
    let client = db.pool().get().await.unwrap();
    let mut secrets: Vec<String> = client
        .query("SELECT password_hash FROM users WHERE password_hash IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!secrets.is_empty());
    for key in
        [admin_key.as_str(), alice_key.as_str(), revoked_key.as_str(), unknown_key, reader_key.as_str()]
    {
        secrets.push(key.to_owned());
        secrets.push(ApiKeyHash::of(key).to_hex());
        // What comes after `tg_`: no part of a key may travel, prefix or not.
        secrets.push(key[3..].to_owned());
    }
    secrets.extend([PASSWORD.to_owned(), WRONG_PASSWORD.to_owned(), GATEWAY_SECRET.to_owned()]);
    let shown = [serde_json::to_string(&everything_now).unwrap(), stdout, text, server.logged("").join("\n")];
    for secret in &secrets {
        for (i, output) in shown.iter().enumerate() {
            assert!(!output.contains(secret.as_str()), "output {i} holds a secret");
        }
    }
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM authentications WHERE concat_ws(' ', workspace, user_id, key_id, username, \
             client, source, request_id) ~ 'argon2|sha256|tg_'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "no stored field looks like a hash or a key");
}

/// The value of an OpenMetrics sample without labels.
#[track_caller]
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Issue 15, item 4: a password typed into the username field is not kept. A login whose name
/// finds no user keeps only a keyed digest of the name — the same for repeated attempts on one
/// name (and names that compare equal), another for another name — in the table, over HTTP and
/// in `iamd audit authentications`; a known username is recorded as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_finds_no_user_is_kept_only_as_a_keyed_digest() {
    let db = TestDb::new().await;
    let server = TestServer::binary(
        db.url(),
        &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_AUDIT_AUTHENTICATIONS_FLUSH_INTERVAL", "10ms")],
    );
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    server.create_user("acme", "carol", PASSWORD, &["admin"]).await;
    let admin = server.jwt("carol", PASSWORD).await;
    let typed = "Tr0ub4dor&3-in-the-wrong-field";
    for (request_id, username) in [
        ("typo-1", typed),
        ("typo-2", typed),
        ("typo-upper", "TR0UB4DOR&3-IN-THE-WRONG-FIELD"),
        ("other-name", "someone-else"),
        ("known", "carol"),
    ] {
        let reply = server
            .call(json!({"operation": "login", "username": username, "password": WRONG_PASSWORD, "request_id": request_id}))
            .await;
        assert_auth_failed(&reply);
    }
    let records = wait_for(&server, &admin, &["typo-1", "typo-2", "typo-upper", "other-name", "known"]).await;
    let digest = |id: &str| records[id]["username_digest"].as_str().unwrap_or_default().to_owned();
    assert_eq!(digest("typo-1").len(), 64);
    assert_eq!(digest("typo-1"), digest("typo-2"), "repeated attempts on one name are seen as such");
    assert_eq!(digest("typo-1"), digest("typo-upper"), "names that compare equal share a digest");
    assert_ne!(digest("typo-1"), digest("other-name"));
    assert_eq!(records["typo-1"]["username"], Value::Null);
    assert_eq!(records["typo-1"]["reason"], "unknown-user");
    assert_eq!(
        (records["known"]["username"].as_str(), records["known"]["username_digest"].as_str()),
        (Some("carol"), None)
    );

    let (code, text, stderr) = run_iamd(db.url(), &["audit", "authentications"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains(&format!("username_digest={}", digest("typo-1"))), "{text}");
    let dump = db.dump();
    let http = serde_json::to_string(&all_records(&server, &admin, "", 1000).await).unwrap();
    for (what, shown) in [("the table", &dump), ("the HTTP endpoint", &http), ("the CLI", &text)] {
        for secret in [typed.to_owned(), typed.to_lowercase(), typed.to_uppercase()] {
            assert!(!shown.contains(&secret), "{what} holds the name that found no user");
        }
    }
    assert!(
        server.logged("").iter().all(|l| !l.to_lowercase().contains(&typed.to_lowercase())),
        "nor the log"
    );
}

/// Names that found no user, kept before digests, are digested (and erased) at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_kept_before_are_digested_at_start() {
    let db = TestDb::new().await;
    let client = db.pool().get().await.unwrap();
    for (username, user_id) in [("hunter2-typed-here", None), ("known-user", Some("u-1"))] {
        client
            .execute(
                "INSERT INTO authentications (at, outcome, reason, credential, operation, user_id, username, source) \
                 VALUES (now(), 'failure', 'unknown-user', 'password', 'login', $2, $1, 'http')",
                &[&username, &user_id],
            )
            .await
            .unwrap();
    }
    drop(TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]));
    let rows =
        client.query("SELECT username, username_digest FROM authentications ORDER BY id", &[]).await.unwrap();
    let rows: Vec<(Option<String>, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows[0].0, None, "erased");
    assert_eq!(rows[0].1.as_ref().map(String::len), Some(64), "digested");
    assert_eq!(rows[1], (Some("known-user".into()), None), "a known user's name stays");
    assert!(!db.dump().contains("hunter2-typed-here"));
}

async fn count_rows(db: &TestDb) -> u64 {
    let client = db.pool().get().await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM authentications", &[]).await.unwrap().get(0);
    n as u64
}

fn attempt(request_id: &str) -> Attempt {
    let mut a =
        Attempt::new(AuthOperation::Login, CredentialKind::Password, &Origin::of("kafka"), request_id);
    a.reason = Reason::BadPassword;
    a.username = Some("alice".into());
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_queue_drops_and_counts_exactly_what_it_dropped() {
    let db = TestDb::new().await;
    let counters = AuthenticationCounters::default();
    let settings = AuthenticationAuditSettings { queue: 4, ..Default::default() };
    let (recorder, writer) = Recorder::new(&settings, counters.clone());

    // The writer is not running yet: 4 fit, 6 are dropped, at once.
    for i in 0..10 {
        recorder.record(attempt(&format!("early-{i}")));
    }
    assert_eq!((counters.dropped.get(), counters.queued.get()), (6, 4));
    tokio::spawn(writer.run(db.pool()));
    assert!(recorder.flush(DEADLINE).await);
    assert_eq!((counters.recorded.get(), counters.dropped.get(), counters.queued.get()), (4, 6, 0));
    assert_eq!(count_rows(&db).await, 4);

    // The database goes away: the writer retries, then drops the batch and counts it.
    db.cut_off().await;
    for i in 0..3 {
        recorder.record(attempt(&format!("cut-{i}")));
    }
    assert!(recorder.flush(DEADLINE).await);
    assert_eq!((counters.recorded.get(), counters.dropped.get()), (4, 9));
    db.reopen().await;

    // And it comes back: what is recorded now is written.
    for i in 0..2 {
        recorder.record(attempt(&format!("back-{i}")));
    }
    assert!(recorder.flush(DEADLINE).await);
    assert_eq!((counters.recorded.get(), counters.dropped.get(), counters.queued.get()), (6, 9, 0));
    assert_eq!(count_rows(&db).await, 6);
    let client = db.pool().get().await.unwrap();
    let ids: Vec<String> = client
        .query("SELECT request_id FROM authentications ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, ["early-0", "early-1", "early-2", "early-3", "back-0", "back-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_counts_every_record_it_could_not_write_in_metrics() {
    const ATTEMPTS: u64 = 20;
    let db = TestDb::new().await;
    let server = TestServer::binary(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_AUDIT_AUTHENTICATIONS_QUEUE", "1"),
            ("IAMD_AUDIT_AUTHENTICATIONS_BATCH", "1"),
        ],
    );
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let admin = server.create_user("acme", "auditor", PASSWORD, &["admin"]).await;
    let (admin_key, _) = new_key(&server, &admin, "metrics").await;

    // With its database cut off, every login fails (internal-error) and is recorded as such,
    // but nothing can be written: the writer retries its batch of one, then drops it, while
    // the queue of one overflows.
    db.cut_off().await;
    for i in 0..ATTEMPTS {
        let reply = server
            .call(json!({"operation": "login", "username": "alice", "password": PASSWORD, "request_id": format!("cut-{i}")}))
            .await;
        assert_eq!(error_type(&reply), "internal-error", "{reply}");
    }
    let started = Instant::now();
    while server.logged("authentication audit: records dropped").is_empty() {
        assert!(started.elapsed() < DEADLINE, "the writer never gave up on its batch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.reopen().await;

    // Every attempt is either written or counted as dropped: exactly.
    let started = Instant::now();
    let (recorded, dropped, text) = loop {
        let (status, body) = server.request(Method::GET, "/metrics", Some(&admin_key), None, &[]).await;
        if status == 200 {
            let text = body.as_str().unwrap().to_owned();
            let recorded = sample(&text, "iamd_authentications_recorded_total");
            let dropped = sample(&text, "iamd_authentications_dropped_total");
            if recorded + dropped == ATTEMPTS && sample(&text, "iamd_authentications_queued") == 0 {
                break (recorded, dropped, text);
            }
        }
        assert!(started.elapsed() < DEADLINE, "metrics never added up: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(count_rows(&db).await, recorded, "{text}");
    // Both ways to drop happened: batches given up (each says how many records) and a full queue.
    let lines = server.logged("authentication audit: records dropped");
    let given_up: u64 = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["fields"]["records"].as_u64().unwrap())
        .sum();
    assert!(given_up >= 1 && dropped > given_up, "dropped {dropped}, given up {given_up}: {lines:?}");
    for line in &lines {
        assert!(!line.contains(PASSWORD) && !line.contains("alice"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_over_kafka_name_their_source_and_no_client() {
    use crate::support::broker::Broker;
    use iamd::adapters::kafka::client::{ClientOptions, KafkaClient};
    let db = TestDb::new().await;
    let broker = Broker::memory();
    broker.create_iam_topics(2);
    let brokers = broker.brokers();
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_KAFKA_BROKERS", brokers.as_str()),
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_KAFKA_PROPERTIES", "session.timeout.ms=6000,heartbeat.interval.ms=500"),
        ],
    );
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let admin = server.create_user("acme", "auditor", PASSWORD, &["admin"]).await;
    let (admin_key, admin_key_id) = new_key(&server, &admin, "audit").await;

    let wait = Duration::from_secs(30);
    let client = KafkaClient::connect(ClientOptions::new(&brokers), wait).await.expect("client connects");
    let call = |v: Value| {
        let request: iamd::protocol::IamRequest = serde_json::from_value(v).unwrap();
        let client = &client;
        async move { client.call(&request, wait).await.expect("a reply") }
    };
    let good =
        call(json!({"operation": "resolve-api-key", "api_key": admin_key, "request_id": "kafka-ok"})).await;
    assert!(good.error.is_none(), "{good:?}");
    let bad = call(json!({"operation": "login", "username": "auditor", "password": WRONG_PASSWORD})).await;
    assert_eq!(bad.error.map(|e| e.kind.as_str()), Some("auth-failed"));

    let records = wait_for(&server, &admin_key, &["kafka-ok"]).await;
    let kafka = [("client", None), ("source", Some("kafka"))];
    let mut expected =
        vec![("outcome", Some("success")), ("reason", Some("ok")), ("key_id", Some(admin_key_id.as_str()))];
    expected.extend(kafka);
    assert_record(&records["kafka-ok"], &expected);
    // Without a request_id of its own, a Kafka request is known by its `id` header.
    let started = Instant::now();
    let login = loop {
        let all = all_records(&server, &admin_key, "&outcome=failure", 100).await;
        if let Some(r) = all.into_iter().find(|r| r["operation"] == "login") {
            break r;
        }
        assert!(started.elapsed() < DEADLINE, "the Kafka login was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected = vec![("reason", Some("bad-password")), ("username", Some("auditor"))];
    expected.extend(kafka);
    assert_record(&login, &expected);
    assert!(login["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{login}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_queued_at_shutdown_is_written_before_exit() {
    let db = TestDb::new().await;
    // Batches would wait a minute to fill: only the shutdown flush can write this one soon.
    let mut server = TestServer::binary(
        db.url(),
        &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_AUDIT_AUTHENTICATIONS_FLUSH_INTERVAL", "60s")],
    );
    let reply = server
        .call(json!({"operation": "login", "username": "nobody", "password": PASSWORD, "request_id": "last-words"}))
        .await;
    assert_auth_failed(&reply);
    assert_eq!(count_rows(&db).await, 0, "still queued");
    server.signal("TERM");
    let status = server.wait_exit(DEADLINE).expect("iamd stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let client = db.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT reason, username, request_id, client, username_digest IS NOT NULL FROM authentications",
            &[],
        )
        .await
        .expect("exactly one record");
    let got: (String, Option<String>, String, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(got, ("unknown-user".into(), None, "last-words".into(), "127.0.0.1".into(), true));
}

fn resolved(key_id: &str, client: &str, request_id: &str) -> Attempt {
    let origin = Origin { client: Some(client.into()), ..Origin::of("http") };
    let mut a = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, request_id);
    a.key_id = Some(key_id.into());
    a.user_id = Some("u-1".into());
    a.reason = Reason::Ok;
    a
}

/// (key_id, reason, count, request_id, has last_at) of every row, in id order.
async fn rows(db: &TestDb) -> Vec<(String, String, i32, String, bool)> {
    let client = db.pool().get().await.unwrap();
    client
        .query("SELECT key_id, reason, count, request_id, last_at FROM authentications ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let last: Option<chrono::DateTime<chrono::Utc>> = r.get(4);
            (r.get(0), r.get(1), r.get(2), r.get(3), last.is_some())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_resolves_of_a_key_coalesce_per_batch_and_failures_never_do() {
    for coalesce in [true, false] {
        let db = TestDb::new().await;
        let counters = AuthenticationCounters::default();
        let settings = AuthenticationAuditSettings { coalesce_resolves: coalesce, ..Default::default() };
        let (recorder, writer) = Recorder::new(&settings, counters.clone());
        // Queued before the writer runs: one batch.
        for i in 0..50 {
            recorder.record(resolved("k1", "10.0.0.1", &format!("k1-{i}")));
        }
        for i in 0..10 {
            recorder.record(resolved("k2", "10.0.0.1", &format!("k2-{i}")));
            let mut failed = resolved("k1", "10.0.0.1", &format!("expired-{i}"));
            failed.reason = Reason::Expired;
            recorder.record(failed);
        }
        tokio::spawn(writer.run(db.pool()));
        assert!(recorder.flush(DEADLINE).await);
        assert_eq!(counters.recorded.get(), 70, "every attempt is counted, coalesced or not");
        let rows = rows(&db).await;
        let total: i32 = rows.iter().map(|r| r.2).sum();
        assert_eq!(total, 70);
        let failures: Vec<_> = rows.iter().filter(|r| r.1 == "expired").collect();
        assert_eq!(failures.len(), 10);
        assert!(failures.iter().all(|r| r.2 == 1 && !r.4), "failures stay one row each");
        if coalesce {
            assert_eq!(rows.len(), 12);
            assert_eq!(rows[0], ("k1".into(), "ok".into(), 50, "k1-0".into(), true));
            assert_eq!(rows[1], ("k2".into(), "ok".into(), 10, "k2-0".into(), true));
        } else {
            assert_eq!(rows.len(), 70);
            assert!(rows.iter().all(|r| r.2 == 1 && !r.4));
        }
    }
}
