//! A TrustGraph 2.11.1 deployment's own code against the real `iamd serve`: the scenario in
//! `tests/it/trustgraph/scenario.py` runs TrustGraph's published `IamClient`, its gateway's
//! `IamAuth` and its IAM service's policy function (installed from PyPI by
//! `scripts/trustgraph.sh`), over HTTP (`POST /api/v1/iam` with the gateway secret) and over
//! Kafka through TrustGraph's own Kafka backend against a real broker (tansu), on TrustGraph's
//! topics (`kafka.preset: trustgraph`); and workspace registration with a config service that
//! answers like TrustGraph's, through a broker outage and iamd restarts.

use crate::support::broker::Broker;
use crate::support::server::{ok, TestServer, GATEWAY_SECRET};
use crate::support::{eventually, TestDb};
use iamd::crypto::{Claims, TokenSigner};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let key = db.active_signing_key().await;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims::new("iamd", "someone", "acme", vec!["admin".into()], 1, now - 3600, now - 60);
    TokenSigner::new(key, None, Vec::new()).sign(&claims).unwrap()
}

/// How long one scenario may take before it is stopped and its output shown.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

/// Runs the scenario with `args` and fails with its output unless every check held in time.
fn scenario(args: &[&str]) {
    use std::io::Read;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/trustgraph");
    let mut child = Command::new(python())
        .arg(dir.join("scenario.py"))
        .args(args)
        .arg("--verbose")
        .env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running the TrustGraph scenario");
    // Drained as it comes, so a full pipe never stalls the scenario.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCENARIO_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let last: Vec<&str> = stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    match status {
        Some(s) if s.success() => println!("{stdout}"),
        Some(_) => panic!(
            "the TrustGraph scenario failed\n--- stdout\n{stdout}\n--- stderr (last lines)\n{}",
            last.join("\n")
        ),
        None => panic!(
            "the TrustGraph scenario did not finish in {SCENARIO_LIMIT:?}\n--- stderr (last lines)\n{}",
            last.join("\n")
        ),
    }
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

/// TrustGraph's config service as far as iamd sees it: consumes `tg.request.config` and
/// answers each `ConfigRequest` on `tg.response.config` with a `ConfigResponse`, echoing the
/// `id` header, and remembers what it was asked (once per `id`: a broker restart may deliver
/// a request to it twice, which is not iamd sending twice).
struct ConfigStub {
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigStub {
    fn start(brokers: &str) -> ConfigStub {
        // Assigned, not subscribed: no group to leave when the test ends with the broker gone.
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "trustgraph-config-stub")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let mut partition = TopicPartitionList::new();
        partition.add_partition_offset("tg.request.config", 0, Offset::Beginning).unwrap();
        consumer.assign(&partition).unwrap();
        let producer: FutureProducer =
            ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "1").create().unwrap();
        let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut version = 0;
            loop {
                let Ok(message) = consumer.recv().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let id = iamd::adapters::kafka::client::header_value(&message, "id").unwrap_or_default();
                let request: Value = serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
                let key = match request["operation"].as_str() {
                    Some("put") => request["values"][0]["key"].clone(),
                    _ => request["keys"][0]["key"].clone(),
                };
                assert_eq!(request["workspace"], "__workspaces__", "{request}");
                let entry = (
                    request["operation"].as_str().unwrap_or_default().to_owned(),
                    key.as_str().unwrap_or_default().to_owned(),
                    String::from_utf8_lossy(&id).into_owned(),
                );
                {
                    let mut seen = record.lock().unwrap();
                    if !seen.contains(&entry) {
                        seen.push(entry);
                    }
                }
                version += 1;
                let reply =
                    json!({"version": version, "values": [], "directory": [], "config": {}, "error": null});
                let payload = reply.to_string();
                let headers = OwnedHeaders::new().insert(Header { key: "id", value: Some(&id) });
                let reply =
                    FutureRecord::<(), _>::to("tg.response.config").payload(&payload).headers(headers);
                let _ = producer.send(reply, Duration::from_secs(5)).await;
            }
        });
        ConfigStub { seen, task }
    }

    /// (operation, workspace) of every request so far, in order.
    fn requests(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().iter().map(|(op, ws, _)| (op.clone(), ws.clone())).collect()
    }

    /// Waits until the config service was asked `operation` for `workspace`.
    async fn wait_for(&self, operation: &str, workspace: &str) {
        let wanted = (operation.to_owned(), workspace.to_owned());
        let what = format!("a {operation} of {workspace}");
        eventually(&what, Duration::from_secs(60), async || self.requests().contains(&wanted)).await;
    }
}

