//! Workspace snapshots against real PostgreSQL: a workspace past the interval gets one, a
//! fresh actor (a restarted server) starts from it and answers like a full replay, and a
//! snapshot that does not match the log, has another format or does not decode is ignored
//! (then rewritten); `iamd snapshots verify` tells a snapshot that differs from the replay.

use crate::support::commands::{create_user, execute};
use crate::support::server::run_iamd;
use crate::support::TestDb;
use iamd::actors::{Execute, Registry};
use iamd::audit::snapshots::Finding;
use iamd::domain::workspace::WorkspaceCommand;
use iamd::protocol::ErrorKind;
use iamd::store::snapshot::{self, EVERY, FORMAT};
use std::time::{Duration, Instant};

const WS: &str = "acme";
const STREAM: &str = "workspace:acme";
const ALICE: &str = "00000000-0000-0000-0000-00000000a11c";
const KEY: &str = "00000000-0000-0000-0000-0000000000k1";

fn rename_alice(name: &str) -> Execute {
    execute(WorkspaceCommand::UpdateUser {
        user_id: ALICE.into(),
        username: None,
        name: Some(name.into()),
        email: None,
        roles: None,
        enabled: None,
        must_change_password: None,
        password_given: false,
        profile: Default::default(),
    })
}

fn revoke_key() -> Execute {
    execute(WorkspaceCommand::RevokeApiKey { key_id: KEY.into() })
}

/// A fresh registry: a new actor that loads the workspace from the database, as after a restart.
fn fresh(db: &TestDb) -> Registry {
    Registry::new(db.store(), Duration::from_secs(60), 1)
}

/// The workspace with alice, her revoked key, a deleted user and enough users to pass the
/// snapshot interval. Returns the stream's last version.
async fn fill(db: &TestDb) -> i64 {
    let registry = fresh(db);
    registry.execute(WS, execute(WorkspaceCommand::CreateWorkspace { name: "Acme".into() })).await.unwrap();
    registry.execute(WS, create_user(ALICE, "alice")).await.unwrap();
    registry
        .execute(
            WS,
            execute(WorkspaceCommand::CreateApiKey {
                key_id: KEY.into(),
                user_id: ALICE.into(),
                name: "ci".into(),
                prefix: "tg_snapshot".into(),
                key_hash: format!("sha256:{}", "ab".repeat(32)),
                expires: None,
            }),
        )
        .await
        .unwrap();
    registry.execute(WS, revoke_key()).await.unwrap();
    let gone = uuid::Uuid::new_v4().to_string();
    registry.execute(WS, create_user(&gone, "gone")).await.unwrap();
    registry.execute(WS, execute(WorkspaceCommand::DeleteUser { user_id: gone })).await.unwrap();
    for i in 0..EVERY {
        registry
            .execute(WS, create_user(&uuid::Uuid::new_v4().to_string(), &format!("user{i}")))
            .await
            .unwrap();
    }
    head(db).await
}

async fn head(db: &TestDb) -> i64 {
    let client = db.pool().get().await.unwrap();
    client.query_one("SELECT max(version) FROM events WHERE stream = $1", &[&STREAM]).await.unwrap().get(0)
}

