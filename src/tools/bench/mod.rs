//! `iamd bench`: every performance budget measured side by side on this machine, loopback only.
//! Each scenario gets a fresh database on the configured PostgreSQL server and the real
//! `iamd serve` as a child process; the load generator ([`load`]) runs in this process. Every
//! loop is bounded by a count and a time. Nothing here asserts a budget: it prints figures
//! (a table, or JSON with `--json`) and marks each against its budget.

pub mod load;
mod scenarios;
pub mod server;

use scenarios::*;

use load::{Bounds, Sample};
use serde::Serialize;
use serde_json::{json, Value};
use server::{BenchDb, Server, GATEWAY_SECRET};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PostgreSQL server the benchmark databases are created on (`database.url`).
    pub admin_url: String,
    /// Kafka brokers for the Kafka scenarios (skipped when empty); their request and reply
    /// topics must exist.
    pub kafka: Option<String>,
    pub request_topic: String,
    pub response_topic: String,
    /// Measuring time of each throughput scenario.
    pub duration: Duration,
    /// Only the scenarios whose name contains one of these (all when empty).
    pub only: Vec<String>,
    pub argon2: crate::config::Argon2Settings,
    /// Events in the generated log the rebuild scenario replays.
    pub rebuild_events: u64,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// The headline figure and its unit (`req/s`, `events/s`, `ms`, `MiB`…).
    pub value: f64,
    pub unit: String,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub errors: u64,
    /// The budget in words, e.g. `≥ 60000 req/s, p99 ≤ 5 ms`.
    pub budget: String,
    /// Whether the figure meets the budget (`None` when it has none).
    pub meets: Option<bool>,
    pub note: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cores: usize,
    pub started: String,
    pub rows: Vec<Row>,
}

impl Report {
    /// The table `iamd bench` prints.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "iamd bench — {} cores, loopback, {}", self.cores, self.started);
        let _ = writeln!(
            out,
            "{:<56} {:>14} {:<9} {:>9} {:>9} {:>9} {:>7}  {:<28} note",
            "scenario", "figure", "unit", "p50 ms", "p99 ms", "max ms", "errors", "budget"
        );
        for r in &self.rows {
            let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
            let mark = match r.meets {
                Some(true) => "ok   ",
                Some(false) => "MISS ",
                None => "     ",
            };
            let _ = writeln!(
                out,
                "{:<56} {:>14.1} {:<9} {:>9} {:>9} {:>9} {:>7}  {}{:<23} {}",
                r.scenario,
                r.value,
                r.unit,
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.max_ms),
                r.errors,
                mark,
                r.budget,
                r.note
            );
        }
        out
    }
}

fn wanted(options: &Options, name: &str) -> bool {
    options.only.is_empty() || options.only.iter().any(|o| name.contains(o.as_str()))
}

/// Runs every selected scenario; a scenario that fails becomes a row saying why.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut report = Report {
        cores,
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rows: Vec::new(),
    };
    type Scenario = for<'a> fn(
        &'a Options,
        &'a mut Vec<Row>,
    ) -> futures_util::future::LocalBoxFuture<'a, anyhow::Result<()>>;
    let scenarios: [(&str, Scenario); 9] = [
        ("resolve-api-key http", |o, rows| Box::pin(resolve_http(o, rows))),
        ("resolve-api-key kafka", |o, rows| Box::pin(resolve_kafka(o, rows))),
        ("login http", |o, rows| Box::pin(login_http(o, rows))),
        ("create-api-key", |o, rows| Box::pin(create_api_key(o, rows))),
        ("jwt", |o, rows| Box::pin(jwt(o, rows))),
        ("v1", |o, rows| Box::pin(netsoc_v1(o, rows))),
        ("rebuild", |o, rows| Box::pin(rebuild(o, rows))),
        ("cold start", |o, rows| Box::pin(cold_start(o, rows))),
        ("idle rss", |o, rows| Box::pin(idle_rss(o, rows))),
    ];
    for (name, scenario) in scenarios {
        if !wanted(options, name) {
            continue;
        }
        eprintln!("bench: {name}…");
        if let Err(e) = scenario(options, &mut report.rows).await {
            report.rows.push(Row::failed(name, &format!("{e:#}")));
        }
    }
    Ok(report)
}

