//! The scenarios `iamd bench` measures, each on a fresh database with the real `iamd serve`.

use super::*;

pub(super) async fn resolve_http(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let f = Fixture::new(options, "resolve", &[]).await?;
    let (_, key) = workspace_with_key(&f, "bench").await?;
    let body = fixed(json!({"operation": "resolve-api-key", "api_key": key}));
    // Warm-up: connections, caches, the server's allocator.
    let warm = Bounds { requests: 20_000, duration: Duration::from_secs(1) };
    load::post(f.addr(), "/api/v1/iam", GATEWAY_SECRET, 64, warm, body.clone()).await?;
    let s =
        load::post(f.addr(), "/api/v1/iam", GATEWAY_SECRET, 64, bounds(options, 10_000_000), body).await?;
    rows.push(Row::throughput(
        "resolve-api-key http (64 connections)",
        s,
        Some((60_000.0, Some(5.0))),
        String::new(),
    ));
    f.finish().await;
    Ok(())
}

pub(super) async fn resolve_kafka(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::adapters::kafka::client::{ClientOptions, KafkaClient};
    let Some(brokers) = options.kafka.clone().filter(|b| !b.is_empty()) else {
        rows.push(Row::failed(
            "resolve-api-key kafka",
            "skipped: no brokers (pass --kafka or set kafka.brokers)",
        ));
        return Ok(());
    };
    let env = [
        ("IAMD_KAFKA_BROKERS", brokers.clone()),
        ("IAMD_KAFKA_REQUEST_TOPIC", options.request_topic.clone()),
        ("IAMD_KAFKA_RESPONSE_TOPIC", options.response_topic.clone()),
        ("IAMD_KAFKA_GROUP", format!("iamd-bench-{}", std::process::id())),
    ];
    let f = Fixture::new(options, "kafka", &env).await?;
    let (_, key) = workspace_with_key(&f, "bench").await?;
    let client_options = ClientOptions {
        request_topic: options.request_topic.clone(),
        response_topic: options.response_topic.clone(),
        ..ClientOptions::new(&brokers)
    };
    let client = KafkaClient::connect(client_options, Duration::from_secs(30)).await?;
    let request = crate::protocol::IamRequest {
        operation: "resolve-api-key".into(),
        api_key: key,
        ..Default::default()
    };
    let timeout = Duration::from_secs(10);
    // The consumer group settles on its first requests.
    crate::adapters::kafka::client::measure(&client, &request, 200, 16, timeout).await;
    let secs = options.duration.as_secs_f64();
    for (in_flight, count, budget) in [
        (1_usize, ((secs * 40.0) as usize).clamp(50, 2_000), None),
        (256, ((secs * 12_000.0) as usize).clamp(5_000, 500_000), Some((10_000.0, Some(50.0)))),
    ] {
        let fig = crate::adapters::kafka::client::measure(&client, &request, count, in_flight, timeout).await;
        let meets = budget.map(|(min, p99): (f64, Option<f64>)| {
            fig.per_second >= min && p99.is_none_or(|m| fig.p99_ms <= m)
        });
        rows.push(Row {
            scenario: format!("resolve-api-key kafka ({in_flight} in flight)"),
            value: fig.per_second,
            unit: "req/s".into(),
            requests: fig.requests as u64,
            p50_ms: Some(fig.p50_ms),
            p99_ms: Some(fig.p99_ms),
            max_ms: Some(fig.max_ms),
            errors: fig.errors as u64,
            budget: budget
                .map(|(min, p99)| format!("≥ {min:.0}/s, p99 ≤ {} ms", p99.unwrap_or(0.0)))
                .unwrap_or_default(),
            meets,
            note: String::new(),
        });
    }
    f.finish().await;
    Ok(())
}

