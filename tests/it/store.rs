//! The PostgreSQL event store against a real database: optimistic concurrency, the hash chain,
//! append-only enforcement, request dedupe, inline projections, username uniqueness and the
//! handling of signing keys. Each test gets its own database (see `crate::support::TestDb`).

use crate::support::history::{after, first, meta, ok, ok1};
use crate::support::TestDb;
use chrono::{DateTime, Utc};
use iamd::crypto::{ApiKeyHash, SigningKey};
use iamd::events::hash::{self, HashInput, GENESIS};
use iamd::events::{Event, RecordedEvent, RevokeReason};
use iamd::store::{Append, AppendError, Dedupe, EventStore, RequestKey, StreamAppend};
use std::sync::Arc;
use tokio::sync::Barrier;

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
        email: format!("{}@example.com", username.to_lowercase()),
        roles: vec!["admin".into(), "reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: Some("$argon2id$fake".into()),
        created: Utc::now(),
        self_registered: false,
        number: None,
    }
}

fn api_key_created(key_id: &str, user_id: &str, plaintext: &str) -> Event {
    Event::ApiKeyCreated {
        key_id: key_id.into(),
        user_id: user_id.into(),
        name: "ci".into(),
        prefix: plaintext[..8].into(),
        key_hash: ApiKeyHash::of(plaintext).to_tagged(),
        expires: None,
        created: Utc::now(),
    }
}

async fn count(store: &EventStore, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
    let client = store.pool().get().await.unwrap();
    client.query_one(sql, params).await.unwrap().get(0)
}

/// Checks a stream is 1..=N without gap, every `prev_hash` is its predecessor's `hash`
/// (GENESIS first), and every stored hash recomputes from the stored columns.
fn assert_chain(stream: &str, events: &[RecordedEvent]) {
    let mut prev = GENESIS.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.stream, stream);
        assert_eq!(e.version, i as i64 + 1, "stream {stream} has a gap or disorder at index {i}");
        assert_eq!(
            e.prev_hash, prev,
            "{stream} v{}: prev_hash does not link to the previous hash",
            e.version
        );
        let recomputed = hash::event_hash(&HashInput {
            prev_hash: &e.prev_hash,
            stream: &e.stream,
            version: e.version,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            payload: &e.payload,
            metadata: &e.metadata,
            recorded_at: e.recorded_at,
        });
        assert_eq!(recomputed, e.hash, "{stream} v{}: stored hash does not match its columns", e.version);
        prev = e.hash.clone();
    }
}

// ---------------------------------------------------------------------------------------------
// Optimistic concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_at_the_same_version_one_wins_and_the_other_conflicts() {
    const ROUNDS: usize = 20;
    let db = TestDb::new().await;
    let store = db.store();
    let stream = "workspace:race";
    let mut head = ok1(&store, first(stream, vec![workspace_created("race")])).await;

    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for writer in 0..2 {
            let store = store.clone();
            let barrier = barrier.clone();
            let a = after(
                &head,
                vec![Event::WorkspaceRenamed { name: format!("round {round} writer {writer}") }],
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (writer, store.append(a).await)
            }));
        }
        let mut winners = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                (writer, Ok(heads)) => winners.push((writer, heads)),
                (_, Err(AppendError::Conflict(_))) => conflicts += 1,
                (writer, Err(e)) => {
                    panic!("round {round}: writer {writer} failed with {e:?}, not Conflict")
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one writer must win, got {}", winners.len());
        assert_eq!(conflicts, 1, "round {round}: the other writer must get Conflict");
        let (writer, mut heads) = winners.pop().unwrap();
        let new_head = heads.remove(0);
        assert_eq!(new_head.version, head.version + 1);

        // Only the winner's event and projection are visible.
        let client = store.pool().get().await.unwrap();
        let name: String =
            client.query_one("SELECT name FROM workspaces WHERE id = 'race'", &[]).await.unwrap().get(0);
        assert_eq!(name, format!("round {round} writer {writer}"));
        head = new_head;
    }

    let events = store.load_stream(stream).await.unwrap();
    assert_eq!(events.len(), ROUNDS + 1);
    assert_chain(stream, &events);
    let last = events.last().unwrap();
    assert_eq!((last.version, &last.hash), (head.version, &head.last_hash));
}

