//! The `iamd` command: `serve`, `migrate`, `bootstrap`, `call`, `audit log|verify|replay`. Every failure
//! ends in one readable line on standard error and exit status 1; `audit verify` exits 2 when
//! it finds a tampered event. `projections rebuild|verify` rebuild or check the read tables
//! (verify exits 2 when they differ from the log); `snapshots verify` checks the actors'
//! snapshots against the log (exit 2 when one differs).

use clap::{Parser, Subcommand};
use iamd::config::Settings;
use iamd::startup::{self, Application};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "iamd", version, about = "Event-sourced identity and access management service")]
struct Cli {
    /// YAML configuration file (default: ./iamd.yaml when present). IAMD_* variables override it.
    #[arg(long, global = true, env = "IAMD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, bootstrap when nothing exists yet, and serve HTTP.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Bootstrap (workspace `default`, user `admin`, an admin API key, a signing key) and
    /// print the admin API key once; a no-op when already bootstrapped.
    Bootstrap,
    /// Send one request over Kafka and print the reply JSON (exit 1 when it is an error),
    /// e.g. `iamd call --kafka 127.0.0.1:9092 resolve-api-key --api-key tg_…`.
    Call(Box<CallArgs>),
    /// Measure every performance budget on this machine (loopback only) and print a table:
    /// throughput, p50/p99/max latency and errors per scenario. Needs a PostgreSQL server
    /// where `database.url`'s user may create databases; `make bench` provides one and a broker.
    Bench(BenchArgs),
    /// Check the event log itself.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Rebuild the read tables from the event log, or prove they match it.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Check the workspace actors' state snapshots (a cache) against the event log.
    Snapshots {
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
    /// The key-encryption key (KEK) that seals private signing keys at rest.
    SigningKeys {
        #[command(subcommand)]
        command: SigningKeysCommand,
    },
    /// A TrustGraph deployment's side of things (docs/trustgraph.md).
    Trustgraph {
        #[command(subcommand)]
        command: TrustGraphCommand,
    },
}

#[derive(Subcommand)]
enum SigningKeysCommand {
    /// Seal every stored secret (private signing keys, the digest key) under the configured KEK
    /// (signing.kek / signing.kek_file), in one transaction: unsealed ones, and with
    /// --old-kek-file those sealed under the previous KEK.
    Rewrap {
        /// The KEK the secrets are sealed under now (32 bytes, base64), when rotating it.
        #[arg(long)]
        old_kek_file: Option<std::path::PathBuf>,
    },
    /// Print a new random KEK (32 bytes, base64) for signing.kek_file.
    NewKek,
}

#[derive(Subcommand)]
enum TrustGraphCommand {
    /// Register every enabled workspace with TrustGraph's config service (a put each, waiting
    /// for its answer), e.g. after the config service lost its state.
    Sync,
}

#[derive(Subcommand)]
enum SnapshotsCommand {
    /// Replay each snapshot's stream up to its version and compare, in one read-only snapshot:
    /// exit 0 when every usable snapshot equals its replay, exit 2 listing each one that
    /// differs, does not decode or does not match the log's hash (never the state itself).
    Verify {
        /// Only the snapshot of this workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Replay the log into shadow tables with the inline projections' own code and swap them
    /// in (users, api_keys, workspaces, unique_usernames; API keys keep their last_used).
    /// Without --online commands wait until it is done; reads go on either way.
    Rebuild {
        /// Build while iamd serves and writes; commands wait only for the last catch-up and
        /// the swap.
        #[arg(long)]
        online: bool,
    },
    /// Replay the log into temporary tables and compare them with the live read tables in one
    /// snapshot: exit 0 when equal, exit 2 listing the rows that differ (never a hash).
    Verify,
    /// Benchmarking aid: append N synthetic, hash-chained events (new workspaces, users whose
    /// password is public, API keys) straight into the log. Only the log: rebuild afterwards.
    #[command(hide = true)]
    Generate {
        /// How many events to write.
        #[arg(long)]
        events: u64,
        /// Write even though the log holds events iamd wrote (never on a database that matters).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The history as people read it: time, actor, transport, request id, operation, target
    /// and what changed (never a secret or a hash), oldest first; or JSON lines.
    Log {
        /// Only this workspace's events.
        #[arg(long)]
        workspace: Option<String>,
        /// Only events about this user (and its API keys) or caused by it.
        #[arg(long)]
        user: Option<String>,
        /// Only events recorded at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events recorded at or before this instant (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// JSON lines instead of text lines.
        #[arg(long)]
        json: bool,
    },
    /// Every login and resolve-api-key outcome and every failed HTTP bearer, with its reason
    /// bucket, oldest first (never a password, key or hash); or JSON lines.
    Authentications {
        /// Only records at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only records at or before this instant (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only records about this user id.
        #[arg(long)]
        user: Option<String>,
        /// Only `success` or only `failure`.
        #[arg(long, value_parser = ["success", "failure"])]
        outcome: Option<String>,
        /// JSON lines instead of text lines.
        #[arg(long)]
        json: bool,
    },
    /// Walk every stream's hash chain and version sequence; exit 0 with a count when intact,
    /// exit 2 naming the first event that was edited, deleted, inserted or reordered.
    Verify {
        /// Only the stream of this workspace (default: every stream, `system` included).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// The workspaces, users and API keys as they stood at an instant, replayed from the log
    /// with the actors' own apply; never a password or key hash.
    Replay {
        /// The instant, RFC 3339 (e.g. 2026-11-24T07:00:00Z).
        #[arg(long)]
        at: String,
        /// Only this workspace (default: every workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// One JSON document instead of text lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Kafka brokers for the Kafka scenarios (default: kafka.brokers; skipped when none).
    #[arg(long)]
    kafka: Option<String>,
    /// Measuring time of each throughput scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Only scenarios whose name contains one of these (comma-separated), e.g. `resolve,login`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Events in the generated log the rebuild scenario replays.
    #[arg(long, default_value_t = 1_000_000)]
    rebuild_events: u64,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Brokers to send through (default: kafka.brokers).
    #[arg(long)]
    kafka: Option<String>,
    /// The operation, e.g. resolve-api-key.
    operation: String,
    /// A whole IamRequest as JSON; the flags below override its fields.
    #[arg(long)]
    request: Option<String>,
    #[arg(long)]
    workspace: Option<String>,
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long)]
    new_password: Option<String>,
    #[arg(long)]
    api_key: Option<String>,
    #[arg(long)]
    key_id: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    /// How long to wait for the reply.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Send the request this many times and print latency figures instead of the reply.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// With --repeat: requests kept in flight at once.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
}

fn main() {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => fail(format!("configuration: {e:#}")),
    };
    init_tracing(&settings);
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Bootstrap => bootstrap(settings).await,
            Command::Call(args) => call(settings, args).await,
            Command::Bench(args) => bench(settings, args).await,
            Command::Audit { command: AuditCommand::Log { workspace, user, since, until, json } } => {
                audit_log(settings, workspace, user, since, until, json).await
            }
            Command::Audit {
                command: AuditCommand::Authentications { since, until, user, outcome, json },
            } => audit_authentications(settings, since, until, user, outcome, json).await,
            Command::Audit { command: AuditCommand::Verify { workspace } } => {
                audit_verify(settings, workspace).await
            }
            Command::Audit { command: AuditCommand::Replay { at, workspace, json } } => {
                audit_replay(settings, &at, workspace, json).await
            }
            Command::Projections { command } => projections(settings, command).await,
            Command::Snapshots { command: SnapshotsCommand::Verify { workspace } } => {
                snapshots_verify(settings, workspace).await
            }
            Command::Trustgraph { command: TrustGraphCommand::Sync } => trustgraph_sync(settings).await,
            Command::SigningKeys { command: SigningKeysCommand::Rewrap { old_kek_file } } => {
                rewrap(settings, old_kek_file).await
            }
            Command::SigningKeys { command: SigningKeysCommand::NewKek } => {
                println!("{}", iamd::crypto::Kek::generate().to_base64());
                Ok(())
            }
        }
    });
    if let Err(e) = result {
        fail(format!("{e:#}"));
    }
}

