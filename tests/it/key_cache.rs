//! The resolve-api-key cache through two real `iamd serve` processes on one database: a
//! change committed through one is seen at once by that one and promptly by the other (its
//! LISTEN), and a lost listener turns the other's cache off instead of leaving it stale.

use crate::support::server::{error_type, ok, TestServer};
use crate::support::{eventually, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";
/// How long a change may take to reach the other process (it normally takes milliseconds).
const PROPAGATION: Duration = Duration::from_secs(5);

async fn resolve(server: &TestServer, key: &str) -> Value {
    server.call(json!({"operation": "resolve-api-key", "api_key": key})).await
}

async fn new_key(server: &TestServer, user: &str, name: &str) -> (String, String) {
    let r = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme",
            "key": {"user_id": user, "name": name}}))
        .await);
    (r["api_key_plaintext"].as_str().unwrap().to_owned(), r["api_key"]["id"].as_str().unwrap().to_owned())
}

/// `name`'s value in the server's `/metrics`, read with an admin's JWT.
async fn metric(server: &TestServer, admin_jwt: &str, name: &str) -> u64 {
    let (status, body) = server.request(reqwest::Method::GET, "/metrics", Some(admin_jwt), None, &[]).await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .parse()
        .unwrap()
}

/// Two servers on one database, a workspace with an admin (for `/metrics`) and a writer.
async fn two_servers(db: &TestDb) -> (TestServer, TestServer, String, String) {
    let a = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let b = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    ok(a.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    a.create_user("acme", "root", PASSWORD, &["admin"]).await;
    let writer = a.create_user("acme", "writer", PASSWORD, &["writer"]).await;
    let admin_jwt = b.jwt("root", PASSWORD).await;
    (a, b, writer, admin_jwt)
}

#[tokio::test]
async fn changes_through_one_server_reach_the_cache_of_the_other() {
    let db = TestDb::new().await;
    let (a, b, writer, admin_jwt) = two_servers(&db).await;
    let (key, key_id) = new_key(&a, &writer, "key-1").await;

    // b caches the key: its second resolve is a hit.
    assert_eq!(ok(resolve(&b, &key).await)["resolved_user_id"], writer.as_str());
    let hits = metric(&b, &admin_jwt, "iamd_api_key_cache_hits_total").await;
    for _ in 0..3 {
        assert_eq!(ok(resolve(&b, &key).await)["resolved_roles"], json!(["writer"]));
    }
    assert!(metric(&b, &admin_jwt, "iamd_api_key_cache_hits_total").await >= hits + 3);

    // A role change through a: b answers with the new roles (the key itself is unchanged).
    ok(a.call(json!({"operation": "update-user", "workspace": "acme", "user_id": writer,
        "user": {"roles": ["reader"]}}))
        .await);
    eventually("the new roles on b", PROPAGATION, async || {
        ok(resolve(&b, &key).await)["resolved_roles"] == json!(["reader"])
    })
    .await;

    // Revoked through a: refused by a at once (invalidated at commit), by b promptly.
    let (other, _) = new_key(&a, &writer, "key-2").await;
    ok(resolve(&a, &key).await);
    ok(resolve(&b, &other).await);
    ok(a.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": key_id})).await);
    assert_eq!(error_type(&resolve(&a, &key).await), "auth-failed");
    eventually("the revocation on b", PROPAGATION, async || {
        error_type(&resolve(&b, &key).await) == "auth-failed"
    })
    .await;
    assert_eq!(ok(resolve(&b, &other).await)["resolved_user_id"], writer.as_str(), "other keys stay");

    // The owner disabled through b this time: b refuses at once, a (which cached the other
    // key too) promptly.
    ok(resolve(&a, &other).await);
    ok(resolve(&a, &other).await);
    ok(b.call(json!({"operation": "disable-user", "workspace": "acme", "user_id": writer})).await);
    assert_eq!(error_type(&resolve(&b, &other).await), "auth-failed");
    eventually("the disabled owner on a", PROPAGATION, async || {
        error_type(&resolve(&a, &other).await) == "auth-failed"
    })
    .await;
}

#[tokio::test]
async fn a_lost_listener_turns_the_cache_off_until_it_is_back() {
    let db = TestDb::new().await;
    let (a, b, writer, admin_jwt) = two_servers(&db).await;
    let (key, key_id) = new_key(&a, &writer, "key-3").await;
    for _ in 0..3 {
        ok(resolve(&b, &key).await);
    }

    // Cut both listeners off: whatever commits now is never notified to them.
    let client = db.pool().get().await.unwrap();
    let cut = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'iamd key cache' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cut.len(), 2, "each server listens on its own connection");
    ok(a.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": key_id})).await);
    // b held the key in its cache and missed the notification; it must not go on answering
    // from that cache (the TTL is 60 s, far beyond this wait).
    eventually("the revocation on b without its notification", PROPAGATION, async || {
        error_type(&resolve(&b, &key).await) == "auth-failed"
    })
    .await;

    // The listener comes back and the cache is used again.
    let (fresh, _) = new_key(&a, &writer, "key-4").await;
    eventually("the cache back in use on b", PROPAGATION, async || {
        let before = metric(&b, &admin_jwt, "iamd_api_key_cache_hits_total").await;
        ok(resolve(&b, &fresh).await);
        ok(resolve(&b, &fresh).await);
        metric(&b, &admin_jwt, "iamd_api_key_cache_hits_total").await > before
    })
    .await;
}

#[tokio::test]
async fn with_the_cache_off_every_resolve_reads_the_tables() {
    let db = TestDb::new().await;
    let server =
        TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_CACHE_API_KEYS", "0")]);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    server.create_user("acme", "root", PASSWORD, &["admin"]).await;
    let writer = server.create_user("acme", "writer", PASSWORD, &["writer"]).await;
    let admin_jwt = server.jwt("root", PASSWORD).await;
    let (key, key_id) = new_key(&server, &writer, "key-5").await;
    for _ in 0..3 {
        ok(resolve(&server, &key).await);
    }
    assert_eq!(metric(&server, &admin_jwt, "iamd_api_key_cache_hits_total").await, 0);
    assert!(metric(&server, &admin_jwt, "iamd_api_key_cache_misses_total").await >= 3);
    // Changed behind iamd's back: seen at once, since nothing is cached.
    let client = db.pool().get().await.unwrap();
    client.execute("DELETE FROM api_keys WHERE id = $1", &[&key_id]).await.unwrap();
    assert_eq!(error_type(&resolve(&server, &key).await), "auth-failed");
}

#[tokio::test]
async fn a_projection_rebuild_empties_every_running_cache() {
    let db = TestDb::new().await;
    let (a, b, writer, admin_jwt) = two_servers(&db).await;
    let (key, _) = new_key(&a, &writer, "key-6").await;
    for _ in 0..3 {
        ok(resolve(&b, &key).await);
    }
    let misses = metric(&b, &admin_jwt, "iamd_api_key_cache_misses_total").await;
    ok(resolve(&b, &key).await);
    assert_eq!(metric(&b, &admin_jwt, "iamd_api_key_cache_misses_total").await, misses, "cached");

    let (code, stdout, stderr) = crate::support::server::run_iamd(db.url(), &["projections", "rebuild"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The swapped-in tables are read again (a miss), not the cache kept for its TTL.
    eventually("a read of the rebuilt tables on b", PROPAGATION, async || {
        ok(resolve(&b, &key).await);
        metric(&b, &admin_jwt, "iamd_api_key_cache_misses_total").await > misses
    })
    .await;
}