#[tokio::test]
async fn a_stale_expected_version_conflicts_and_keeps_nothing() {
    let db = TestDb::new().await;
    let store = db.store();
    let h1 = ok1(&store, first("workspace:s", vec![workspace_created("s")])).await;
    let _h2 = ok1(&store, after(&h1, vec![Event::WorkspaceRenamed { name: "second".into() }])).await;
    // Writing after h1 again, with a user in it: the user must not survive the conflict.
    let stale =
        after(&h1, vec![user_created("u-stale", "stale"), Event::WorkspaceRenamed { name: "x".into() }]);
    match store.append(stale).await {
        Err(AppendError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.load_stream("workspace:s").await.unwrap().len(), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM users", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM unique_usernames", &[]).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Hash chain and append-only log

#[tokio::test]
async fn the_hash_chain_links_every_stream_and_events_cannot_be_edited() {
    let db = TestDb::new().await;
    let store = db.store();
    let (a, b) = ("workspace:a", "workspace:b");

    let mut written: Vec<(String, Event)> = Vec::new();
    let mut push = |stream: &str, events: &[Event]| {
        written.extend(events.iter().map(|e| (stream.to_owned(), e.clone())));
        events.to_vec()
    };

    // Several appends, interleaved, multi-event and one spanning both streams.
    let ha = ok1(&store, first(a, push(a, &[workspace_created("a"), user_created("ua1", "ann")]))).await;
    let hb = ok1(&store, first(b, push(b, &[workspace_created("b")]))).await;
    let ha = ok1(&store, after(&ha, push(a, &[Event::UserDisabled { user_id: "ua1".into() }]))).await;
    let both = Append {
        streams: vec![
            StreamAppend {
                stream: a.into(),
                expected_version: ha.version,
                last_hash: ha.last_hash.clone(),
                events: push(a, &[Event::UserEnabled { user_id: "ua1".into() }]),
            },
            StreamAppend {
                stream: b.into(),
                expected_version: hb.version,
                last_hash: hb.last_hash.clone(),
                events: push(
                    b,
                    &[user_created("ub1", "bob"), api_key_created("kb1", "ub1", "tg_bobkey_0001")],
                ),
            },
        ],
        metadata: meta("multi"),
        signing_key: None,
        dedupe: None,
    };
    let heads = ok(&store, both).await;
    assert_eq!(heads.len(), 2);
    let hb = heads.into_iter().find(|h| h.stream == b).unwrap();
    let hb = ok1(&store, after(&hb, push(b, &[Event::WorkspaceRenamed { name: "Bee".into() }]))).await;

    for (stream, n, head_hash) in [(a, 4, None), (b, 4, Some(&hb.last_hash))] {
        let events = store.load_stream(stream).await.unwrap();
        assert_eq!(events.len(), n, "{stream}");
        assert_chain(stream, &events);
        if let Some(h) = head_hash {
            assert_eq!(&events.last().unwrap().hash, h, "append returns the stored head hash");
        }
        // Events read back decode to what was written, in order.
        let expected: Vec<&Event> = written.iter().filter(|(s, _)| s == stream).map(|(_, e)| e).collect();
        let decoded: Vec<Event> = events.iter().map(|e| e.decode().unwrap()).collect();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), expected, "{stream}");
    }
    // Both streams' chains are independent: both start at GENESIS.
    let first_b = &store.load_stream(b).await.unwrap()[0];
    assert_eq!(first_b.prev_hash, GENESIS);

    // The chain is sensitive to an edit of the stored columns.
    let e = &store.load_stream(a).await.unwrap()[1];
    let mut edited = e.payload.clone();
    edited["username"] = "mallory".into();
    let tampered = hash::event_hash(&HashInput {
        prev_hash: &e.prev_hash,
        stream: &e.stream,
        version: e.version,
        event_type: &e.event_type,
        schema_version: e.schema_version,
        payload: &edited,
        metadata: &e.metadata,
        recorded_at: e.recorded_at,
    });
    assert_ne!(tampered, e.hash);

    // The log refuses UPDATE, DELETE and TRUNCATE.
    let client = store.pool().get().await.unwrap();
    let refused = [
        "UPDATE events SET payload = '{\"username\": \"mallory\"}' WHERE stream = 'workspace:a' AND version = 2",
        "DELETE FROM events WHERE stream = 'workspace:a' AND version = 4",
        "TRUNCATE events",
    ];
    for sql in refused {
        let err = client.execute(sql, &[]).await.expect_err(sql);
        let msg = crate::support::db_message(&err);
        assert!(msg.contains("append-only"), "{sql}: unexpected error {msg}");
    }
    let after_attempts = store.load_stream(a).await.unwrap();
    assert_eq!(after_attempts.len(), 4);
    assert_eq!(after_attempts[1].hash, e.hash);
    assert_eq!(after_attempts[1].payload, e.payload);
    assert_chain(a, &after_attempts);
}