fn fail(message: String) -> ! {
    eprintln!("iamd: {message}");
    std::process::exit(1);
}

fn init_tracing(settings: &Settings) {
    let filter = startup::log_filter(&settings.log_level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    if let Some(done) = &app.bootstrap {
        announce(done);
    }
    let kafka = if settings.kafka.enabled() {
        Some(iamd::adapters::kafka::spawn(&settings.kafka, app.service.clone())?)
    } else {
        None
    };
    let registration = if settings.trustgraph.registers() {
        let counters = app.service.metrics().registrations().clone();
        Some(iamd::adapters::trustgraph::registration::spawn(&settings, counters)?)
    } else {
        None
    };
    tracing::info!(listen = %settings.http.listen, port = app.port, kafka = kafka.is_some(), "iamd serving HTTP");
    let http = app.handle();
    let service = app.service.clone();
    let mut server = actix_web::rt::spawn(app.run_until_stopped());
    let ended = tokio::select! {
        _ = startup::shutdown_signal() => None,
        ended = &mut server => Some(ended),
    };
    // HTTP and Kafka drain side by side; the actors they need live until both are done,
    // because the actix System ends only when this function returns.
    let kafka = actix_web::rt::task::spawn_blocking(move || kafka.map(|k| k.stop()));
    match ended {
        None => {
            tracing::info!("shutting down: finishing in-flight requests");
            http.stop(true).await;
            let _ = server.await;
        }
        Some(ended) => tracing::warn!(?ended, "the HTTP server stopped by itself"),
    }
    kafka.await?;
    if let Some(registration) = registration {
        actix_web::rt::task::spawn_blocking(move || registration.stop()).await?;
    }
    // Best effort, bounded: what is still queued for the authentication audit.
    if !service.authentications().flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!("authentication audit: records still queued at exit were not all written");
    }
    tracing::info!("iamd stopped");
    Ok(())
}

