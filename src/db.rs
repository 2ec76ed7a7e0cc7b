//! The connection pool, and the one way a database error is told ([`error_line`]). The schema
//! migrations are the store's ([`crate::store::migrations`]).

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use tokio_postgres::NoTls;

/// A read-only REPEATABLE READ transaction: one consistent snapshot of the database for a
/// reader that needs several statements to agree (the audit walks, snapshot checks).
pub async fn read_only_snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// `database.url` parsed, or one readable line saying it is not a PostgreSQL URL.
pub fn parse_url(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    tokio_postgres::Config::from_str(url)
        .map_err(|e| anyhow::anyhow!("database.url is not a valid PostgreSQL URL: {e}"))
}

/// Builds the pool and checks the database answers, failing with one readable line.
pub async fn connect(url: &str, pool_size: usize) -> anyhow::Result<Pool> {
    let mut config = parse_url(url)?;
    if config.get_application_name().is_none() {
        // Names iamd's sessions in pg_stat_activity.
        config.application_name("iamd");
    }
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .build()
        .context("building the database pool")?;
    if let Err(e) = pool.get().await {
        let hosts = describe(&config);
        anyhow::bail!(
            "cannot reach PostgreSQL at {hosts}: {}. Start PostgreSQL (or run `make run`, \
             which finds or starts one) and check database.url / IAMD_DATABASE_URL",
            root_cause(&e)
        );
    }
    Ok(pool)
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default)");
    format!("{host}:{port}/{db}")
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The one way a database error is told, in a log line or a message: the server's message,
/// the constraint it names and its SQLSTATE — never its DETAIL or HINT, which can quote row
/// values (a username, a key's hash) — or that the connection closed, or the client-side
/// failure (I/O, protocol, a value that did not convert: no row values in these).
pub fn error_line(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.constraint() {
            Some(c) => format!("{} (constraint {c}, SQLSTATE {})", db.message(), db.code().code()),
            None => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        },
        None if e.is_closed() => "the connection to PostgreSQL closed".to_owned(),
        None => e.to_string(),
    }
}
