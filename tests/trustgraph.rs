//! A TrustGraph 2.11.1 deployment's own code against the real `iamd serve`: the scenario in
//! `tests/trustgraph/scenario.py` runs TrustGraph's published `IamClient`, its gateway's
//! `IamAuth` and its IAM service's policy function (installed from PyPI by
//! `scripts/trustgraph.sh`), over HTTP (`POST /api/v1/iam` with the gateway secret) and over
//! Kafka through TrustGraph's own Kafka backend against a real broker (tansu), on TrustGraph's
//! topics (`kafka.preset: trustgraph`).

mod common;

use common::broker::Broker;
use common::server::{TestServer, GATEWAY_SECRET};
use common::TestDb;
use iamd::crypto::{Claims, SigningKey, TokenSigner};
use std::path::PathBuf;
use std::process::Command;

/// The Python with TrustGraph's packages: `IAMD_TEST_TRUSTGRAPH` (set by `make test`), else
/// the cache `scripts/trustgraph.sh` installs into.
fn python() -> PathBuf {
    if let Some(p) = std::env::var("IAMD_TEST_TRUSTGRAPH").ok().filter(|p| !p.trim().is_empty()) {
        return PathBuf::from(p.trim());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = PathBuf::from(home).join(".cache/iamd-tools/trustgraph-2.11.1/bin/python");
    assert!(
        cached.exists(),
        "no TrustGraph client code: run `make test` (it installs it with scripts/trustgraph.sh) or set IAMD_TEST_TRUSTGRAPH"
    );
    cached
}

/// A token iamd signed (with its active key, read from the database) that expired a minute ago.
async fn expired_jwt(db: &TestDb) -> String {
    let client = db.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT kid, created, private_key FROM signing_keys WHERE valid_until IS NULL", &[])
        .await
        .unwrap();
    let key = SigningKey::from_parts(row.get(0), row.get(1), row.get(2)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = Claims::new("iamd", "someone", "acme", vec!["admin".into()], 1, now - 3600, now - 60);
    TokenSigner::new(key, Vec::new()).sign(&claims).unwrap()
}

/// Runs the scenario with `args` and fails with its output unless every check held.
fn scenario(args: &[&str]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/trustgraph");
    let out = Command::new(python())
        .arg(dir.join("scenario.py"))
        .args(args)
        .env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running the TrustGraph scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the TrustGraph scenario failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    println!("{stdout}");
}

/// [`scenario`] off the runtime's threads.
async fn run(args: &[&str]) {
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || scenario(&owned.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn trustgraphs_client_and_gateway_over_http() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let expired = expired_jwt(&db).await;
    let args =
        ["--mode", "http", "--url", &server.base, "--secret", GATEWAY_SECRET, "--expired-jwt", &expired];
    run(&args).await;
    // Every anonymous attempt is in the authentication audit, with what the gateway reported.
    let client = db.pool().get().await.unwrap();
    let rows = client
        .query(
            "SELECT client, request_id FROM authentications \
             WHERE operation = 'authenticate-anonymous' AND credential = 'anonymous' AND outcome = 'failure'",
            &[],
        )
        .await
        .unwrap();
    let seen: Vec<(Option<String>, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        seen.contains(&(Some("203.0.113.9".into()), Some("r-1".into()))),
        "the anonymous attempt is recorded with its client and request id: {seen:?}"
    );
    // The minted token is in the log, never the token itself.
    let minted: i64 = client
        .query_one("SELECT count(*) FROM events WHERE event_type = 'token.minted'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(minted, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn trustgraphs_client_and_gateway_over_kafka() {
    let db = TestDb::new().await;
    let broker = Broker::memory();
    // As TrustGraph creates them: one partition each.
    broker.create_topic("tg.request.iam", 1);
    broker.create_topic("tg.response.iam", 1);
    let brokers = broker.brokers();
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_KAFKA_BROKERS", &brokers),
            ("IAMD_KAFKA_PRESET", "trustgraph"),
        ],
    );
    let expired = expired_jwt(&db).await;
    run(&["--mode", "kafka", "--brokers", &brokers, "--expired-jwt", &expired]).await;
    drop(server);
}
