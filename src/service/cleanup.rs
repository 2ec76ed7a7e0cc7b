//! The cleanup job (`cleanup.interval`, `cleanup.max_age`): accounts that registered
//! themselves and never verified their email are deleted once older than `max_age` — by a
//! `user.deleted` event with reason `unverified-expired` each, decided by the workspace's
//! actor, which deletes nothing that verified meanwhile. Verified accounts and accounts an
//! admin created are never touched. One process at a time: a run holds a transaction-scoped
//! PostgreSQL advisory lock, and a process that finds it taken skips its turn.

use super::{Ctx, Service};
use crate::domain::workspace::WorkspaceCommand;
use crate::events::Metadata;
use crate::protocol::IamError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The advisory lock's key: "iamd cleanup" in ASCII, as one number.
const LOCK_KEY: i64 = 0x6961_6d64_636c_6e70;
/// Accounts deleted per run at most; the next run takes the rest.
const BATCH: i64 = 1000;

const DUE: &str = "SELECT id, workspace FROM users \
    WHERE self_registered AND NOT verified AND created < $1 ORDER BY created LIMIT $2";

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleaned {
    /// Another process holds the lock: it is cleaning.
    Skipped,
    /// This many accounts were deleted.
    Deleted(usize),
}

impl Service {
    /// One run of the cleanup job at `now`: deletes the self-registered accounts still
    /// unverified that were created before `now - max_age`.
    pub async fn clean_up_unverified(
        &self,
        now: DateTime<Utc>,
        max_age: Duration,
    ) -> Result<Cleaned, IamError> {
        let max_age = chrono::Duration::from_std(max_age)
            .map_err(|_| IamError::invalid("cleanup.max_age is too large"))?;
        let cutoff = now - max_age;
        let mut client = self.inner.store.pool().get().await.map_err(|e| {
            tracing::error!(error = %e, "cleanup: no database connection");
            IamError::internal()
        })?;
        let tx = client.transaction().await.map_err(db_error)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(db_error)?
            .get(0);
        if !locked {
            return Ok(Cleaned::Skipped);
        }
        let due = tx.query(DUE, &[&cutoff, &BATCH]).await.map_err(db_error)?;
        let mut deleted = 0;
        for row in due {
            let (user_id, workspace): (String, String) = (row.get(0), row.get(1));
            let command =
                WorkspaceCommand::RemoveUnverified { user_id: user_id.clone(), created_before: cutoff };
            let ctx = Ctx {
                metadata: Metadata {
                    actor: "system".into(),
                    request_id: String::new(),
                    source: "system".into(),
                    operation: "cleanup".into(),
                },
                idempotency: None,
                key_owner: None,
                writer: super::accounts::AccountWriter::Admin,
            };
            self.command(&workspace, command, ctx).await?;
            // Nothing happened to an account that verified since it was listed.
            if self.inner.queries.user(&user_id).await?.is_none() {
                deleted += 1;
            }
        }
        tx.commit().await.map_err(db_error)?;
        if deleted > 0 {
            tracing::info!(deleted, "cleanup: deleted self-registered accounts never verified");
        }
        Ok(Cleaned::Deleted(deleted))
    }
}

/// The job: a run every `interval` until the task is dropped; a failed run is logged and the
/// next one tries again.
pub async fn run(service: Service, interval: Duration, max_age: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(e) = service.clean_up_unverified(Utc::now(), max_age).await {
            tracing::warn!(error = %e, "cleanup: the run failed; the next one tries again");
        }
    }
}

fn db_error(e: tokio_postgres::Error) -> IamError {
    tracing::error!(error = %crate::db::error_line(&e), "cleanup: database error");
    IamError::internal()
}