async fn call(settings: Settings, args: Box<CallArgs>) -> anyhow::Result<()> {
    use iamd::adapters::kafka::client::{ClientOptions, KafkaClient};
    use iamd::protocol::IamRequest;
    let brokers = args.kafka.unwrap_or_else(|| settings.kafka.brokers.clone());
    if brokers.trim().is_empty() {
        anyhow::bail!("call: no brokers (pass --kafka HOST:PORT or set kafka.brokers)");
    }
    let mut request = match &args.request {
        Some(json) => {
            IamRequest::from_json(json.as_bytes()).map_err(|e| anyhow::anyhow!("--request: {}", e.message))?
        }
        None => IamRequest::default(),
    };
    request.operation = args.operation;
    for (field, value) in [
        (&mut request.workspace, args.workspace),
        (&mut request.user_id, args.user_id),
        (&mut request.username, args.username),
        (&mut request.password, args.password),
        (&mut request.new_password, args.new_password),
        (&mut request.api_key, args.api_key),
        (&mut request.key_id, args.key_id),
        (&mut request.actor, args.actor),
        (&mut request.request_id, args.request_id),
    ] {
        if let Some(v) = value {
            *field = v;
        }
    }
    let options = ClientOptions {
        request_topic: settings.kafka.request_topic.clone(),
        response_topic: settings.kafka.response_topic.clone(),
        partitioner: settings.kafka.partitioner.clone(),
        properties: settings.kafka.extra_properties()?,
        ..ClientOptions::new(&brokers)
    };
    let client = KafkaClient::connect(options, args.timeout).await?;
    if args.repeat > 1 {
        let figures = iamd::adapters::kafka::client::measure(
            &client,
            &request,
            args.repeat,
            args.in_flight,
            args.timeout,
        )
        .await;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    let reply = client.call(&request, args.timeout).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    if reply.error.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

async fn bench(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let options = iamd::tools::bench::Options {
        admin_url: settings.database.url.expose().to_owned(),
        kafka: args.kafka.or_else(|| Some(settings.kafka.brokers.clone()).filter(|b| !b.trim().is_empty())),
        request_topic: settings.kafka.request_topic.clone(),
        response_topic: settings.kafka.response_topic.clone(),
        duration: args.duration,
        only: args.only,
        argon2: settings.argon2.clone(),
        rebuild_events: args.rebuild_events,
    };
    let report = iamd::tools::bench::run(&options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Prints a freshly created admin key once, on standard output, never into the log.
fn announce(done: &iamd::service::Bootstrapped) {
    if let Some(key) = &done.admin_api_key {
        println!("bootstrap: created workspace `default` and user `admin` ({})", done.admin_user_id);
        println!("bootstrap: admin API key (shown once, store it now): {}", key.expose());
    } else if done.applied {
        println!(
            "bootstrap: created workspace `default` and user `admin` with the configured bootstrap.token"
        );
    }
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), settings.database.pool_size).await?;
    let applied = iamd::db::migrate(&pool).await?;
    let latest = iamd::db::MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    println!("migrations applied: {applied} (schema now at {latest})");
    Ok(())
}

/// Progress goes to standard error every this many events.
const AUDIT_PROGRESS_EVERY: u64 = 100_000;

/// Prints one line: the count when every chain is intact (exit 0), else the first bad event
/// (exit 2). Never a payload: payloads hold password hashes.
async fn audit_verify(settings: Settings, workspace: Option<String>) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut next_progress = AUDIT_PROGRESS_EVERY;
    let report = iamd::audit::verify(&pool, workspace.as_deref(), |checked| {
        if checked >= next_progress {
            eprintln!("audit verify: {checked} events…");
            next_progress = (checked / AUDIT_PROGRESS_EVERY + 1) * AUDIT_PROGRESS_EVERY;
        }
    })
    .await?;
    match report.first_break {
        None => {
            let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            println!(
                "audit verify: {} in {}, every chain intact",
                plural(report.events, "event"),
                plural(report.streams, "stream")
            );
            Ok(())
        }
        Some(found) => {
            println!("audit verify: {found}");
            std::process::exit(2);
        }
    }
}

/// One line per snapshot; exit 2 when one is a problem (see `iamd::actors::snapshot`).
async fn snapshots_verify(settings: Settings, workspace: Option<String>) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    if !iamd::db::is_migrated(&pool).await? {
        anyhow::bail!("snapshots: the database is not migrated; run `iamd migrate` first");
    }
    let checked = iamd::actors::snapshot::verify(&pool, workspace.as_deref()).await?;
    let problems = checked.iter().filter(|c| c.finding.is_problem()).count();
    for c in &checked {
        println!("snapshots verify: {c}");
    }
    println!("snapshots verify: {} snapshots checked, {problems} problems", checked.len());
    if problems > 0 {
        std::process::exit(2);
    }
    Ok(())
}

