//! `iamd import netsoc`: a user of Netsoc's iamd (a row of its `users` table) becomes an iamd
//! user of the compat workspace through the same workspace actor as any other: `user.created`
//! with Netsoc's id as its integer id and its bcrypt hash as is (the next login replaces it by
//! argon2id), the profile, then `user.imported` with its account version and times. A row
//! imported before is skipped; one whose id, username or email another user holds is a
//! conflict, reported and skipped.

use super::accounts::AccountWriter;
use super::{Ctx, Service};
use crate::domain::workspace::{ImportedUser, ProfileEdit, WorkspaceCommand};
use crate::events::Metadata;
use crate::protocol::{ErrorKind, IamError};
use chrono::{DateTime, Utc};

/// One row of Netsoc's `users` table (its `models/user.go`).
#[derive(Debug, Clone)]
pub struct NetsocRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// A bcrypt hash; `None` or empty: login disabled.
    pub password: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub ssh_key: Option<String>,
    pub verified: bool,
    pub is_admin: bool,
    /// Go's zero time (0001-01-01) when never renewed.
    pub renewed: Option<DateTime<Utc>>,
    pub token_version: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Imported,
    /// A user with this id and username is there already (an earlier run).
    AlreadyThere,
    /// Not imported: why.
    Conflict(String),
}

impl Service {
    /// Moves the integer-id sequence past `max_id`, so no user created meanwhile takes an id
    /// an imported user keeps.
    pub async fn reserve_numbers(&self, max_id: i64) -> Result<(), IamError> {
        const RESERVE: &str = "SELECT setval('user_numbers', $1::bigint) FROM user_numbers \
            WHERE $1::bigint > CASE WHEN is_called THEN last_value ELSE last_value - 1 END";
        if max_id > 0 {
            self.inner.queries.rows("reserve_numbers", RESERVE, &[&max_id]).await?;
        }
        Ok(())
    }

    /// Creates `workspace` unless it exists.
    pub async fn ensure_workspace(&self, workspace: &str) -> Result<(), IamError> {
        if self.inner.queries.workspace(workspace).await?.is_some() {
            return Ok(());
        }
        let create = WorkspaceCommand::CreateWorkspace { name: String::new() };
        match self.command(workspace, create, import_ctx("create-workspace")).await {
            Err(e) if e.kind != ErrorKind::Duplicate => Err(e),
            _ => Ok(()),
        }
    }

    /// Imports one Netsoc user into `workspace` (see the module's description).
    pub async fn import_netsoc_user(&self, workspace: &str, row: &NetsocRow) -> Result<Imported, IamError> {
        let Ok(number) = i32::try_from(row.id) else {
            return Ok(Imported::Conflict(format!("id {} does not fit an int32", row.id)));
        };
        const HOLDER: &str = "SELECT workspace, username FROM users WHERE number = $1";
        let held = self.inner.queries.rows("number_holder", HOLDER, &[&number]).await?;
        if let Some(r) = held.first() {
            let (ws, username): (String, String) = (r.get(0), r.get(1));
            if ws == workspace && username.eq_ignore_ascii_case(&row.username) {
                return Ok(Imported::AlreadyThere);
            }
            return Ok(Imported::Conflict(format!(
                "id {number} is held by {username:?} of workspace {ws:?}"
            )));
        }
        if let Some(other) = self.inner.queries.credentials_by_username(&row.username).await? {
            return Ok(Imported::Conflict(format!(
                "the username is taken by a user of workspace {:?}",
                other.record.workspace
            )));
        }
        let password_hash = row.password.clone().filter(|h| crate::crypto::password::is_legacy(h));
        let ssh_key = row.ssh_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
        let command = WorkspaceCommand::ImportUser(ImportedUser {
            user_id: uuid::Uuid::new_v4().to_string(),
            username: row.username.clone(),
            name: format!("{} {}", row.first_name, row.last_name).trim().to_owned(),
            email: row.email.clone(),
            roles: if row.is_admin { vec![crate::authz::ADMIN_ROLE.to_owned()] } else { vec![] },
            password_hash,
            profile: ProfileEdit {
                first_name: Some(row.first_name.clone()),
                last_name: Some(row.last_name.clone()),
                ssh_key,
                verified: Some(row.verified),
                renewed: row.renewed.filter(|r| *r > crate::domain::never_renewed()),
            },
            number,
            source: "netsoc".into(),
            account_version: row.token_version,
            created: row.created,
            updated: row.updated,
        });
        match self.command(workspace, command, import_ctx("import-user")).await {
            Ok(_) => Ok(Imported::Imported),
            Err(e) if matches!(e.kind, ErrorKind::Duplicate | ErrorKind::InvalidArgument) => {
                Ok(Imported::Conflict(e.message))
            }
            Err(e) => Err(e),
        }
    }
}

fn import_ctx(operation: &str) -> Ctx {
    Ctx {
        metadata: Metadata {
            actor: String::new(),
            request_id: String::new(),
            source: "cli".into(),
            operation: operation.into(),
        },
        idempotency: None,
        key_owner: None,
        writer: AccountWriter::Admin,
    }
}
