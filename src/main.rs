//! The `iamd` command: `serve`, `migrate`, `bootstrap`, `call`, `audit log|verify|replay`,
//! `import netsoc`. Every failure
//! ends in one readable line on standard error and exit status 1; `audit verify` exits 2 when
//! it finds a tampered event. `projections rebuild|verify` rebuild or check the read tables
//! (verify exits 2 when they differ from the log); `snapshots verify` checks the actors'
//! snapshots against the log (exit 2 when one differs).

mod cli;

use clap::{Parser, Subcommand};
use iamd::config::Settings;
use iamd::startup;
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
    /// Bring users over from another identity service (docs/netsoc.md).
    Import {
        #[command(subcommand)]
        command: ImportCommand,
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
enum ImportCommand {
    /// Import the users of Netsoc's iamd from its PostgreSQL database: ids, account versions,
    /// renewal dates and bcrypt hashes kept (a login upgrades a hash to argon2id). A re-run
    /// skips users imported before; conflicts are listed and exit 1.
    Netsoc {
        /// Netsoc's database, e.g. postgres://iamd@db/iamd.
        #[arg(long)]
        from: String,
        /// The workspace to import into (default: compat.workspace).
        #[arg(long)]
        workspace: Option<String>,
    },
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
            Command::Serve => cli::serve::serve(settings).await,
            Command::Migrate => cli::serve::migrate(settings).await,
            Command::Bootstrap => cli::serve::bootstrap(settings).await,
            Command::Call(args) => cli::admin::call(settings, args).await,
            Command::Bench(args) => cli::admin::bench(settings, args).await,
            Command::Audit { command: AuditCommand::Log { workspace, user, since, until, json } } => {
                cli::audit::audit_log(settings, workspace, user, since, until, json).await
            }
            Command::Audit {
                command: AuditCommand::Authentications { since, until, user, outcome, json },
            } => cli::audit::audit_authentications(settings, since, until, user, outcome, json).await,
            Command::Audit { command: AuditCommand::Verify { workspace } } => {
                cli::audit::audit_verify(settings, workspace).await
            }
            Command::Audit { command: AuditCommand::Replay { at, workspace, json } } => {
                cli::audit::audit_replay(settings, &at, workspace, json).await
            }
            Command::Projections { command } => cli::projections::projections(settings, command).await,
            Command::Snapshots { command: SnapshotsCommand::Verify { workspace } } => {
                cli::audit::snapshots_verify(settings, workspace).await
            }
            Command::Import { command: ImportCommand::Netsoc { from, workspace } } => {
                cli::admin::import_netsoc(settings, &from, workspace).await
            }
            Command::Trustgraph { command: TrustGraphCommand::Sync } => {
                cli::admin::trustgraph_sync(settings).await
            }
            Command::SigningKeys { command: SigningKeysCommand::Rewrap { old_kek_file } } => {
                cli::admin::rewrap(settings, old_kek_file).await
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