/// Prints the filtered history, one line per event, oldest first.
async fn audit_log(
    settings: Settings,
    workspace: Option<String>,
    user: Option<String>,
    since: Option<String>,
    until: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let filter = iamd::audit::log::Filter {
        workspace,
        user,
        since: since.as_deref().map(|t| instant("audit log: --since", t)).transpose()?,
        until: until.as_deref().map(|t| instant("audit log: --until", t)).transpose()?,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let shown = iamd::audit::log::read(&pool, &filter, |entry| {
        let line = if json {
            iamd::audit::log::render_json(entry).to_string()
        } else {
            iamd::audit::log::render_text(entry)
        };
        writeln!(out, "{line}").map_err(|e| anyhow::anyhow!("audit log: writing: {e}"))
    })
    .await?;
    out.flush()?;
    if !json {
        eprintln!("audit log: {shown} event{}", if shown == 1 { "" } else { "s" });
    }
    Ok(())
}

/// Prints the authentication audit, oldest first, a page at a time.
async fn audit_authentications(
    settings: Settings,
    since: Option<String>,
    until: Option<String>,
    user: Option<String>,
    outcome: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use iamd::audit::authentications as audit;
    use std::io::Write as _;
    let filter = audit::Filter {
        user_id: user,
        outcome: outcome.as_deref().and_then(audit::Outcome::parse),
        since: since.as_deref().map(|t| instant("audit authentications: --since", t)).transpose()?,
        until: until.as_deref().map(|t| instant("audit authentications: --until", t)).transpose()?,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut after, mut shown) = (0, 0u64);
    loop {
        let page = audit::list(&pool, &filter, after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for entry in &page {
            let line = if json { serde_json::to_string(entry)? } else { audit::render_text(entry) };
            writeln!(out, "{line}").map_err(|e| anyhow::anyhow!("audit authentications: writing: {e}"))?;
            shown += 1;
        }
    }
    out.flush()?;
    if !json {
        eprintln!("audit authentications: {shown} record{}", if shown == 1 { "" } else { "s" });
    }
    Ok(())
}

/// Parses an RFC 3339 instant given as `flag`.
fn instant(flag: &str, t: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
        anyhow::anyhow!("{flag} {t:?} is not an RFC 3339 instant ({e}); e.g. 2026-11-24T07:00:00Z")
    })
}