impl Row {
    fn failed(scenario: &str, why: &str) -> Row {
        figure(scenario, 0.0, "-", None, format!("failed: {why}"))
    }

    /// A throughput row from a sample; `budget` is (minimum per second, maximum p99 ms).
    fn throughput(
        scenario: &str,
        mut s: Sample,
        budget: Option<(f64, Option<f64>)>,
        mut note: String,
    ) -> Row {
        if let Some(error) = &s.first_error {
            note = format!("{note} first error: {}", error.rsplit("\r\n\r\n").next().unwrap_or(error))
                .trim()
                .to_owned();
        }
        let (p50, p99, max) = (s.quantile_ms(0.50), s.quantile_ms(0.99), s.quantile_ms(1.0));
        let per_second = s.per_second();
        let meets = budget.map(|(min, p99_max)| per_second >= min && p99_max.is_none_or(|m| p99 <= m));
        let budget = budget
            .map(|(min, p99_max)| match p99_max {
                Some(m) => format!("≥ {min:.0}/s, p99 ≤ {m} ms"),
                None => format!("≥ {min:.0}/s"),
            })
            .unwrap_or_default();
        Row {
            scenario: scenario.into(),
            value: per_second,
            unit: "req/s".into(),
            requests: s.count(),
            p50_ms: Some(p50),
            p99_ms: Some(p99),
            max_ms: Some(max),
            errors: s.errors,
            budget,
            meets,
            note,
        }
    }
}

/// A database and a server on it, with the gateway secret as bearer.
struct Fixture {
    db: BenchDb,
    server: Server,
}

impl Fixture {
    async fn new(options: &Options, tag: &str, env: &[(&str, String)]) -> anyhow::Result<Fixture> {
        let db = BenchDb::create(&options.admin_url, tag).await?;
        let mut env = env.to_vec();
        env.push(("IAMD_ARGON2_MEMORY_KIB", options.argon2.memory_kib.to_string()));
        env.push(("IAMD_ARGON2_ITERATIONS", options.argon2.iterations.to_string()));
        env.push(("IAMD_ARGON2_PARALLELISM", options.argon2.parallelism.to_string()));
        let (server, _) = Server::start(&db.url, &env, Duration::from_secs(30)).await?;
        Ok(Fixture { db, server })
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// One protocol call through the gateway; fails on a protocol error.
    async fn call(&self, request: Value) -> anyhow::Result<Value> {
        let reply = rpc(self.addr(), GATEWAY_SECRET, &request).await?;
        if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
            anyhow::bail!("{} → {error}", request["operation"]);
        }
        Ok(reply)
    }

    async fn finish(self) {
        drop(self.server);
        self.db.drop_now().await;
    }
}

/// One request on a fresh connection (setup only, not measured).
pub async fn rpc(addr: SocketAddr, bearer: &str, request: &Value) -> anyhow::Result<Value> {
    rpc_at(addr, "/api/v1/iam", bearer, request).await
}

/// [`rpc`] to `path`.
pub async fn rpc_at(addr: SocketAddr, path: &str, bearer: &str, request: &Value) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = request.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    let (_, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("a reply without a body"))?;
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("a reply that is not JSON ({e}): {body}"))
}

const PASSWORD: &str = "bench passphrase that is long enough";

/// A workspace `ws` with one admin user; (user id, API key plaintext).
async fn workspace_with_key(f: &Fixture, ws: &str) -> anyhow::Result<(String, String)> {
    f.call(json!({"operation": "create-workspace", "workspace_record": {"id": ws, "name": ws}})).await?;
    let user = f
        .call(json!({"operation": "create-user", "workspace": ws,
            "user": {"username": format!("{ws}-user"), "password": PASSWORD, "roles": ["admin"]}}))
        .await?;
    let user_id = user["user"]["id"].as_str().unwrap_or_default().to_owned();
    let key = f
        .call(json!({"operation": "create-api-key", "workspace": ws, "key": {"user_id": user_id, "name": "bench"}}))
        .await?;
    Ok((user_id, key["api_key_plaintext"].as_str().unwrap_or_default().to_owned()))
}

fn fixed(body: Value) -> load::Body {
    let bytes = body.to_string().into_bytes();
    Arc::new(move |_| bytes.clone())
}

fn bounds(options: &Options, requests: u64) -> Bounds {
    Bounds { requests, duration: options.duration }
}
