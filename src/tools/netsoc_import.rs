//! `iamd import netsoc --from postgres://… [--workspace W]`: brings the users of Netsoc's iamd
//! over (see `service::import`), reading its `users` table as its `models/user.go` lays it out.
//! Soft-deleted rows (`deleted` set) stay behind. Progress goes to standard error, the counts
//! to standard output; a re-run skips what an earlier one imported.

use crate::service::import::{Imported, NetsocRow};
use crate::service::Service;
use anyhow::Context;
use chrono::{DateTime, Utc};

/// Netsoc's columns, cast to what iamd reads (GORM made `id` and `token_version` bigint).
const SELECT_USERS: &str = "SELECT id::bigint, username::text, email::text, password::text, \
    first_name::text, last_name::text, ssh_key::text, coalesce(verified, false), coalesce(is_admin, false), \
    renewed::timestamptz, token_version::bigint, created::timestamptz, updated::timestamptz, \
    deleted IS NOT NULL FROM users ORDER BY id";

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub imported: usize,
    pub already: usize,
    pub deleted: usize,
    /// (Netsoc id, username, why) of each row not imported.
    pub conflicts: Vec<(i64, String, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} imported, {} already imported, {} deleted in Netsoc (skipped), {} conflicts",
            self.imported,
            self.already,
            self.deleted,
            self.conflicts.len()
        )
    }
}

/// Reads Netsoc's users from `from` and imports them into `workspace`; `progress` hears each
/// hundredth row and the last.
pub async fn import(
    service: &Service,
    from: &str,
    workspace: &str,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Report> {
    let pool = crate::db::connect(from, 2).await.context("Netsoc's database (--from)")?;
    let client = pool.get().await.context("connecting to Netsoc's database (--from)")?;
    let rows = client
        .query(SELECT_USERS, &[])
        .await
        .map_err(|e| anyhow::anyhow!("reading Netsoc's users table: {}", crate::db::error_line(&e)))?;
    let rows: Vec<(NetsocRow, bool)> = rows
        .iter()
        .map(|r| {
            let renewed: Option<DateTime<Utc>> = r.get(9);
            let created: Option<DateTime<Utc>> = r.get(11);
            let created = created.unwrap_or_else(Utc::now);
            let row = NetsocRow {
                id: r.get(0),
                username: r.get::<_, Option<String>>(1).unwrap_or_default(),
                email: r.get::<_, Option<String>>(2).unwrap_or_default(),
                password: r.get(3),
                first_name: r.get::<_, Option<String>>(4).unwrap_or_default(),
                last_name: r.get::<_, Option<String>>(5).unwrap_or_default(),
                ssh_key: r.get(6),
                verified: r.get(7),
                is_admin: r.get(8),
                renewed,
                token_version: r.get::<_, Option<i64>>(10).unwrap_or(1),
                created,
                updated: r.get::<_, Option<DateTime<Utc>>>(12).unwrap_or(created),
            };
            (row, r.get::<_, bool>(13))
        })
        .collect();
    service.ensure_workspace(workspace).await.map_err(|e| anyhow::anyhow!("workspace {workspace}: {e}"))?;
    let max_id = rows.iter().map(|(r, _)| r.id).max().unwrap_or(0);
    service.reserve_numbers(max_id).await.map_err(|e| anyhow::anyhow!("reserving the ids: {e}"))?;
    let mut report = Report::default();
    let total = rows.len();
    for (n, (row, deleted)) in rows.iter().enumerate() {
        if *deleted {
            report.deleted += 1;
        } else {
            match service.import_netsoc_user(workspace, row).await {
                Ok(Imported::Imported) => report.imported += 1,
                Ok(Imported::AlreadyThere) => report.already += 1,
                Ok(Imported::Conflict(why)) => report.conflicts.push((row.id, row.username.clone(), why)),
                Err(e) => anyhow::bail!("importing Netsoc user {} ({}): {e}", row.id, row.username),
            }
        }
        if (n + 1) % 100 == 0 || n + 1 == total {
            progress(n + 1, total);
        }
    }
    Ok(report)
}