/// Prints the state at `--at` as text lines or one JSON document.
async fn audit_replay(
    settings: Settings,
    at: &str,
    workspace: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| {
            anyhow::anyhow!(
                "audit replay: --at {at:?} is not an RFC 3339 instant ({e}); e.g. 2026-11-24T07:00:00Z"
            )
        })?
        .with_timezone(&chrono::Utc);
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let states = iamd::audit::replay(&pool, at, workspace.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&iamd::audit::render_json(&states, at))?);
    } else {
        print!("{}", iamd::audit::render_text(&states, at));
    }
    Ok(())
}

async fn bootstrap(settings: Settings) -> anyhow::Result<()> {
    let service = startup::build_service(&settings).await?;
    service.ensure_signing_key().await.map_err(|e| anyhow::anyhow!("signing key: {e}"))?;
    let token = if settings.bootstrap.token.is_set() {
        Some(startup::bootstrap_token(settings.bootstrap.token.expose())?)
    } else {
        None
    };
    let done = service.bootstrap_on_start(token).await.map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;
    if !done.applied {
        println!("bootstrap: already bootstrapped; nothing changed");
    }
    announce(&done);
    Ok(())
}

/// `iamd projections rebuild|verify|generate`: progress on standard error every 100,000
/// events, one summary line on standard output; verify exits 2 when the tables differ.
async fn projections(settings: Settings, command: ProjectionsCommand) -> anyhow::Result<()> {
    use iamd::store::rebuild::{self, Mode};
    const EVERY: u64 = 100_000;
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    if !iamd::db::is_migrated(&pool).await? {
        anyhow::bail!("projections: the database is not migrated; run `iamd migrate` first");
    }
    let mut client = pool.get().await?;
    let mut next = EVERY;
    let mut progress = |what: &str, n: u64| {
        if n >= next {
            eprintln!("projections {what}: {n} events…");
            next = (n / EVERY + 1) * EVERY;
        }
    };
    match command {
        ProjectionsCommand::Rebuild { online } => {
            let mode = if online { Mode::Online } else { Mode::Offline };
            let done = rebuild::rebuild(&mut client, mode, |n| progress("rebuild", n)).await?;
            // Every running server drops its API key cache: the swapped-in tables are the truth.
            use iamd::projections::key_cache::{payload, Change, CHANNEL};
            let flush = payload(&[Change::All]);
            if let Err(e) = client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &flush]).await {
                eprintln!("projections rebuild: could not tell running servers to drop their API key caches ({e}); they expire within cache.api_keys_ttl");
            }
            let held = if online {
                format!(
                    "; {} catch-up pass{}, then {} events in {:.2} s with commands held",
                    done.passes,
                    if done.passes == 1 { "" } else { "es" },
                    done.locked_events,
                    done.locked_seconds
                )
            } else {
                String::new()
            };
            println!(
                "projections rebuild: {} events in {:.1} s ({:.0} events/s), {} tables swapped in{held}",
                done.events,
                done.seconds,
                done.events_per_second(),
                iamd::projections::READ_TABLES.len()
            );
        }
        ProjectionsCommand::Verify => {
            let found = rebuild::verify(&mut client, |n| progress("verify", n)).await?;
            if found.equal() {
                println!(
                    "projections verify: {} events, {} tables equal ({:.1} s)",
                    found.events, found.tables, found.seconds
                );
                return Ok(());
            }
            for d in &found.differences {
                println!("projections verify: {d}");
            }
            println!(
                "projections verify: {} events, {} difference{} ({} shown); `iamd projections rebuild` \
                 rewrites the read tables from the log",
                found.events,
                found.total_differences,
                if found.total_differences == 1 { "" } else { "s" },
                found.differences.len()
            );
            std::process::exit(2);
        }
        ProjectionsCommand::Generate { events, force } => {
            use iamd::tools::generate;
            if !force && !generate::log_is_synthetic(&client).await? {
                anyhow::bail!(
                    "projections generate: this log holds events iamd wrote; synthetic events (with a \
                     public password) go only into a database of their own (--force to write anyway)"
                );
            }
            let started = std::time::Instant::now();
            let made = generate::generate(&mut client, events, |n| progress("generate", n)).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "projections generate: {} events in {:.1} s ({:.0} events/s): {} workspaces, {} users \
                 ({} deleted, {} reusing a freed username), {} API keys ({} revocations); run \
                 `iamd projections rebuild` to project them",
                made.events,
                seconds,
                made.events as f64 / seconds.max(1e-9),
                made.workspaces,
                made.users,
                made.user_deletions,
                made.reused_usernames,
                made.api_keys,
                made.revocations
            );
        }
    }
    Ok(())
}