async fn exec(db: &TestDb, sql: &str) {
    let client = db.pool().get().await.unwrap();
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The stored snapshot's version, once there is one at `at_least` or later.
async fn wait_for_snapshot(db: &TestDb, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let client = db.pool().get().await.unwrap();
        let row =
            client.query_opt("SELECT version FROM snapshots WHERE stream = $1", &[&STREAM]).await.unwrap();
        if let Some(version) = row.map(|r| r.get::<_, i64>(0)).filter(|v| *v >= at_least) {
            return version;
        }
        assert!(Instant::now() < deadline, "no snapshot at version {at_least} or later was written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn findings(db: &TestDb) -> Vec<Finding> {
    iamd::audit::snapshots::verify(&db.pool(), None).await.unwrap().into_iter().map(|c| c.finding).collect()
}

/// Waits until the stored snapshot is usable and equal to the replay (rewritten in the
/// background by the actor that ignored the bad one).
async fn wait_until_repaired(db: &TestDb) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while findings(db).await != vec![Finding::Equal] {
        assert!(
            Instant::now() < deadline,
            "the ignored snapshot was not rewritten: {:?}",
            findings(db).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A load that must not have used the stored snapshot, and is exactly the full replay.
async fn assert_full_replay(db: &TestDb) {
    let version = head(db).await;
    let loaded = snapshot::load(&db.store(), WS).await.unwrap();
    assert_eq!(loaded.snapshot, None, "the snapshot is ignored");
    assert_eq!(loaded.replayed as i64, version, "the whole stream is replayed");
    assert_eq!(loaded.version, version);
    assert_eq!(loaded.state, snapshot::replay(&db.store(), WS, i64::MAX).await.unwrap());
}

/// What only a right state answers: alice's revoked key stays revoked, alice exists (a
/// rename works), and her username is taken.
async fn assert_answers_right(db: &TestDb, round: &str) {
    let registry = fresh(db);
    let err = registry.execute(WS, revoke_key()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "a revoked key stays revoked");
    registry.execute(WS, rename_alice(round)).await.expect("alice exists");
    let err =
        registry.execute(WS, create_user(&uuid::Uuid::new_v4().to_string(), "Alice")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate, "alice's username is taken");
}

/// The snapshot's state edited by SQL: alice gone, her key no longer revoked.
const FORGE_STATE: &str =
    "UPDATE snapshots SET state = jsonb_set(state #- '{users,00000000-0000-0000-0000-00000000a11c}', \
     '{keys,00000000-0000-0000-0000-0000000000k1,revoked}', 'false')";

#[actix_rt::test]
async fn a_fresh_actor_starts_from_the_snapshot_and_answers_like_a_replay() {
    let db = TestDb::new().await;
    let version = fill(&db).await;
    assert!(version > EVERY);
    let taken = wait_for_snapshot(&db, EVERY).await;
    assert!(taken <= version);

    let loaded = snapshot::load(&db.store(), WS).await.unwrap();
    assert_eq!(loaded.snapshot, Some(taken), "the load starts from the snapshot");
    assert_eq!(loaded.replayed as i64, version - taken, "only the events after it are replayed");
    assert_eq!((loaded.version, loaded.state.users.len()), (version, EVERY as usize + 1));
    assert_eq!(loaded.state, snapshot::replay(&db.store(), WS, i64::MAX).await.unwrap());
    assert!(loaded.state.keys[KEY].revoked);

    // A restarted server: its new actor starts from the snapshot and answers like the log.
    assert_answers_right(&db, "Alice 1").await;
    let client = db.pool().get().await.unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM events WHERE stream = $1 ORDER BY version", &[&STREAM])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=version + 1).collect::<Vec<i64>>(), "appended right after the head");

    assert_eq!(findings(&db).await, vec![Finding::Equal]);
    let (code, out, _) = run_iamd(db.url(), &["snapshots", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 snapshots checked, 0 problems"), "{out}");

    // With no snapshot, an actor that loads a long stream writes one.
    exec(&db, "DELETE FROM snapshots").await;
    fresh(&db).execute(WS, rename_alice("Alice 2")).await.unwrap();
    wait_for_snapshot(&db, version + 1).await;
    assert_eq!(findings(&db).await, vec![Finding::Equal]);
}

#[actix_rt::test]
async fn a_snapshot_that_does_not_match_the_log_or_has_another_format_is_ignored() {
    let db = TestDb::new().await;
    fill(&db).await;
    wait_for_snapshot(&db, EVERY).await;

    // Forged state under a hash that is not the log's.
    exec(&db, FORGE_STATE).await;
    exec(&db, "UPDATE snapshots SET hash = 'forged'").await;
    assert_eq!(findings(&db).await, vec![Finding::HashMismatch]);
    assert_full_replay(&db).await;
    assert_answers_right(&db, "Alice 1").await;
    wait_until_repaired(&db).await;

    // Forged state, the log's hash, another format.
    exec(&db, FORGE_STATE).await;
    exec(&db, &format!("UPDATE snapshots SET format = {}", FORMAT + 1)).await;
    assert_eq!(findings(&db).await, vec![Finding::OtherFormat(FORMAT + 1)]);
    assert_full_replay(&db).await;
    assert_answers_right(&db, "Alice 2").await;
    wait_until_repaired(&db).await;

    // Forged state that passes the hash and format checks: verify tells it, by ids only.
    exec(&db, FORGE_STATE).await;
    let found = findings(&db).await;
    let [Finding::Differs(what)] = found.as_slice() else { panic!("{found:?}") };
    assert_eq!(what, &format!("users {ALICE}; API keys {KEY}"));
    let (code, out, err) = run_iamd(db.url(), &["snapshots", "verify"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("DIFFERS from the replay") && out.contains(ALICE), "{out}");
    assert!(!out.contains("argon2") && !err.contains("argon2"), "no hash is printed: {out}{err}");
    // A snapshot is a cache: deleting it is the repair.
    exec(&db, "DELETE FROM snapshots").await;
    let (code, out, _) = run_iamd(db.url(), &["snapshots", "verify", "--workspace", WS]);
    assert_eq!((code, out.contains("0 snapshots checked, 0 problems")), (0, true), "{out}");
}

#[actix_rt::test]
async fn a_corrupt_snapshot_falls_back_to_a_full_replay() {
    let db = TestDb::new().await;
    fill(&db).await;
    wait_for_snapshot(&db, EVERY).await;
    for (round, garbage) in [(1, r#""garbage""#), (2, r#"{"id": "acme", "users": 5}"#)] {
        exec(&db, &format!("UPDATE snapshots SET state = '{garbage}'::jsonb")).await;
        let found = findings(&db).await;
        assert!(matches!(found.as_slice(), [Finding::Undecodable(_)]), "{found:?}");
        assert!(found[0].is_problem());
        assert_full_replay(&db).await;
        assert_answers_right(&db, &format!("Alice {round}")).await;
        wait_until_repaired(&db).await;
    }
    // A snapshot of another workspace's stream under this one's name is refused as well.
    exec(&db, r#"UPDATE snapshots SET state = jsonb_set(state, '{id}', '"globex"')"#).await;
    assert_full_replay(&db).await;
}
