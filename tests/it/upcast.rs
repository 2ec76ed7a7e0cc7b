//! Event schema evolution across releases, on real PostgreSQL and the real binary: a log
//! written by the previous release (`api_key.created` at schema version 1, a bare hex digest)
//! stays verifiable, replays, loads into the workspace actor and projects again, side by side
//! with events this release writes at version 2.

use crate::support::server::{error_type, ok, run_iamd, TestServer};
use crate::support::TestDb;
use chrono::Utc;
use iamd::events::hash::{self, HashInput};
use serde_json::{json, Value};

/// Rewrites the stored `api_key.created` events of `stream` as the previous release wrote
/// them (schema version 1, `key_hash` as bare hex) and re-chains the stream, exactly as that
/// release would have hashed it (with the stream head the upgrade's migration would have
/// recorded from it). Returns how many events it rewrote.
async fn as_written_by_release_1(db: &TestDb, stream: &str) -> usize {
    let client = db.pool().get().await.unwrap();
    client.batch_execute("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete").await.unwrap();
    let events = db.store().load_stream(stream).await.unwrap();
    let (mut prev, mut rewritten) = (hash::GENESIS.to_owned(), 0);
    for e in events {
        let (mut payload, mut schema_version) = (e.payload.clone(), e.schema_version);
        if e.event_type == "api_key.created" {
            let tagged = payload["key_hash"].as_str().unwrap().to_owned();
            payload["key_hash"] = json!(tagged.strip_prefix("sha256:").expect("a v2 digest"));
            schema_version = 1;
            rewritten += 1;
        }
        let h = hash::event_hash(&HashInput {
            prev_hash: &prev,
            stream: &e.stream,
            version: e.version,
            event_type: &e.event_type,
            schema_version,
            payload: &payload,
            metadata: &e.metadata,
            recorded_at: e.recorded_at,
        });
        client
            .execute(
                "UPDATE events SET payload = $1, schema_version = $2, prev_hash = $3, hash = $4 \
                 WHERE position = $5",
                &[&payload, &schema_version, &prev, &h, &e.position],
            )
            .await
            .unwrap();
        prev = h;
    }
    client.batch_execute("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete").await.unwrap();
    // Migration 0004 recorded the heads from the log as it found it: the rewritten last hash.
    client.batch_execute("ALTER TABLE stream_heads DISABLE TRIGGER stream_heads_guard").await.unwrap();
    client.execute("UPDATE stream_heads SET hash = $1 WHERE stream = $2", &[&prev, &stream]).await.unwrap();
    client.batch_execute("ALTER TABLE stream_heads ENABLE TRIGGER stream_heads_guard").await.unwrap();
    rewritten
}

fn resolve(key: &str) -> Value {
    json!({"operation": "resolve-api-key", "api_key": key})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_from_the_previous_release_verifies_replays_loads_and_projects() {
    let db = TestDb::new().await;
    let env = [("IAMD_BOOTSTRAP_ON_START", "false")];
    let server = TestServer::spawn(db.url(), &env);
    ok(server
        .call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme", "name": "Acme"}}))
        .await);
    let alice = server.create_user("acme", "alice", "a long enough passphrase", &["writer"]).await;
    let mut keys = Vec::new();
    for name in ["laptop", "ci"] {
        let reply = ok(server
            .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": name}}))
            .await);
        keys.push((
            reply["api_key"]["id"].as_str().unwrap().to_owned(),
            reply["api_key_plaintext"].as_str().unwrap().to_owned(),
        ));
    }
    drop(server);

    // The log now reads as release 1 wrote it.
    assert_eq!(as_written_by_release_1(&db, "workspace:acme").await, 2);
    let stored: Vec<(String, i32)> = db
        .pool()
        .get()
        .await
        .unwrap()
        .query(
            "SELECT payload->>'key_hash', schema_version FROM events WHERE event_type = 'api_key.created'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(stored.iter().all(|(digest, v)| *v == 1 && !digest.contains(':')), "{stored:?}");

    // The chain is intact: upcasting never rewrites a stored row.
    let (code, stdout, stderr) = run_iamd(db.url(), &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Replay reads the old events through the upcaster.
    let before = Utc::now();
    let (code, stdout, stderr) = run_iamd(
        db.url(),
        &["audit", "replay", "--at", &before.to_rfc3339(), "--workspace", "acme", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let state: Value = serde_json::from_str(&stdout).unwrap();
    let standing: Vec<&str> = state["workspaces"][0]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(standing, ["valid", "valid"]);

    // This release loads the workspace actor from the v1 events: it knows the keys, so it can
    // revoke one; the other still resolves; a new key is written at v2 beside the old ones.
    let server = TestServer::spawn(db.url(), &env);
    ok(server.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": keys[0].0})).await);
    assert_eq!(error_type(&server.call(resolve(&keys[0].1)).await), "auth-failed");
    assert_eq!(ok(server.call(resolve(&keys[1].1)).await)["resolved_user_id"], json!(alice));
    let again =
        server.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": keys[0].0})).await;
    assert_eq!(error_type(&again), "not-found", "the actor's state must know the key was revoked: {again}");
    let third = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": "new"}}))
        .await);
    let third_key = third["api_key_plaintext"].as_str().unwrap().to_owned();
    drop(server);
    let versions: Vec<i32> = db
        .column("SELECT schema_version FROM events WHERE event_type = 'api_key.created' ORDER BY position")
        .await;
    assert_eq!(versions, [1, 1, 2]);

    // The read tables, rebuilt from the mixed log by the projections, resolve both the old
    // key (digest from a v1 event) and the new one.
    let (code, stdout, stderr) = run_iamd(db.url(), &["projections", "rebuild"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = run_iamd(db.url(), &["projections", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let server = TestServer::spawn(db.url(), &env);
    for key in [&keys[1].1, &third_key] {
        assert_eq!(ok(server.call(resolve(key)).await)["resolved_user_id"], json!(alice));
    }
    assert_eq!(error_type(&server.call(resolve(&keys[0].1)).await), "auth-failed");
}
