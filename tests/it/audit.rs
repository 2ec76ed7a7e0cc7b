//! `iamd audit verify` against a real database: an intact log verifies with its exact count;
//! an edited, deleted or reordered row (tampered by SQL with the append-only trigger disabled)
//! is named by stream and version; `--workspace` walks one stream; the binary exits 0 / 2 and
//! never prints a payload. Each test gets its own database (see `crate::support::TestDb`).

use crate::support::history::{after, first, ok1};
use crate::support::server::run_iamd;
use crate::support::TestDb;
use chrono::Utc;
use iamd::audit::{verify, verify_in_pages, Problem, Report};
use iamd::crypto::{ApiKeyHash, SigningKey};
use iamd::events::hash;
use iamd::events::{Event, RevokeReason};

/// Stands for an argon2id encoding in a payload; must never be printed.
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$AUDITSECRETHASHNEVERPRINTED";
const ACME: &str = "workspace:acme";
const BETA: &str = "workspace:beta";

// ---------------------------------------------------------------------------------------------
// Helpers

fn workspace_created(id: &str) -> Event {
    Event::WorkspaceCreated { workspace_id: id.into(), name: format!("Workspace {id}"), created: Utc::now() }
}

fn user_created(user_id: &str, username: &str) -> Event {
    Event::UserCreated {
        user_id: user_id.into(),
        username: username.into(),
        name: format!("{username} Example"),
        email: format!("{username}@example.com"),
        roles: vec!["admin".into(), "reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: Some(PASSWORD_HASH.into()),
        created: Utc::now(),
        self_registered: false,
        number: None,
    }
}

/// system v1; acme v1..=5 (workspace, two users, a key created then revoked); beta v1..=2,
/// with the streams' writes interleaved. 8 events in 3 streams.
async fn history(db: &TestDb) {
    let store = db.store();
    let key = SigningKey::generate(hash::truncate(Utc::now())).unwrap();
    let event = Event::SigningKeyCreated {
        kid: key.kid.clone(),
        public_key: key.public_pem(),
        created: key.created,
        algorithm: key.algorithm,
    };
    let mut a = first(iamd::events::SYSTEM_STREAM, vec![event]);
    a.signing_key = Some(key);
    ok1(&store, a).await;

    let acme = ok1(&store, first(ACME, vec![workspace_created("acme")])).await;
    let beta = ok1(&store, first(BETA, vec![workspace_created("beta")])).await;
    let acme = ok1(&store, after(&acme, vec![user_created("u-alice", "alice")])).await;
    let _beta = ok1(&store, after(&beta, vec![user_created("u-carol", "carol")])).await;
    let acme = ok1(&store, after(&acme, vec![user_created("u-bob", "bob")])).await;
    let plaintext = "tg_auditkeyauditkeyauditkey";
    let created = Event::ApiKeyCreated {
        key_id: "k-1".into(),
        user_id: "u-alice".into(),
        name: "ci".into(),
        prefix: plaintext[..8].into(),
        key_hash: ApiKeyHash::of(plaintext).to_tagged(),
        expires: None,
        created: Utc::now(),
    };
    let acme = ok1(&store, after(&acme, vec![created])).await;
    let acme = ok1(
        &store,
        after(&acme, vec![Event::ApiKeyRevoked { key_id: "k-1".into(), reason: RevokeReason::Revoked }]),
    )
    .await;
    assert_eq!(acme.version, 5);
}

/// Runs SQL on the log as the superuser with the append-only trigger off: the tampering the
/// hash chain exists to reveal.
async fn tamper(db: &TestDb, sql: &str) {
    let client = db.pool().get().await.unwrap();
    client
        .batch_execute(&format!("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete; {sql}"))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", crate::support::db_message(&e)));
}

async fn walk(db: &TestDb, workspace: Option<&str>) -> Report {
    verify(&db.pool(), workspace, |_| {}).await.expect("verify runs")
}

/// The (stream, version, problem) of the first break.
async fn first_break(db: &TestDb, workspace: Option<&str>) -> (String, i64, Problem) {
    let report = walk(db, workspace).await;
    let Some(b) = report.first_break.clone() else { panic!("expected a break, got {report:?}") };
    (b.stream, b.version, b.problem)
}

/// `iamd audit verify ARGS…` against the database: (exit code, stdout, stderr).
fn run_binary(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let args: Vec<&str> = ["audit", "verify"].iter().chain(args).copied().collect();
    let (code, stdout, stderr) = run_iamd(db.url(), &args);
    assert!(
        !stdout.contains(PASSWORD_HASH) && !stderr.contains(PASSWORD_HASH),
        "a payload was printed:\n{stdout}\n{stderr}"
    );
    (code, stdout, stderr)
}

// ---------------------------------------------------------------------------------------------
// The library walk

#[tokio::test]
async fn an_intact_log_verifies_with_its_exact_count() {
    let db = TestDb::new().await;
    history(&db).await;
    let mut seen = Vec::new();
    let report = verify(&db.pool(), None, |n| seen.push(n)).await.unwrap();
    assert_eq!(report, Report { events: 8, streams: 3, first_break: None });
    assert_eq!(seen.last(), Some(&8), "progress reports the events checked");

    let empty = TestDb::new().await;
    assert_eq!(walk(&empty, None).await, Report { events: 0, streams: 0, first_break: None });
}

#[tokio::test]
async fn small_pages_walk_the_same_log_across_page_and_stream_boundaries() {
    let db = TestDb::new().await;
    history(&db).await;
    for page in [1, 2, 3, 5] {
        let mut seen = Vec::new();
        let report = verify_in_pages(&db.pool(), None, page, |n| seen.push(n)).await.unwrap();
        assert_eq!(report, Report { events: 8, streams: 3, first_break: None }, "page {page}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "page {page}: progress only grows: {seen:?}");
        let one = verify_in_pages(&db.pool(), Some("acme"), page, |_| {}).await.unwrap();
        assert_eq!(one, Report { events: 5, streams: 1, first_break: None }, "page {page}");
    }
    tamper(&db, "DELETE FROM events WHERE stream = 'workspace:beta' AND version = 1").await;
    let report = verify_in_pages(&db.pool(), None, 2, |_| {}).await.unwrap();
    let b = report.first_break.expect("a break");
    assert_eq!((b.stream.as_str(), b.version, b.problem), (BETA, 2, Problem::VersionGap { expected: 1 }));
}

#[tokio::test]
async fn an_edited_payload_is_named_at_its_version() {
    let db = TestDb::new().await;
    history(&db).await;
    tamper(
        &db,
        "UPDATE events SET payload = jsonb_set(payload, '{roles}', '[\"admin\"]') \
         WHERE stream = 'workspace:acme' AND version = 3",
    )
    .await;
    assert_eq!(first_break(&db, None).await, (ACME.into(), 3, Problem::Edited));
    let report = walk(&db, None).await;
    assert_eq!((report.events, report.streams), (4, 2), "system v1 and acme v1..=3 were checked");
}

#[tokio::test]
async fn a_deleted_row_breaks_at_the_next_version_of_its_stream() {
    let db = TestDb::new().await;
    history(&db).await;
    tamper(&db, "DELETE FROM events WHERE stream = 'workspace:acme' AND version = 3").await;
    assert_eq!(first_break(&db, None).await, (ACME.into(), 4, Problem::VersionGap { expected: 3 }));
}

#[tokio::test]
async fn a_deleted_row_with_later_versions_renumbered_breaks_the_chain() {
    let db = TestDb::new().await;
    history(&db).await;
    tamper(
        &db,
        "DELETE FROM events WHERE stream = 'workspace:acme' AND version = 3; \
         UPDATE events SET version = version - 1 WHERE stream = 'workspace:acme' AND version = 4; \
         UPDATE events SET version = version - 1 WHERE stream = 'workspace:acme' AND version = 5",
    )
    .await;
    assert_eq!(first_break(&db, None).await, (ACME.into(), 3, Problem::ChainBroken { previous_version: 2 }));
}

#[tokio::test]
async fn swapped_versions_are_detected() {
    let db = TestDb::new().await;
    history(&db).await;
    // Through a temporary version: UNIQUE (stream, version) holds at every statement.
    tamper(
        &db,
        "UPDATE events SET version = 1000 WHERE stream = 'workspace:acme' AND version = 2; \
         UPDATE events SET version = 2 WHERE stream = 'workspace:acme' AND version = 3; \
         UPDATE events SET version = 3 WHERE stream = 'workspace:acme' AND version = 1000",
    )
    .await;
    let (stream, version, problem) = first_break(&db, None).await;
    assert_eq!((stream.as_str(), version), (ACME, 2));
    assert!(matches!(problem, Problem::ChainBroken { .. } | Problem::OutOfOrder { .. }), "got {problem:?}");
}

#[tokio::test]
async fn a_rehashed_reordering_shows_as_versions_out_of_order() {
    // Versions 2 and 3 swapped and both rows re-chained and re-hashed with their new versions
    // (a forger who knows the hash function): only the write order gives it away.
    let db = TestDb::new().await;
    history(&db).await;
    tamper(
        &db,
        "UPDATE events SET version = 1000 WHERE stream = 'workspace:acme' AND version = 2; \
         UPDATE events SET version = 2 WHERE stream = 'workspace:acme' AND version = 3; \
         UPDATE events SET version = 3 WHERE stream = 'workspace:acme' AND version = 1000",
    )
    .await;
    let store = db.store();
    let events = store.load_stream(ACME).await.unwrap();
    let mut prev = events[0].hash.clone();
    let client = db.pool().get().await.unwrap();
    for e in &events[1..] {
        let h = hash::event_hash(&hash::HashInput {
            prev_hash: &prev,
            stream: &e.stream,
            version: e.version,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            payload: &e.payload,
            metadata: &e.metadata,
            recorded_at: e.recorded_at,
        });
        client
            .execute(
                "UPDATE events SET prev_hash = $1, hash = $2 WHERE position = $3",
                &[&prev, &h, &e.position],
            )
            .await
            .unwrap();
        prev = h;
    }
    let (stream, version, problem) = first_break(&db, None).await;
    assert_eq!((stream.as_str(), version), (ACME, 3));
    assert!(matches!(problem, Problem::OutOfOrder { previous_version: 2, .. }), "got {problem:?}");
}

#[tokio::test]
async fn workspace_restricts_the_walk_to_its_stream() {
    let db = TestDb::new().await;
    history(&db).await;
    tamper(&db, "UPDATE events SET metadata = '{}' WHERE stream = 'workspace:beta' AND version = 2").await;
    assert_eq!(walk(&db, Some("acme")).await, Report { events: 5, streams: 1, first_break: None });
    assert_eq!(first_break(&db, Some("beta")).await, (BETA.into(), 2, Problem::Edited));
    assert_eq!(first_break(&db, None).await, (BETA.into(), 2, Problem::Edited));
    assert_eq!(walk(&db, Some("nobody")).await, Report { events: 0, streams: 0, first_break: None });
}

// ---------------------------------------------------------------------------------------------
// The command

#[tokio::test]
async fn deleting_a_streams_last_event_is_caught_by_its_recorded_head() {
    // What a per-stream chain alone cannot show: acme v1..=4 is still a valid chain.
    let db = TestDb::new().await;
    history(&db).await;
    tamper(&db, "DELETE FROM events WHERE stream = 'workspace:acme' AND version = 5").await;
    assert_eq!(first_break(&db, None).await, (ACME.into(), 4, Problem::Truncated { head_version: 5 }));
    assert_eq!(
        first_break(&db, Some("acme")).await,
        (ACME.into(), 4, Problem::Truncated { head_version: 5 })
    );
    assert_eq!(walk(&db, Some("beta")).await.first_break, None);
    let (code, stdout, _) = run_iamd(db.url(), &["audit", "verify"]);
    assert_eq!(code, 2);
    assert!(
        stdout.contains("stream workspace:acme version 4") && stdout.contains("recorded head is version 5"),
        "{stdout}"
    );
}

#[tokio::test]
async fn deleting_a_whole_stream_is_caught_and_heads_cannot_be_moved_by_hand() {
    let db = TestDb::new().await;
    history(&db).await;
    // The database keeps the heads on every append.
    let client = db.pool().get().await.unwrap();
    let heads: Vec<(String, i64)> = client
        .query("SELECT stream, version FROM stream_heads ORDER BY stream", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(heads, [("system".to_owned(), 1), (ACME.to_owned(), 5), (BETA.to_owned(), 2)]);
    // Only inserts into events move them.
    for sql in [
        "UPDATE stream_heads SET version = 4 WHERE stream = 'workspace:acme'",
        "DELETE FROM stream_heads WHERE stream = 'workspace:beta'",
        "INSERT INTO stream_heads VALUES ('workspace:x', 1, 'h')",
        "TRUNCATE stream_heads",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(
            crate::support::db_message(&err).contains("stream_heads are written only by inserts into events"),
            "{sql}"
        );
    }
    tamper(&db, "DELETE FROM events WHERE stream = 'workspace:beta'").await;
    assert_eq!(first_break(&db, None).await, (BETA.into(), 2, Problem::StreamDeleted));
    assert_eq!(first_break(&db, Some("beta")).await, (BETA.into(), 2, Problem::StreamDeleted));
}

#[tokio::test]
async fn the_binary_exits_0_with_the_count_then_2_naming_the_tampered_event() {
    let db = TestDb::new().await;
    history(&db).await;

    let (code, stdout, stderr) = run_binary(&db, &[]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "audit verify: 8 events in 3 streams, every chain intact");

    let (code, stdout, _) = run_binary(&db, &["--workspace", "acme"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "audit verify: 5 events in 1 stream, every chain intact");

    tamper(
        &db,
        "UPDATE events SET payload = jsonb_set(payload, '{username}', '\"mallory\"') \
         WHERE stream = 'workspace:acme' AND version = 2",
    )
    .await;
    let (code, stdout, stderr) = run_binary(&db, &[]);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("stream workspace:acme version 2 (position "), "{stdout}");
    assert!(stdout.contains("edited"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    let (code, stdout, _) = run_binary(&db, &["--workspace", "beta"]);
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test]
async fn the_binary_exits_1_when_it_cannot_run() {
    let db = TestDb::new().await;
    let missing = format!("{}_missing", db.url());
    let (code, _, stderr) = run_iamd(&missing, &["audit", "verify"]);
    assert_eq!(code, 1, "{stderr}");
}