async fn rewrap(settings: Settings, old_kek_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let Some(new) = settings.kek()? else {
        anyhow::bail!(
            "signing-keys rewrap: set the new KEK first (signing.kek_file / IAMD_SIGNING_KEK_FILE)"
        );
    };
    let old = match old_kek_file {
        Some(path) => {
            use anyhow::Context as _;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("signing-keys rewrap: reading {}", path.display()))?;
            Some(iamd::crypto::Kek::from_base64(&text).context("signing-keys rewrap: --old-kek-file")?)
        }
        None => None,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 2).await?;
    let done = iamd::service::keys::rewrap(&pool, &new, old.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("signing-keys rewrap: {e:#}; nothing was changed"))?;
    println!(
        "signing-keys rewrap: {} sealed, {} moved from the old KEK, {} already under KEK {}",
        done.sealed,
        done.rewrapped,
        done.unchanged,
        new.fingerprint()
    );
    Ok(())
}

async fn trustgraph_sync(settings: Settings) -> anyhow::Result<()> {
    if !settings.trustgraph.registers() {
        anyhow::bail!(
            "trustgraph sync: set trustgraph.config_request_topic and trustgraph.config_response_topic (and kafka.brokers)"
        );
    }
    let pool = iamd::db::connect(settings.database.url.expose(), 2).await?;
    let queries = iamd::service::Queries::new(pool);
    let (workspaces, _) = queries
        .workspaces(&iamd::service::page::Page::default())
        .await
        .map_err(|e| anyhow::anyhow!("trustgraph sync: reading the workspaces: {e}"))?;
    let enabled: Vec<String> = workspaces.into_iter().filter(|w| w.enabled).map(|w| w.id).collect();
    let n = iamd::adapters::trustgraph::sync(&settings, &enabled)
        .await
        .map_err(|e| anyhow::anyhow!("trustgraph sync: {e:#}"))?;
    println!("trustgraph sync: {n} enabled workspaces registered with the config service");
    Ok(())
}
