//! The live audit feed (invariant 5): the gapless commit-order reader under concurrent writers
//! on real PostgreSQL, the classic "bigserial > last seen" bug it avoids, and
//! `GET /api/v1/audit/events` of the real binary — NDJSON in commit order, hashes withheld,
//! resumption, long-polling, and its refusals.
//!
//! `pg_snapshot_xmin` is cluster-wide: a transaction of another test (in this binary or any
//! other on the same server) may hold a reader back for a while, never make it skip. So the
//! readers here poll until they have what they expect, within a generous deadline.

use crate::support::server::{ok, TestServer};
use crate::support::TestDb;
use iamd::crypto::ApiKeyHash;
use iamd::store::tail::{read_after, Cursor, TailedEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

const PASSWORD: &str = "a long enough passphrase";
/// How long a reader may be held back by other transactions on the server before we give up.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Library level: tail::read_after against concurrent writers

async fn connect(db: &TestDb) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.expect("connecting");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Inserts one event of `stream` at `version` tagged `tag`, in whatever transaction `client`
/// is in; its position. Hashes are placeholders: the tail does not read them.
async fn insert(client: &tokio_postgres::Transaction<'_>, stream: &str, version: i64, tag: &str) -> i64 {
    client
        .query_one(
            "INSERT INTO events (stream, version, event_type, schema_version, payload, metadata, \
             recorded_at, prev_hash, hash) \
             VALUES ($1, $2, 'test.written', 1, $3, '{}', now(), 'prev', 'hash') RETURNING position",
            &[&stream, &version, &json!({ "tag": tag })],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting {tag}: {e}"))
        .get(0)
}

/// The transactions on the server that hold tailing readers back, for a failure message.
async fn held_back_by(pool: &deadpool_postgres::Pool) -> String {
    let Ok(client) = pool.get().await else { return "no connection to say why".into() };
    let rows = client
        .query(
            "SELECT coalesce(datname, '?') || ' pid ' || pid || ' xid ' || backend_xid::text || ' for ' \
             || (now() - xact_start)::text || ': ' || left(query, 80) \
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start",
            &[],
        )
        .await;
    match rows {
        Ok(rows) => {
            format!("transactions running: {:?}", rows.iter().map(|r| r.get(0)).collect::<Vec<String>>())
        }
        Err(e) => format!("pg_stat_activity: {e}"),
    }
}

fn tag_of(e: &TailedEvent) -> String {
    e.event.payload["tag"].as_str().unwrap_or_default().to_owned()
}

/// What one writer did: the tags it committed (in its order) and the ones it rolled back.
#[derive(Default)]
struct Written {
    committed: Vec<String>,
    rolled_back: Vec<String>,
}

const WRITERS: usize = 8;
const TRANSACTIONS: usize = 40;

/// Writer `n`: TRANSACTIONS transactions of one or two events on its own stream, each held
/// open 0–30 ms before it commits (or, one in ten, rolls back).
async fn writer(db_url: String, n: usize, seed: u64) -> Written {
    let (mut client, connection) = tokio_postgres::connect(&db_url, NoTls).await.expect("connecting");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let stream = format!("writer:{n}");
    let mut version = 0;
    let mut written = Written::default();
    for t in 0..TRANSACTIONS {
        let events = rng.gen_range(1..=2);
        let delay = Duration::from_millis(rng.gen_range(0..=30));
        let roll_back = rng.gen_ratio(1, 10);
        let tx = client.transaction().await.expect("BEGIN");
        let mut tags = Vec::new();
        for i in 0..events {
            let tag = format!("w{n}-t{t}-e{i}");
            insert(&tx, &stream, version + 1 + i as i64, &tag).await;
            tags.push(tag);
        }
        tokio::time::sleep(delay).await;
        if roll_back {
            tx.rollback().await.expect("ROLLBACK");
            written.rolled_back.extend(tags);
        } else {
            tx.commit().await.expect("COMMIT");
            version += events as i64;
            written.committed.extend(tags);
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_sees_every_committed_event_once_in_commit_order_under_8_concurrent_writers() {
    let db = TestDb::new().await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");

    // The reader runs until it has seen `target` events (set once every writer is done).
    let target: Arc<Mutex<Option<usize>>> = Arc::default();
    let pool = db.pool();
    let reader_target = target.clone();
    let reader = tokio::spawn(async move {
        let mut cursor = Cursor::START;
        let mut seen: Vec<TailedEvent> = Vec::new();
        let (mut pages, mut late) = (0usize, 0usize);
        let mut highest_position = 0;
        let started = Instant::now();
        loop {
            let client = pool.get().await.expect("a pool connection");
            let page = read_after(&client, cursor, 7).await.expect("read_after");
            drop(client);
            pages += 1;
            assert!(page.len() <= 7, "a page of {} events with limit 7", page.len());
            for e in &page {
                assert!(e.cursor > cursor, "cursor went from {cursor:?} to {:?}", e.cursor);
                cursor = e.cursor;
                if e.event.position < highest_position {
                    late += 1; // committed after an event with a higher position: a gap, filled
                }
                highest_position = highest_position.max(e.event.position);
            }
            let empty = page.is_empty();
            seen.extend(page);
            if let Some(target) = *reader_target.lock().unwrap() {
                if seen.len() >= target {
                    return (seen, pages, late);
                }
            }
            if started.elapsed() > DEADLINE {
                panic!("the reader saw {} events in {DEADLINE:?}; {}", seen.len(), held_back_by(&pool).await);
            }
            if empty {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let writers: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(db.url().to_owned(), n, seed.wrapping_add(n as u64))))
        .collect();
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.expect("a writer"));
    }
    let committed: usize = written.iter().map(|w| w.committed.len()).sum();
    let rolled_back: usize = written.iter().map(|w| w.rolled_back.len()).sum();
    *target.lock().unwrap() = Some(committed);
    let (seen, pages, late) = reader.await.expect("the reader");
    eprintln!(
        "{committed} events committed, {rolled_back} rolled back; read in {pages} reads; \
         {late} delivered after a higher position"
    );

    // Every committed event exactly once, nothing rolled back.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for e in &seen {
        *counts.entry(tag_of(e)).or_default() += 1;
    }
    for w in &written {
        for tag in &w.committed {
            assert_eq!(counts.get(tag), Some(&1), "committed event {tag} seen {:?} times", counts.get(tag));
        }
        for tag in &w.rolled_back {
            assert_eq!(counts.get(tag), None, "rolled-back event {tag} was seen");
        }
    }
    assert_eq!(seen.len(), committed, "the reader saw events no writer committed");
    assert!(rolled_back > 0, "no transaction rolled back; the test would prove less");

    // Each writer's events in its commit order: its stream's versions 1, 2, 3, … and its tags
    // in the order it committed them.
    let mut by_stream: BTreeMap<&str, Vec<&TailedEvent>> = BTreeMap::new();
    for e in &seen {
        by_stream.entry(e.event.stream.as_str()).or_default().push(e);
    }
    for (n, w) in written.iter().enumerate() {
        let stream = format!("writer:{n}");
        let events = by_stream.get(stream.as_str()).cloned().unwrap_or_default();
        let versions: Vec<i64> = events.iter().map(|e| e.event.version).collect();
        assert_eq!(versions, (1..=w.committed.len() as i64).collect::<Vec<_>>(), "{stream}");
        let tags: Vec<String> = events.iter().map(|e| tag_of(e)).collect();
        assert_eq!(tags, w.committed, "{stream}");
    }

    // And the whole: exactly the committed rows, in (transaction id, position) order.
    let client = db.pool().get().await.unwrap();
    let in_commit_order: Vec<i64> = client
        .query("SELECT position FROM events ORDER BY transaction_id, position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let delivered: Vec<i64> = seen.iter().map(|e| e.event.position).collect();
    assert_eq!(delivered, in_commit_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_late_holds_the_reader_back_and_is_not_skipped() {
    let db = TestDb::new().await;
    let (mut a, mut b) = (connect(&db).await, connect(&db).await);
    let pool = db.pool();

    // A inserts first (the lower position) and stays open; B inserts after it and commits.
    let tx_a = a.transaction().await.unwrap();
    let position_a = insert(&tx_a, "a", 1, "A").await;
    let tx_b = b.transaction().await.unwrap();
    let position_b = insert(&tx_b, "b", 1, "B").await;
    tx_b.commit().await.unwrap();
    assert!(position_a < position_b);

    // The naive reader sees B and moves past A's position…
    let reader = pool.get().await.unwrap();
    let positions = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    let naive_sql = "SELECT position FROM events WHERE position > $1 ORDER BY position";
    let naive_first = positions(reader.query(naive_sql, &[&0i64]).await.unwrap());
    assert_eq!(naive_first, [position_b]);
    // …while the gapless reader holds B back: A's transaction is still running.
    let held = read_after(&reader, Cursor::START, 100).await.unwrap();
    assert!(held.is_empty(), "B was delivered while A was in flight: {held:?}");

    tx_a.commit().await.unwrap();

    // Now A, then B (each transaction in turn, in transaction-id order).
    let mut cursor = Cursor::START;
    let mut delivered = Vec::new();
    let started = Instant::now();
    while delivered.len() < 2 {
        if started.elapsed() > DEADLINE {
            panic!("only {delivered:?} after A committed; {}", held_back_by(&pool).await);
        }
        for e in read_after(&reader, cursor, 100).await.unwrap() {
            cursor = e.cursor;
            delivered.push((tag_of(&e), e.event.position));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(delivered, [("A".to_owned(), position_a), ("B".to_owned(), position_b)]);
    assert!(read_after(&reader, cursor, 100).await.unwrap().is_empty());

    // The naive reader, resuming after the last position it saw, has skipped A for good.
    let naive_next = positions(reader.query(naive_sql, &[&position_b]).await.unwrap());
    assert!(naive_next.is_empty(), "{naive_next:?}");
    assert!(!naive_first.contains(&position_a));
}

// ---------------------------------------------------------------------------------------------
// HTTP: GET /api/v1/audit/events of the real binary

/// One feed response: status, `X-Next-After`, content type, body text.
struct FeedReply {
    status: u16,
    next_after: Option<i64>,
    content_type: String,
    text: String,
}

impl FeedReply {
    fn lines(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.content_type, "application/x-ndjson");
        self.text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn next(&self) -> i64 {
        self.next_after.expect("an X-Next-After header")
    }
}

async fn feed(server: &TestServer, bearer: Option<&str>, query: &str) -> FeedReply {
    let mut req = reqwest::Client::new().get(format!("{}/api/v1/audit/events?{query}", server.base));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.expect("GET /api/v1/audit/events");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let next_after = header("x-next-after").map(|v| v.parse().expect("a numeric X-Next-After"));
    let content_type = header("content-type").unwrap_or_default();
    let status = resp.status().as_u16();
    FeedReply { status, next_after, content_type, text: resp.text().await.unwrap_or_default() }
}

/// Reads the feed from `after` until `count` events came; the lines and where to resume.
async fn read_feed(server: &TestServer, bearer: &str, mut after: i64, count: usize) -> (Vec<Value>, i64) {
    let mut lines = Vec::new();
    let started = Instant::now();
    while lines.len() < count {
        assert!(started.elapsed() < DEADLINE, "{} of {count} events after {after}", lines.len());
        let reply = feed(server, Some(bearer), &format!("after={after}&wait=5")).await;
        lines.extend(reply.lines());
        after = reply.next();
    }
    (lines, after)
}

async fn rest(server: &TestServer, bearer: &str, path: &str, body: Value) -> Value {
    let (status, reply) =
        server.request(reqwest::Method::POST, path, Some(bearer), Some(body.to_string()), &[]).await;
    assert!((200..300).contains(&status), "POST {path} -> {status} {reply}");
    reply
}

/// Every event's position in commit order, straight from the table.
async fn positions_in_commit_order(db: &TestDb) -> Vec<i64> {
    let client = db.pool().get().await.unwrap();
    let rows =
        client.query("SELECT position FROM events ORDER BY transaction_id, position", &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["event_type"].as_str().unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_serves_the_log_in_commit_order_without_hashes_resumes_and_long_polls() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);

    // An admin with an API key, made through the gateway.
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let admin = server.create_user("acme", "root", PASSWORD, &["admin"]).await;
    let admin_key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": admin, "name": "root-key"}}))
        .await)["api_key_plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = admin_key.as_str();

    // As the admin: a workspace, a user with a password, an API key of that user.
    rest(&server, a, "/api/v1/workspaces", json!({"id": "globex"})).await;
    let bob = rest(
        &server,
        a,
        "/api/v1/workspaces/globex/users",
        json!({"username": "bob", "password": PASSWORD, "roles": ["reader"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_key =
        rest(&server, a, &format!("/api/v1/workspaces/globex/users/{bob}/api-keys"), json!({"name": "k"}))
            .await["api_key_plaintext"]
            .as_str()
            .unwrap()
            .to_owned();

    // The whole log, in commit order, each event once.
    let expected = positions_in_commit_order(&db).await;
    let (lines, next) = read_feed(&server, a, 0, expected.len()).await;
    let delivered: Vec<i64> = lines.iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert_eq!(delivered, expected);
    assert_eq!(next, *expected.last().unwrap());
    let seen_types = types(&lines);
    for t in ["signing_key.created", "workspace.created", "user.created", "api_key.created"] {
        assert!(seen_types.contains(&t), "{t} missing from {seen_types:?}");
    }
    for line in &lines {
        for field in ["position", "stream", "version", "event_type", "schema_version", "recorded_at"] {
            assert!(!line[field].is_null(), "{field} missing from {line}");
        }
        assert!(line["metadata"].is_object() && line["payload"].is_object(), "{line}");
    }

    // bob's creation: its password hash withheld and named; his key: its digest withheld.
    let bob_created = lines
        .iter()
        .find(|l| l["event_type"] == "user.created" && l["payload"]["user_id"] == bob.as_str())
        .expect("bob's user.created");
    assert_eq!(bob_created["withheld"], json!(["password_hash"]));
    assert!(bob_created["payload"].get("password_hash").is_none());
    assert_eq!(bob_created["payload"]["username"], "bob");
    assert_eq!(bob_created["metadata"]["actor"], admin.as_str(), "{bob_created}");
    let key_created = lines
        .iter()
        .find(|l| l["event_type"] == "api_key.created" && l["payload"]["user_id"] == bob.as_str())
        .expect("bob's api_key.created");
    assert_eq!(key_created["withheld"], json!(["key_hash"]));
    assert!(key_created["payload"].get("key_hash").is_none());
    let workspace_created = lines.iter().find(|l| l["event_type"] == "workspace.created").unwrap();
    assert!(workspace_created.get("withheld").is_none(), "{workspace_created}");

    // The log does hold the secrets' hashes; the feed shows none of them.
    let client = db.pool().get().await.unwrap();
    let stored_hash: String = client
        .query_one(
            "SELECT payload->>'password_hash' FROM events WHERE event_type = 'user.created' \
             AND payload->>'user_id' = $1",
            &[&bob],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored_hash.starts_with("$argon2id$"));
    let whole = feed(&server, Some(a), "after=0&wait=0").await.text;
    let key_digest = ApiKeyHash::of(&bob_key).to_hex();
    for secret in [stored_hash.as_str(), "$argon2", key_digest.as_str(), PASSWORD, &bob_key, a] {
        assert!(!whole.contains(secret), "the feed shows a secret or its hash");
    }
    assert!(!whole.contains("\"password_hash\":") && !whole.contains("\"key_hash\":"));

    // Resuming after X-Next-After gives only what came later.
    let caught_up = feed(&server, Some(a), &format!("after={next}&wait=0")).await;
    assert!(caught_up.lines().is_empty(), "{}", caught_up.text);
    assert_eq!(caught_up.next(), next, "an empty reply resumes where it was asked to");
    rest(&server, a, "/api/v1/workspaces/globex/users", json!({"username": "carol", "password": PASSWORD}))
        .await;
    let (later, next) = read_feed(&server, a, next, 1).await;
    assert_eq!(types(&later), ["user.created"]);
    assert_eq!(later[0]["payload"]["username"], "carol");
    assert!(later[0]["position"].as_i64().unwrap() > *expected.last().unwrap());
    assert_eq!(next, later[0]["position"].as_i64().unwrap());

    // A limit splits the log into pages that resume one after the other.
    let first_two = feed(&server, Some(a), "after=0&limit=2&wait=0").await;
    let page: Vec<i64> = first_two.lines().iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert_eq!(page, expected[..2]);
    assert_eq!(first_two.next(), expected[1]);
    let rest_of = feed(&server, Some(a), &format!("after={}&limit=2&wait=0", first_two.next())).await;
    let page: Vec<i64> = rest_of.lines().iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert_eq!(page, expected[2..4]);

    // Long-poll: a request that is caught up waits, and returns with the next event.
    let poll = {
        let base = server.base.clone();
        let key = admin_key.clone();
        tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .get(format!("{base}/api/v1/audit/events?after={next}&wait=30"))
                .bearer_auth(key)
                .send()
                .await
                .expect("the long poll");
            (resp.status().as_u16(), resp.text().await.unwrap_or_default())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "the long poll returned before anything happened");
    rest(&server, a, "/api/v1/workspaces", json!({"id": "initech"})).await;
    let (status, text) = poll.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let polled: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(types(&polled), ["workspace.created"], "{text}");
    assert_eq!(polled[0]["payload"]["workspace_id"], "initech");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_for_auditors_only_and_refuses_bad_positions() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    server.create_user("acme", "root", PASSWORD, &["admin"]).await;
    let admin_jwt = server.jwt("root", PASSWORD).await;
    let mut refused = HashSet::new();
    for (role, name) in [("reader", "rita"), ("writer", "will")] {
        let id = server.create_user("acme", name, PASSWORD, &[role]).await;
        let key = ok(server
            .call(json!({"operation": "create-api-key", "workspace": "acme",
                "key": {"user_id": id, "name": "k"}}))
            .await)["api_key_plaintext"]
            .as_str()
            .unwrap()
            .to_owned();
        let jwt = server.jwt(name, PASSWORD).await;
        for bearer in [key, jwt] {
            let reply = feed(&server, Some(&bearer), "after=0&wait=0").await;
            assert_eq!(reply.status, 403, "a {role}: {}", reply.text);
            assert_eq!(reply.json(), json!({"error": "access denied"}));
            refused.insert(bearer);
        }
    }
    assert_eq!(refused.len(), 4);

    // No bearer, a bearer that proves nothing, the gateway's secret: 401.
    for bearer in [
        None,
        Some("tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some("not-a-token"),
        Some(crate::support::server::GATEWAY_SECRET),
    ] {
        let reply = feed(&server, bearer, "after=0&wait=0").await;
        assert_eq!(reply.status, 401, "{bearer:?}: {}", reply.text);
        assert_eq!(reply.json(), json!({"error": "auth failure"}));
    }

    // The admin's JWT reads it.
    let reply = feed(&server, Some(&admin_jwt), "after=0&wait=0").await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Bad positions and parameters: 400 invalid-argument, one readable line.
    let past_the_end = positions_in_commit_order(&db).await.into_iter().max().unwrap() + 1000;
    for query in [
        "after=abc".to_owned(),
        "after=-1".to_owned(),
        "after=1.5".to_owned(),
        format!("after={past_the_end}"),
        "after=99999999999999999999".to_owned(),
        "limit=0".to_owned(),
        "limit=many".to_owned(),
        "wait=forever".to_owned(),
    ] {
        let reply = feed(&server, Some(&admin_jwt), &query).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["error"]["type"], "invalid-argument", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains('\n'), "{query}: {message}");
    }
    let reply = feed(&server, Some(&admin_jwt), &format!("after={past_the_end}&wait=0")).await;
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains(&past_the_end.to_string()));
}