/// Hashes per second of the configured argon2id parameters with every core busy.
pub(super) fn argon2_bound(options: &Options, cores: usize, duration: Duration) -> anyhow::Result<f64> {
    let a = &options.argon2;
    let hasher = crate::crypto::PasswordHasher::new(a.memory_kib, a.iterations, a.parallelism)?;
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let hasher = &hasher;
                scope.spawn(move || {
                    // As the server's hashing threads do: memory allocated once per thread.
                    let mut memory = crate::crypto::password::Memory::default();
                    let mut n = 0_u64;
                    while Instant::now() < deadline && n < 100_000 {
                        let _ = hasher.hash_in(PASSWORD, &mut memory);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

pub(super) async fn login_http(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let bound = tokio::task::spawn_blocking({
        let options = options.clone();
        move || argon2_bound(&options, cores, Duration::from_secs(3))
    })
    .await??;
    let a = &options.argon2;
    rows.push(figure(
        &format!(
            "argon2id bound (m={} KiB t={} p={}, {cores} cores)",
            a.memory_kib, a.iterations, a.parallelism
        ),
        bound,
        "hashes/s",
        None,
        "the ceiling for logins".into(),
    ));
    let f = Fixture::new(options, "login", &[]).await?;
    workspace_with_key(&f, "bench").await?;
    let body = fixed(json!({"operation": "login", "username": "bench-user", "password": PASSWORD}));
    let connections = cores * 4;
    let s = load::post(f.addr(), "/api/v1/iam", GATEWAY_SECRET, connections, bounds(options, 100_000), body)
        .await?;
    let ratio = s.per_second() / bound.max(f64::EPSILON);
    let mut row = Row::throughput(
        &format!("login http ({connections} connections)"),
        s,
        None,
        format!("{:.0} % of the argon2 bound", ratio * 100.0),
    );
    row.budget = "≥ 90 % of the bound".into();
    row.meets = Some(ratio >= 0.9);
    rows.push(row);
    f.finish().await;
    Ok(())
}

pub(super) async fn create_api_key(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let f = Fixture::new(options, "writes", &[]).await?;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(workspace_with_key(&f, &format!("w{i:03}")).await?.0);
    }
    let users = Arc::new(users);
    for (label, spread, budget) in
        [("across 100 workspaces", 100_usize, 2_000.0), ("within 1 workspace", 1, 500.0)]
    {
        let users = users.clone();
        let body: load::Body = Arc::new(move |n| {
            let i = (n as usize) % spread;
            json!({"operation": "create-api-key", "workspace": format!("w{i:03}"),
                "key": {"user_id": users[i], "name": format!("k{spread}-{n}")}})
            .to_string()
            .into_bytes()
        });
        let s =
            load::post(f.addr(), "/api/v1/iam", GATEWAY_SECRET, 64, bounds(options, 200_000), body).await?;
        rows.push(Row::throughput(
            &format!("create-api-key http, {label} (64 conn.)"),
            s,
            Some((budget, None)),
            String::new(),
        ));
    }
    f.finish().await;
    Ok(())
}

pub(super) async fn jwt(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::crypto::signing::{Claims, SigningKey, TokenSigner};
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Local verification, as a service holding the JWKS does it: all cores.
    let now = chrono::Utc::now();
    let signer = TokenSigner::new(SigningKey::generate(now)?, None, Vec::new());
    let claims =
        Claims::new("iamd", "u", "w", vec!["reader".into()], 1, now.timestamp(), now.timestamp() + 3600);
    let token = signer.sign(&claims)?;
    let duration = options.duration.min(Duration::from_secs(3));
    let started = Instant::now();
    let (ok, bad): (u64, u64) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let (signer, token) = (&signer, &token);
                scope.spawn(move || {
                    let (mut ok, mut bad) = (0_u64, 0_u64);
                    let deadline = Instant::now() + duration;
                    while Instant::now() < deadline && ok + bad < 10_000_000 {
                        match signer.verify(token, "iamd", now) {
                            Some(_) => ok += 1,
                            None => bad += 1,
                        }
                    }
                    (ok, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or((0, 0))).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let mut row = figure(
        &format!("jwt local verify (EdDSA, {cores} cores)"),
        ok as f64 / started.elapsed().as_secs_f64(),
        "verif/s",
        None,
        "in process, no I/O".into(),
    );
    (row.requests, row.errors) = (ok + bad, bad);
    rows.push(row);
    // Validation by iamd: a JWT bearer checked against the read tables (whoami).
    let f = Fixture::new(options, "jwt", &[]).await?;
    workspace_with_key(&f, "bench").await?;
    let login = f.call(json!({"operation": "login", "username": "bench-user", "password": PASSWORD})).await?;
    let jwt = login["jwt"].as_str().unwrap_or_default().to_owned();
    let body = fixed(json!({"operation": "whoami"}));
    let s = load::post(f.addr(), "/api/v1/iam", &jwt, 64, bounds(options, 10_000_000), body).await?;
    rows.push(Row::throughput(
        "jwt validation http, whoami (64 conn.)",
        s,
        None,
        "signature + account version".into(),
    ));
    f.finish().await;
    Ok(())
}

/// Netsoc's `/v1`: ES256 verification in process, then through iamd a read with an ES256
/// bearer (`GET /v1/users/self`: signature, the account by integer id) and logins.
pub(super) async fn netsoc_v1(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::crypto::signing::{KeyAlgorithm, NetsocClaims, SigningKey, TokenSigner};
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let now = chrono::Utc::now();
    let signer = TokenSigner::new(
        SigningKey::generate(now)?,
        Some(SigningKey::generate_for(KeyAlgorithm::ES256, now)?),
        Vec::new(),
    );
    let claims = NetsocClaims {
        sub: "1".into(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        exp: now.timestamp() + 3600,
        iss: "iamd".into(),
        aud: vec!["auth".into()],
        is_admin: Some(false),
        version: 1,
        jti: None,
    };
    let token = signer.sign_netsoc(&claims)?;
    let duration = options.duration.min(Duration::from_secs(3));
    let started = Instant::now();
    let ok: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let (signer, token) = (&signer, &token);
                scope.spawn(move || {
                    let (mut ok, deadline) = (0_u64, Instant::now() + duration);
                    while Instant::now() < deadline && ok < 10_000_000 {
                        ok += u64::from(signer.verify_netsoc(token, "iamd", now, "auth").is_some());
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    rows.push(figure(
        &format!("jwt local verify (ES256, {cores} cores)"),
        ok as f64 / started.elapsed().as_secs_f64(),
        "verif/s",
        None,
        "the /v1 tokens, in process".into(),
    ));

    let env = [("IAMD_COMPAT_WORKSPACE", "bench".to_owned())];
    let f = Fixture::new(options, "v1", &env).await?;
    let (user_id, _) = workspace_with_key(&f, "bench").await?;
    let renewed = chrono::Utc::now().to_rfc3339();
    f.call(json!({"operation": "update-user", "workspace": "bench", "user_id": user_id,
        "user": {"verified": true, "renewed": renewed}}))
        .await?;
    let login = json!({ "password": PASSWORD });
    let reply = super::rpc_at(f.addr(), "/v1/users/bench-user/login", "", &login).await?;
    let token = reply["token"].as_str().unwrap_or_default().to_owned();
    let empty: load::Body = Arc::new(|_| Vec::new());
    let s =
        load::send("GET", f.addr(), "/v1/users/self", &token, 64, bounds(options, 10_000_000), empty).await?;
    rows.push(Row::throughput(
        "/v1 GET users/self, ES256 bearer (64 conn.)",
        s,
        None,
        "signature + the account by integer id".into(),
    ));
    // The dashboard sends its token beside a login: any JWT-shaped bearer is no matter.
    let connections = cores * 4;
    let s = load::post(
        f.addr(),
        "/v1/users/bench-user/login",
        &token,
        connections,
        bounds(options, 100_000),
        fixed(login),
    )
    .await?;
    rows.push(Row::throughput(
        &format!("/v1 login http ({connections} connections)"),
        s,
        None,
        "argon2-bound, as login http".into(),
    ));
    f.finish().await;
    Ok(())
}

/// A row with one figure and no latencies.
pub(super) fn figure(
    scenario: &str,
    value: f64,
    unit: &str,
    budget: Option<(String, bool)>,
    note: String,
) -> Row {
    Row {
        scenario: scenario.into(),
        value,
        unit: unit.into(),
        requests: 0,
        p50_ms: None,
        p99_ms: None,
        max_ms: None,
        errors: 0,
        budget: budget.as_ref().map(|(b, _)| b.clone()).unwrap_or_default(),
        meets: budget.map(|(_, ok)| ok),
        note,
    }
}

/// `iamd projections rebuild` (offline) of a generated log of `rebuild_events` events.
pub(super) async fn rebuild(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::store::rebuild::{self, Mode};
    let db = BenchDb::create(&options.admin_url, "rebuild").await?;
    let mut client = db.pool.get().await?;
    let started = Instant::now();
    let made = crate::tools::generate::generate(&mut client, options.rebuild_events, |_| {}).await?;
    let generated = started.elapsed().as_secs_f64();
    let done = rebuild::rebuild(&mut client, Mode::Offline, |_| {}).await?;
    let per_second = done.events_per_second();
    rows.push(figure(
        &format!("projection rebuild, {} events", made.events),
        per_second,
        "events/s",
        Some(("≥ 50000/s".into(), per_second >= 50_000.0)),
        format!(
            "{:.1} s; the log was generated in {generated:.1} s ({} users, {} keys)",
            done.seconds, made.users, made.api_keys
        ),
    ));
    drop(client);
    db.drop_now().await;
    Ok(())
}

/// Resident memory of an idle server whose read tables hold about 10,000 users (generated
/// users, less the few the generator deletes).
pub(super) async fn idle_rss(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::store::rebuild::{self, Mode};
    let db = BenchDb::create(&options.admin_url, "rss").await?;
    let mut client = db.pool.get().await?;
    let mut users = 0;
    while users < 10_600 {
        users += crate::tools::generate::generate(&mut client, 20_000, |_| {}).await?.users;
    }
    rebuild::rebuild(&mut client, Mode::Offline, |_| {}).await?;
    let in_table: i64 = client.query_one("SELECT count(*) FROM users", &[]).await?.get(0);
    drop(client);
    let (server, started) = Server::start(&db.url, &[], Duration::from_secs(30)).await?;
    // A few requests, then idle.
    rpc(server.addr, GATEWAY_SECRET, &json!({"operation": "list-workspaces"})).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = server.rss_mib().unwrap_or(0.0);
    rows.push(figure(
        &format!("idle RSS, {in_table} users"),
        rss,
        "MiB",
        Some(("≤ 100 MB".into(), rss * 1.048_576 <= 100.0)),
        format!("ready in {:.0} ms", started.as_secs_f64() * 1000.0),
    ));
    drop(server);
    db.drop_now().await;
    Ok(())
}

/// The first command to a workspace of 100,000 events after a server start: the actor loads
/// (replays) its stream before it decides. The same command once warm is the comparison.
/// Waits (at most 60 s) until the workspace's snapshot is stored.
pub(super) async fn wait_for_snapshot(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let client = pool.get().await?;
        if client.query_opt("SELECT 1 FROM snapshots LIMIT 1", &[]).await?.is_some() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("no snapshot was stored within 60 s of the first load");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn cold_start(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::store::rebuild::{self, Mode};
    use crate::tools::generate::{generate_shaped, Shape};
    const EVENTS: u64 = 100_000;
    let db = BenchDb::create(&options.admin_url, "cold").await?;
    let mut client = db.pool.get().await?;
    generate_shaped(&mut client, EVENTS, Shape::one_workspace(EVENTS), |_| {}).await?;
    rebuild::rebuild(&mut client, Mode::Offline, |_| {}).await?;
    let workspace: String = client.query_one("SELECT id FROM workspaces", &[]).await?.get(0);
    drop(client);
    // First with no snapshot (the generated log was never loaded by an actor: a full replay),
    // then, once the first load's background snapshot is stored, after a restart.
    let mut server = Server::start(&db.url, &[], Duration::from_secs(30)).await?.0;
    for with_snapshot in [false, true] {
        if with_snapshot {
            wait_for_snapshot(&db.pool).await?;
            drop(server);
            server = Server::start(&db.url, &[], Duration::from_secs(30)).await?.0;
        }
        let mut timed = Vec::new();
        for n in 0..2 {
            // Enabled as well as renamed: the generated history may end with the workspace disabled.
            let request = json!({"operation": "update-workspace",
                "workspace_record": {"id": workspace, "name": format!("cold start {with_snapshot} {n}"), "enabled": true}});
            let t = Instant::now();
            let reply = rpc(server.addr, GATEWAY_SECRET, &request).await?;
            timed.push(t.elapsed().as_secs_f64() * 1000.0);
            if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
                anyhow::bail!("update-workspace → {error}");
            }
        }
        let (name, how) = if with_snapshot {
            ("from its snapshot", "first command after a restart")
        } else {
            ("no snapshot", "first command, a full replay")
        };
        rows.push(figure(
            &format!("cold start, workspace of {EVENTS} events, {name}"),
            timed[0],
            "ms",
            Some(("≤ 500 ms".into(), timed[0] <= 500.0)),
            format!("{how}; warm: {:.1} ms", timed[1]),
        ));
    }
    drop(server);
    db.drop_now().await;
    Ok(())
}
