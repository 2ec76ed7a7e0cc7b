//! The schema migrations (`migrations/*.sql`, embedded), applied in order under an advisory
//! lock, each once, in one transaction; a migration that needs Rust after its SQL (12: the
//! usernames' comparison keys) runs it in the same transaction.

use anyhow::Context as _;
use deadpool_postgres::Pool;

/// Every migration, in order. Never edit one that has shipped; add a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "events", include_str!("../../migrations/0001_events.sql")),
    (2, "read_tables", include_str!("../../migrations/0002_read_tables.sql")),
    (3, "authentications", include_str!("../../migrations/0003_authentications.sql")),
    (4, "stream_heads", include_str!("../../migrations/0004_stream_heads.sql")),
    (5, "snapshots", include_str!("../../migrations/0005_snapshots.sql")),
    (6, "authentication_counts", include_str!("../../migrations/0006_authentication_counts.sql")),
    (7, "anonymous_authentications", include_str!("../../migrations/0007_anonymous_authentications.sql")),
    (8, "subscriber_checkpoints", include_str!("../../migrations/0008_subscriber_checkpoints.sql")),
    (9, "idempotency_per_caller", include_str!("../../migrations/0009_idempotency_per_caller.sql")),
    (10, "sealed_signing_keys", include_str!("../../migrations/0010_sealed_signing_keys.sql")),
    (11, "username_digests", include_str!("../../migrations/0011_username_digests.sql")),
    (12, "username_keys", include_str!("../../migrations/0012_username_keys.sql")),
    (13, "unknown_names_index", include_str!("../../migrations/0013_unknown_names_index.sql")),
    (14, "token_validation_audit", include_str!("../../migrations/0014_token_validation_audit.sql")),
    (15, "profiles", include_str!("../../migrations/0015_profiles.sql")),
    (16, "accounts", include_str!("../../migrations/0016_accounts.sql")),
    (17, "matrix_logins", include_str!("../../migrations/0017_matrix_logins.sql")),
    (18, "user_numbers", include_str!("../../migrations/0018_user_numbers.sql")),
    (19, "es256_signing_keys", include_str!("../../migrations/0019_es256_signing_keys.sql")),
    (20, "users_updated", include_str!("../../migrations/0020_users_updated.sql")),
];

/// The migration after whose SQL the reservations' keys are computed in Rust.
const USERNAME_KEYS: i32 = 12;

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(pool: &Pool) -> anyhow::Result<usize> {
    migrate_to(pool, i32::MAX).await
}

/// Applies the pending migrations up to `version` (a migration's own test starts from the
/// schema before it).
pub async fn migrate_to(pool: &Pool, version: i32) -> anyhow::Result<usize> {
    let last = version;
    let mut client = pool.get().await.context("connecting to migrate")?;
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7368227301);
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .context("preparing schema_migrations")?;
    let applied: Vec<i32> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) || *version > last {
            continue;
        }
        tx.batch_execute(sql).await.with_context(|| format!("migration {version} ({name})"))?;
        if *version == USERNAME_KEYS {
            let collisions =
                crate::projections::uniqueness::rekey(&tx).await.context("migration 12: username keys")?;
            for c in &collisions {
                tracing::warn!(
                    key = %c.key, kept = %c.kept, others = ?c.others,
                    "usernames that now compare equal: the first keeps the name, the others keep their \
                     old reservation and cannot log in by name until one is renamed (update-user)"
                );
            }
        }
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

/// True when every embedded migration is applied.
pub async fn is_migrated(pool: &Pool) -> anyhow::Result<bool> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT to_regclass('schema_migrations') IS NOT NULL AND \
             (SELECT count(*) FROM schema_migrations) >= $1",
            &[&(MIGRATIONS.len() as i64)],
        )
        .await;
    match row {
        Ok(r) => Ok(r.get(0)),
        Err(_) => Ok(false),
    }
}
