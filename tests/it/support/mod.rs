//! The shared test harness of the integration tests (`tests/it`).
//!
//! [`TestDb`] creates a fresh, uniquely named PostgreSQL database per test from the admin URL in
//! `IAMD_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), migrates it, and
//! drops it again when the `TestDb` goes out of scope (also when the test panics).

pub mod broker;
pub mod commands;
pub mod contract;
pub mod history;
pub mod server;
pub mod smtp;

use deadpool_postgres::Pool;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

/// The environment variable naming the admin connection (any database the user may connect to,
/// with the right to CREATE DATABASE).
pub const ADMIN_URL_ENV: &str = "IAMD_TEST_PG_URL";

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections in each test database's pool.
const POOL_SIZE: usize = 8;

/// A throwaway, migrated database; dropped (`WITH (FORCE)`) when this value is dropped.
pub struct TestDb {
    admin_url: String,
    name: String,
    url: String,
    pool: Pool,
}

impl TestDb {
    /// Creates and migrates a fresh database. Panics with one readable line when the admin
    /// server cannot be reached.
    pub async fn new() -> TestDb {
        TestDb::migrated_to(i32::MAX).await
    }

    /// A fresh database with the migrations up to `version` applied (a migration's test).
    pub async fn migrated_to(version: i32) -> TestDb {
        let admin_url = admin_url();
        let name = format!("iamd_test_{}_{:016x}", std::process::id(), rand::random::<u64>());

        let admin = admin_connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach the PostgreSQL test server at {} ({e}): run `make test`, or set \
                 {ADMIN_URL_ENV} to a reachable admin URL",
                describe(&admin_url)
            )
        });
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {}", db_message(&e)));
        drop(admin);

        let url = with_dbname(&admin_url, &name);
        assert_eq!(
            tokio_postgres::Config::from_str(&url).ok().and_then(|c| c.get_dbname().map(str::to_owned)),
            Some(name.clone()),
            "test database URL {url:?} does not name the database {name}"
        );
        // From here on the database exists: build `TestDb` first so that a failure below
        // still drops it.
        let pool = match iamd::db::connect(&url, POOL_SIZE).await {
            Ok(pool) => pool,
            Err(e) => {
                drop_database(&admin_url, &name);
                panic!("connecting to the test database {name}: {e:#}");
            }
        };
        let db = TestDb { admin_url, name, url, pool };
        iamd::store::migrations::migrate_to(&db.pool, version)
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e:#}", db.name));
        db
    }

    /// The URL of this test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name (`iamd_test_<pid>_<hex>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The migrated pool of this database (a cheap handle; clones share connections).
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// iamd's active signing key, read from its table (what only iamd should hold): the tests
    /// sign tokens with it that iamd could have signed (expired ones, foreign claims).
    pub async fn active_signing_key(&self) -> iamd::crypto::SigningKey {
        self.active_signing_key_opened_with(None).await
    }

    /// [`TestDb::active_signing_key`] where it is sealed under `kek`.
    pub async fn active_signing_key_opened_with(
        &self,
        kek: Option<&iamd::crypto::Kek>,
    ) -> iamd::crypto::SigningKey {
        use iamd::crypto::seal;
        let client = self.pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT kid, created, private_key, kek FROM signing_keys WHERE valid_until IS NULL AND algorithm = 'EdDSA'",
                &[],
            )
            .await
            .unwrap();
        let kid: String = row.get(0);
        let stored: Vec<u8> = row.get(2);
        let sealed_by: Option<String> = row.get(3);
        let pkcs8 = seal::load(kek, &seal::signing_key_name(&kid), &stored, sealed_by.as_deref()).unwrap();
        iamd::crypto::SigningKey::from_parts(kid, row.get(1), iamd::crypto::KeyAlgorithm::EdDSA, pkcs8)
            .unwrap()
    }

    /// What a backup holds: `pg_dump --data-only --inserts` of this database (bytea as `\x`
    /// hex), with the `pg_dump` on PATH or under /usr/lib/postgresql.
    pub fn dump(&self) -> String {
        let bin = std::iter::once("pg_dump".to_owned())
            .chain(
                std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|d| d.path().join("bin/pg_dump").display().to_string()),
            )
            .find(|b| {
                std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success())
            })
            .expect("pg_dump (postgresql-client) is needed for the dump tests");
        let out =
            std::process::Command::new(bin).args(["--data-only", "--inserts", &self.url]).output().unwrap();
        assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// An event store on this database.
    /// The first column of every row `sql` returns, in its order.
    pub async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> Vec<T> {
        let client = self.pool.get().await.expect("a connection");
        let rows = client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter().map(|r| r.get(0)).collect()
    }

    pub fn store(&self) -> iamd::store::EventStore {
        iamd::store::EventStore::new(self.pool())
    }

    /// PostgreSQL goes away for this database: new connections are refused and every open
    /// one (iamd's pools included) is terminated, on the real server. [`TestDb::reopen`] ends it.
    pub async fn cut_off(&self) {
        self.admin(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{raw}'",
            name = quote_ident(&self.name),
            raw = self.name
        ))
        .await;
    }

    /// Accepts connections again after [`TestDb::cut_off`].
    pub async fn reopen(&self) {
        self.admin(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote_ident(&self.name))).await;
    }

    async fn admin(&self, sql: &str) {
        let admin = admin_connect(&self.admin_url).await.expect("the admin connection");
        admin.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        drop_database(&self.admin_url, &self.name);
    }
}

/// Polls `check` until it holds, failing the test with `what` once `within` has passed.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The admin URL from the environment, or the default.
pub fn admin_url() -> String {
    match std::env::var(ADMIN_URL_ENV) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => DEFAULT_ADMIN_URL.to_owned(),
    }
}

async fn admin_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("{ADMIN_URL_ENV} is not a valid PostgreSQL URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops the database from a thread with its own runtime, so it works from `Drop` inside an
/// async test (where blocking on the test's own runtime is impossible).
fn drop_database(admin_url: &str, name: &str) {
    let admin_url = admin_url.to_owned();
    let name = name.to_owned();
    let thread_name = name.clone();
    let result = std::thread::spawn(move || -> Result<(), String> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let client = admin_connect(&admin_url).await?;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name)))
                .await
                .map_err(|e| db_message(&e))
        })
    })
    .join();
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: could not drop test database {thread_name}: {e}"),
        Err(_) => eprintln!("warning: dropping test database {thread_name} panicked"),
    }
}

/// The admin URL with its database name replaced by `db`; the query string is kept (minus
/// any `dbname=` parameter, which would override the path). Key/value connection strings
/// (`host=... user=...`) get a trailing `dbname=`, which wins over an earlier one.
pub fn with_dbname(admin_url: &str, db: &str) -> String {
    let scheme_len =
        ["postgres://", "postgresql://"].iter().find(|p| admin_url.starts_with(*p)).map(|p| p.len());
    let Some(scheme_len) = scheme_len else {
        return format!("{admin_url} dbname={db}");
    };
    let (base, query) = match admin_url.find('?') {
        Some(i) => (&admin_url[..i], Some(&admin_url[i + 1..])),
        None => (admin_url, None),
    };
    let path_start = base[scheme_len..].find('/').map_or(base.len(), |i| scheme_len + i);
    let mut url = format!("{}/{}", &base[..path_start], db);
    if let Some(query) = query {
        let kept: Vec<&str> =
            query.split('&').filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("dbname")).collect();
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
    }
    url
}

/// `host:port/db` of a URL, without credentials.
fn describe(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", c.get_dbname().unwrap_or("(default)"))
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The server's message for a database error, else the error's display.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
}