// ---------------------------------------------------------------------------------------------
// Dedupe

fn request(caller: &str, id: &str) -> RequestKey {
    RequestKey { caller: caller.into(), request_id: id.into(), digest: format!("digest-of-{id}") }
}

fn dedupe(caller: &str, id: &str, response: serde_json::Value) -> Option<Dedupe> {
    Some(Dedupe { key: request(caller, id), operation: "create-workspace".into(), response })
}

#[tokio::test]
async fn a_repeated_request_id_is_already_processed_and_rolls_back_its_events() {
    let db = TestDb::new().await;
    let store = db.store();
    let response = serde_json::json!({"status": "ok", "workspace": {"id": "d1"}});

    let mut a1 = first("workspace:d1", vec![workspace_created("d1")]);
    a1.dedupe = dedupe("gateway", "r1", response.clone());
    ok(&store, a1).await;

    // Same caller, same request id, a different and otherwise valid append.
    let mut a2 = first("workspace:d2", vec![workspace_created("d2"), user_created("ud2", "dora")]);
    a2.dedupe = dedupe("gateway", "r1", serde_json::json!({"status": "ok", "workspace": {"id": "d2"}}));
    match store.append(a2).await {
        Err(AppendError::AlreadyProcessed) => {}
        other => panic!("expected AlreadyProcessed, got {other:?}"),
    }

    assert!(store.load_stream("workspace:d2").await.unwrap().is_empty(), "d2 events must be rolled back");
    assert_eq!(count(&store, "SELECT count(*) FROM events WHERE stream = 'workspace:d2'", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM workspaces WHERE id = 'd2'", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM users", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM unique_usernames", &[]).await, 0);
    assert_eq!(store.load_stream("workspace:d1").await.unwrap().len(), 1);

    let stored = store.processed("gateway", "r1").await.unwrap().unwrap();
    assert_eq!(stored.response, response);
    assert_eq!(stored.digest.as_deref(), Some("digest-of-r1"));
    assert_eq!(store.processed("gateway", "r2").await.unwrap(), None);
    // Another caller's r1 is not the gateway's.
    assert_eq!(store.processed("user:u-1", "r1").await.unwrap(), None);

    // The rolled-back append left d2 free: another caller may use r1 for its own request.
    let mut a3 = first("workspace:d2", vec![workspace_created("d2")]);
    a3.dedupe = dedupe("user:u-1", "r1", serde_json::json!({}));
    let h = ok1(&store, a3).await;
    assert_eq!(h.version, 1);
    assert_eq!(store.processed("user:u-1", "r1").await.unwrap().unwrap().response, serde_json::json!({}));
    assert_eq!(store.processed("gateway", "r1").await.unwrap().unwrap().response, response);
}

// ---------------------------------------------------------------------------------------------
// Projections

#[tokio::test]
async fn projections_commit_with_the_events() {
    let db = TestDb::new().await;
    let store = db.store();
    let created: DateTime<Utc> = hash::truncate(Utc::now());
    let plaintext = "tg_acmekey_0123456789";

    let h = ok1(
        &store,
        first(
            "workspace:acme",
            vec![
                Event::WorkspaceCreated { workspace_id: "acme".into(), name: "Acme".into(), created },
                user_created("u1", "Alice"),
                api_key_created("k1", "u1", plaintext),
            ],
        ),
    )
    .await;
    assert_eq!(h.version, 3);

    let client = store.pool().get().await.unwrap();
    let ws = client.query_one("SELECT id, name, enabled, created FROM workspaces", &[]).await.unwrap();
    assert_eq!(ws.get::<_, String>("id"), "acme");
    assert_eq!(ws.get::<_, String>("name"), "Acme");
    assert!(ws.get::<_, bool>("enabled"));
    assert_eq!(ws.get::<_, DateTime<Utc>>("created"), created);

    let user = client
        .query_one(
            "SELECT id, workspace, username, email, roles, enabled, must_change_password, \
             password_hash, account_version FROM users",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(user.get::<_, String>("id"), "u1");
    assert_eq!(user.get::<_, String>("workspace"), "acme");
    assert_eq!(user.get::<_, String>("username"), "Alice");
    assert_eq!(user.get::<_, String>("email"), "alice@example.com");
    assert_eq!(user.get::<_, Vec<String>>("roles"), vec!["admin", "reader"]);
    assert!(user.get::<_, bool>("enabled"));
    assert!(!user.get::<_, bool>("must_change_password"));
    assert_eq!(user.get::<_, Option<String>>("password_hash").as_deref(), Some("$argon2id$fake"));
    assert_eq!(user.get::<_, i64>("account_version"), 1);

    let reserved: String = client
        .query_one("SELECT user_id FROM unique_usernames WHERE username_key = 'alice'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, "u1");

    // resolve-api-key is a lookup by SHA-256 of the plaintext.
    let hash = ApiKeyHash::of(plaintext).0.to_vec();
    let key = client
        .query_one("SELECT id, user_id, workspace, prefix FROM api_keys WHERE key_hash = $1", &[&hash])
        .await
        .unwrap();
    assert_eq!(key.get::<_, String>("id"), "k1");
    assert_eq!(key.get::<_, String>("user_id"), "u1");
    assert_eq!(key.get::<_, String>("workspace"), "acme");
    assert_eq!(key.get::<_, String>("prefix"), &plaintext[..8]);

    // A user change projects too; then revoking the key deletes its row.
    let h = ok1(&store, after(&h, vec![Event::UserDisabled { user_id: "u1".into() }])).await;
    let row =
        client.query_one("SELECT enabled, account_version FROM users WHERE id = 'u1'", &[]).await.unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i64>(1), 2);

    ok1(&store, after(&h, vec![Event::ApiKeyRevoked { key_id: "k1".into(), reason: RevokeReason::Revoked }]))
        .await;
    assert_eq!(count(&store, "SELECT count(*) FROM api_keys", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM users", &[]).await, 1, "revoking a key keeps the user");
    assert_eq!(store.load_stream("workspace:acme").await.unwrap().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// Username uniqueness

#[tokio::test]
async fn usernames_are_unique_across_workspaces_case_insensitively() {
    let db = TestDb::new().await;
    let store = db.store();
    ok(&store, first("workspace:a", vec![workspace_created("a"), user_created("ua", "Alice")])).await;

    let clash = first("workspace:b", vec![workspace_created("b"), user_created("ub", "alice")]);
    match store.append(clash).await {
        Err(AppendError::Duplicate(msg)) => assert!(msg.contains("username"), "message: {msg}"),
        other => panic!("expected Duplicate, got {other:?}"),
    }

    assert!(store.load_stream("workspace:b").await.unwrap().is_empty(), "workspace:b must be rolled back");
    assert_eq!(count(&store, "SELECT count(*) FROM workspaces WHERE id = 'b'", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM users", &[]).await, 1);
    let client = store.pool().get().await.unwrap();
    let rows = client.query("SELECT username_key, user_id FROM unique_usernames", &[]).await.unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, vec![("alice".to_owned(), "ua".to_owned())]);

    // A rename onto a taken name (different case) is refused the same way.
    let hb = ok1(&store, first("workspace:b", vec![workspace_created("b"), user_created("ub", "bob")])).await;
    let rename = after(
        &hb,
        vec![Event::UserChanged {
            user_id: "ub".into(),
            username: Some("ALICE".into()),
            name: None,
            email: None,
            roles: None,
            must_change_password: None,
        }],
    );
    match store.append(rename).await {
        Err(AppendError::Duplicate(_)) => {}
        other => panic!("expected Duplicate on rename, got {other:?}"),
    }
    let bob: String =
        client.query_one("SELECT username FROM users WHERE id = 'ub'", &[]).await.unwrap().get(0);
    assert_eq!(bob, "bob");
    assert_eq!(store.load_stream("workspace:b").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_deleted_user_leaves_the_read_tables_and_frees_its_username() {
    let db = TestDb::new().await;
    let store = db.store();
    let h = ok1(
        &store,
        first(
            "workspace:a",
            vec![
                workspace_created("a"),
                user_created("ua", "Alice"),
                user_created("ua2", "ann"),
                api_key_created("k1", "ua", "tg_alicekey_0001"),
                api_key_created("k2", "ua", "tg_alicekey_0002"),
                api_key_created("k3", "ua2", "tg_annkey_0003"),
            ],
        ),
    )
    .await;

    // delete-user's events: the key revocations, then the deletion, in one append.
    ok1(
        &store,
        after(
            &h,
            vec![
                Event::ApiKeyRevoked { key_id: "k1".into(), reason: RevokeReason::UserDeleted },
                Event::ApiKeyRevoked { key_id: "k2".into(), reason: RevokeReason::UserDeleted },
                Event::UserDeleted { user_id: "ua".into(), username: "Alice".into(), reason: None },
            ],
        ),
    )
    .await;
    assert_eq!(count(&store, "SELECT count(*) FROM users WHERE id = 'ua'", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM api_keys WHERE user_id = 'ua'", &[]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM unique_usernames WHERE user_id = 'ua'", &[]).await, 0);
    // The other user and its key are untouched; the log keeps every event.
    assert_eq!(count(&store, "SELECT count(*) FROM users", &[]).await, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM api_keys WHERE id = 'k3'", &[]).await, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM unique_usernames", &[]).await, 1);
    assert_eq!(store.load_stream("workspace:a").await.unwrap().len(), 9);

    // The name is free again, in any case, in another workspace.
    ok(&store, first("workspace:b", vec![workspace_created("b"), user_created("ub", "ALICE")])).await;
    let client = store.pool().get().await.unwrap();
    let reserved: String = client
        .query_one("SELECT user_id FROM unique_usernames WHERE username_key = 'alice'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, "ub");
    let row = client.query_one("SELECT workspace, username FROM users WHERE id = 'ub'", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("b".to_owned(), "ALICE".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Signing keys

/// Every string and every byte array (as a JSON number array) anywhere in `v`.
fn collect(v: &serde_json::Value, strings: &mut Vec<String>, arrays: &mut Vec<Vec<u8>>) {
    match v {
        serde_json::Value::String(s) => strings.push(s.clone()),
        serde_json::Value::Array(items) => {
            let bytes: Option<Vec<u8>> =
                items.iter().map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok())).collect();
            if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
                arrays.push(bytes);
            }
            items.iter().for_each(|i| collect(i, strings, arrays));
        }
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
            strings.push(k.clone());
            collect(v, strings, arrays)
        }),
        _ => {}
    }
}

#[tokio::test]
async fn a_signing_key_lands_in_signing_keys_and_never_in_the_log() {
    use base64::Engine as _;
    let db = TestDb::new().await;
    let store = db.store();
    let key = SigningKey::generate(hash::truncate(Utc::now())).unwrap();
    let event = Event::SigningKeyCreated {
        kid: key.kid.clone(),
        public_key: key.public_pem(),
        created: key.created,
        algorithm: key.algorithm,
    };
    let mut a = first(iamd::events::SYSTEM_STREAM, vec![event.clone()]);
    a.signing_key = Some(key.clone());
    ok(&store, a).await;

    let client = store.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT public_key, private_key, created FROM signing_keys WHERE kid = $1", &[&key.kid])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), key.public.to_vec());
    assert_eq!(row.get::<_, Vec<u8>>(1), key.private_pkcs8().to_vec());
    assert_eq!(row.get::<_, DateTime<Utc>>(2), key.created);
    let rebuilt = SigningKey::from_parts(key.kid.clone(), key.created, key.algorithm, row.get(1)).unwrap();
    assert_eq!(rebuilt.public, key.public);

    let events = store.load_stream(iamd::events::SYSTEM_STREAM).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].decode().unwrap(), event);

    // The private key in any common encoding: the PKCS#8 DER and the raw 32-byte seed inside it.
    let private = key.private_pkcs8().to_vec();
    let seed = {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        ed25519_dalek::SigningKey::from_pkcs8_der(&private).unwrap().to_bytes().to_vec()
    };
    assert!(private.windows(32).any(|w| w == seed.as_slice()));
    let mut needles = Vec::new();
    for bytes in [&private, &seed] {
        needles.push(hex::encode(bytes));
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            needles.push(engine.encode(bytes));
        }
    }
    // Every column of every event, as the database holds it.
    let rows = client.query("SELECT payload, metadata, to_jsonb(e) FROM events e", &[]).await.unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        for i in 0..3 {
            let value: serde_json::Value = row.get(i);
            let (mut strings, mut arrays) = (Vec::new(), Vec::new());
            collect(&value, &mut strings, &mut arrays);
            for s in &strings {
                let lower = s.to_lowercase();
                for n in &needles {
                    assert!(
                        !s.contains(n.as_str()) && !lower.contains(&n.to_lowercase()),
                        "private key material in the log"
                    );
                }
            }
            for arr in &arrays {
                assert!(!arr.windows(32).any(|w| w == seed.as_slice()), "private key bytes in the log");
            }
        }
    }

    // A signing key whose append fails is not kept either.
    let other = SigningKey::generate(Utc::now()).unwrap();
    let mut stale = first(
        iamd::events::SYSTEM_STREAM,
        vec![Event::SigningKeyCreated {
            kid: other.kid.clone(),
            public_key: other.public_pem(),
            created: other.created,
            algorithm: other.algorithm,
        }],
    );
    stale.signing_key = Some(other.clone());
    match store.append(stale).await {
        Err(AppendError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(count(&store, "SELECT count(*) FROM signing_keys WHERE kid = $1", &[&other.kid]).await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM signing_keys", &[]).await, 1);
}

/// Migration 0009 keys the records kept from before by their caller, read from the events
/// each committed (Kafka: the gateway; HTTP: the user who was the actor), and loses none.
#[tokio::test]
async fn migrating_keeps_every_processed_request_under_its_caller() {
    let db = TestDb::migrated_to(8).await;
    let client = db.pool().get().await.unwrap();
    let meta = |request_id: &str, source: &str, actor: &str| serde_json::json!({"request_id": request_id, "source": source, "actor": actor, "operation": "create-workspace"});
    for (version, request_id, source, actor) in [
        (1i64, "from-kafka", "kafka", "u-admin"),
        (2, "from-http", "http", "u-alice"),
        (3, "no-actor", "http", ""),
    ] {
        client
            .execute(
                "INSERT INTO events (stream, version, event_type, schema_version, payload, metadata, \
                 recorded_at, prev_hash, hash) VALUES ('workspace:m', $1, 'workspace.created', 1, '{}', $2, \
                 now(), 'p', 'h')",
                &[&version, &meta(request_id, source, actor)],
            )
            .await
            .unwrap();
    }
    for request_id in ["from-kafka", "from-http", "no-actor", "without-events"] {
        client
            .execute(
                "INSERT INTO processed_requests (request_id, operation, response) VALUES ($1, 'create-workspace', $2)",
                &[&request_id, &serde_json::json!({"request": request_id})],
            )
            .await
            .unwrap();
    }
    iamd::store::migrations::migrate(&db.pool()).await.unwrap();

    let store = db.store();
    for (caller, request_id) in [
        ("gateway", "from-kafka"),
        ("user:u-alice", "from-http"),
        ("gateway", "no-actor"),
        ("gateway", "without-events"),
    ] {
        let p = store.processed(caller, request_id).await.unwrap();
        let p = p.unwrap_or_else(|| panic!("{request_id} is kept under {caller}"));
        assert_eq!(p.response, serde_json::json!({"request": request_id}));
        assert_eq!((p.operation.as_str(), p.digest), ("create-workspace", None), "{request_id}");
    }
    assert_eq!(store.processed("gateway", "from-http").await.unwrap(), None);
    assert_eq!(count(&store, "SELECT count(*) FROM processed_requests", &[]).await, 4);
}

/// Migration 12 re-keys every reservation by the PRECIS key and reports (does not merge)
/// users whose names now compare equal: the first created keeps the key and logs in by name.
#[tokio::test]
async fn migrating_rekeys_usernames_and_reports_collisions() {
    let db = TestDb::migrated_to(11).await;
    let client = db.pool().get().await.unwrap();
    client
        .execute("INSERT INTO workspaces (id, name, enabled, created) VALUES ('w', 'w', true, now())", &[])
        .await
        .unwrap();
    for (i, (id, username)) in
        [("u-1", "Straße"), ("u-2", "STRASSE"), ("u-3", "ＢＯＢ"), ("u-4", "carol")].into_iter().enumerate()
    {
        client
            .execute(
                "INSERT INTO users (id, workspace, username, name, email, roles, enabled, must_change_password, \
                 account_version, created) VALUES ($1, 'w', $2, '', '', '{}', true, false, 1, \
                 now() + $3 * interval '1 second')",
                &[&id, &username, &(i as f64)],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO unique_usernames (username_lower, user_id) VALUES (lower($1), $2)",
                &[&username, &id],
            )
            .await
            .unwrap();
    }
    iamd::store::migrations::migrate(&db.pool()).await.unwrap();
    let rows = client
        .query("SELECT username_key, user_id FROM unique_usernames ORDER BY user_id", &[])
        .await
        .unwrap();
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [
        // The first created keeps the key; the second keeps its old reservation, "strasse",
        // which is now the first's key text, so it is told apart by its user id.
        ("strasse", "u-1"),
        ("strasse (colliding user u-2)", "u-2"),
        ("bob", "u-3"),
        ("carol", "u-4"),
    ];
    assert_eq!(keys, expected.map(|(k, u)| (k.to_owned(), u.to_owned())));
    assert_eq!(count(&db.store(), "SELECT count(*) FROM users", &[]).await, 4, "no user merged away");
}

/// Every database failure iamd tells (logs, CLI messages, errors) is told by one function,
/// which names the constraint and SQLSTATE and never quotes a row: a unique violation's DETAIL
/// carries the key's value (here a username), and tokio-postgres's own `Display` says only
/// "db error" while its source chain (what `anyhow`'s `{:#}` prints) quotes the row.
#[tokio::test]
async fn a_database_error_is_told_without_the_values_of_its_row() {
    let db = TestDb::new().await;
    let client = db.pool().get().await.unwrap();
    let insert = "INSERT INTO unique_usernames (username_key, user_id) VALUES ($1, $2)";
    client.execute(insert, &[&"secret-looking-name", &"u1"]).await.unwrap();
    let err = client.execute(insert, &[&"secret-looking-name", &"u2"]).await.unwrap_err();
    let chain = format!(
        "{:#}",
        anyhow::Error::new(iamd::store::AppendError::Database(
            client.execute(insert, &[&"secret-looking-name", &"u3"]).await.unwrap_err(),
        ))
    );
    assert!(!chain.contains("secret-looking-name"), "{chain}");
    let raw = format!(
        "{:#}",
        anyhow::Error::new(client.execute(insert, &[&"secret-looking-name", &"u4"]).await.unwrap_err(),)
    );
    assert!(raw.contains("secret-looking-name"), "tokio-postgres's chain quotes the row: {raw}");
    let told = iamd::db::error_line(&err);
    assert!(told.contains("unique_usernames_pkey") && told.contains("SQLSTATE 23505"), "{told}");
    assert!(!told.contains("secret-looking-name"), "{told}");
    assert!(!AppendError::Database(err).to_string().contains("secret-looking-name"));
}