fn registering(brokers: &str) -> Vec<(String, String)> {
    [
        ("IAMD_KAFKA_BROKERS", brokers),
        ("IAMD_KAFKA_PRESET", "trustgraph"),
        ("IAMD_TRUSTGRAPH_CONFIG_REQUEST_TOPIC", "tg.request.config"),
        ("IAMD_TRUSTGRAPH_CONFIG_RESPONSE_TOPIC", "tg.response.config"),
        ("IAMD_TRUSTGRAPH_TIMEOUT", "1s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Waits until the registration's checkpoint is past `workspace`'s creation: the config
/// service's acceptance is recorded (a stub that has seen the put may still be answering a
/// retry of it).
async fn checkpoint_past(db: &TestDb, workspace: &str) {
    let client = db.pool().get().await.unwrap();
    let what = format!("the checkpoint past {workspace}");
    eventually(&what, Duration::from_secs(60), async || {
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM subscriber_checkpoints c, events e \
                 WHERE c.name = 'trustgraph-registration' AND e.stream = 'workspace:' || $1 \
                   AND e.event_type = 'workspace.created' \
                   AND (c.transaction_id, c.position) >= (e.transaction_id, e.position))",
                &[&workspace],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await;
}

async fn create_workspace(server: &TestServer, id: &str) {
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": id}})).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn workspaces_are_registered_with_trustgraphs_config_service_through_outages_and_restarts() {
    let db = TestDb::new().await;
    let mut broker = Broker::restartable();
    for topic in ["tg.request.iam", "tg.response.iam", "tg.request.config", "tg.response.config"] {
        broker.create_topic(topic, 1);
    }
    let brokers = broker.brokers();
    let stub = ConfigStub::start(&brokers);
    let env = registering(&brokers);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Bootstrap at start creates `default`: it is registered like any other.
    let server = TestServer::binary(db.url(), &pairs);
    create_workspace(&server, "acme").await;
    stub.wait_for("put", "default").await;
    stub.wait_for("put", "acme").await;

    // A broker outage: the changes wait in the log, and go out once the broker is back.
    broker.stop();
    create_workspace(&server, "globex").await;
    ok(server.call(json!({"operation": "disable-workspace", "workspace_record": {"id": "acme"}})).await);
    eventually("a failed attempt logged during the outage", Duration::from_secs(30), async || {
        !server.logged("TrustGraph registration: retrying").is_empty()
    })
    .await;
    broker.start();
    stub.wait_for("put", "globex").await;
    stub.wait_for("delete", "acme").await;
    let order: Vec<_> = stub.requests().into_iter().filter(|(_, ws)| ws != "default").collect();
    let first = |want: (&str, &str)| order.iter().position(|(op, ws)| (op.as_str(), ws.as_str()) == want);
    assert!(first(("put", "globex")) < first(("delete", "acme")), "in log order: {order:?}");

    // A crash with a change not yet registered (the broker is down): the next process sends it.
    broker.stop();
    create_workspace(&server, "hooli").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = server.restart();
    broker.start();
    stub.wait_for("put", "hooli").await;

    // A restart sends nothing that was already accepted: only what is new.
    checkpoint_past(&db, "hooli").await;
    let before = stub.requests().len();
    let server = server.restart();
    create_workspace(&server, "initech").await;
    stub.wait_for("put", "initech").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // (A put of initech may come twice: a retry after an answer slower than the timeout.)
    let after: Vec<_> = stub.requests().split_off(before);
    let initech = ("put".to_string(), "initech".to_string());
    assert!(!after.is_empty() && after.iter().all(|r| *r == initech), "after a restart: {after:?}");

    // The registration's progress is in the metrics, and its checkpoint in the database.
    let users = ok(server.call(json!({"operation": "list-users", "workspace": "default"})).await);
    let admin = users["users"][0]["id"].as_str().unwrap().to_owned();
    let key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "default",
            "key": {"user_id": admin, "name": "metrics"}}))
        .await);
    let key = key["api_key_plaintext"].as_str().unwrap().to_owned();
    let (status, metrics) = server.request(reqwest::Method::GET, "/metrics", Some(&key), None, &[]).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    for line in ["iamd_trustgraph_registrations_total 1", "iamd_trustgraph_registration_lag_seconds 0"] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    let client = db.pool().get().await.unwrap();
    let checkpoint: i64 = client
        .query_one("SELECT count(*) FROM subscriber_checkpoints WHERE name = 'trustgraph-registration'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(checkpoint, 1);

    // `iamd trustgraph sync` re-registers every enabled workspace.
    let before = stub.requests().len();
    let mut sync = std::process::Command::new(env!("CARGO_BIN_EXE_iamd"));
    sync.args(["trustgraph", "sync"]).env_clear().env("IAMD_DATABASE_URL", db.url());
    for (k, v) in &env {
        sync.env(k, v);
    }
    // One attempt per workspace: give the config service time to answer.
    sync.env("IAMD_TRUSTGRAPH_TIMEOUT", "10s");
    let out = tokio::task::spawn_blocking(move || sync.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("trustgraph sync: 4 enabled workspaces registered"), "{said}");
    let mut synced: Vec<_> = stub.requests().split_off(before);
    synced.sort();
    let put = |ws: &str| ("put".to_string(), ws.to_string());
    assert_eq!(synced, [put("default"), put("globex"), put("hooli"), put("initech")]);
    drop(server);
}
