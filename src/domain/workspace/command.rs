//! The commands on a workspace — the intents its actor decides on ([`super::decide`]) — and
//! what each answers with once applied.

use super::lifecycle::ImportedUser;
use super::ProfileEdit;
use crate::events::MailPurpose;
use chrono::{DateTime, Utc};

/// The intent of a write to one workspace.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkspaceCommand {
    CreateWorkspace {
        name: String,
    },
    UpdateWorkspace {
        name: Option<String>,
        enabled: Option<bool>,
    },
    DisableWorkspace,
    CreateUser {
        user_id: String,
        username: String,
        name: String,
        email: String,
        roles: Vec<String>,
        enabled: bool,
        must_change_password: bool,
        /// argon2id encoding, computed before the command reaches the actor.
        password_hash: String,
        profile: ProfileEdit,
        /// Self-registration: nobody proven asked (the cleanup job may delete it unverified).
        self_registered: bool,
        /// The integer id allocated for it (a PostgreSQL sequence: never reused).
        number: Option<i32>,
    },
    UpdateUser {
        user_id: String,
        username: Option<String>,
        name: Option<String>,
        email: Option<String>,
        roles: Option<Vec<String>>,
        enabled: Option<bool>,
        must_change_password: Option<bool>,
        /// update-user refuses passwords; set when the request carried one.
        password_given: bool,
        profile: ProfileEdit,
    },
    DisableUser {
        user_id: String,
    },
    /// Keys revoked while the user was disabled stay revoked.
    EnableUser {
        user_id: String,
    },
    /// A hard delete: revokes the user's active keys and frees its username. Allowed in a
    /// disabled workspace.
    DeleteUser {
        user_id: String,
    },
    /// `verified_hash` is the stored hash the current password was checked against; if the
    /// user's hash changed since, the change is refused (no lost update).
    ChangePassword {
        user_id: String,
        verified_hash: String,
        new_hash: String,
    },
    /// Netsoc's `PATCH /v1/users/{u}` with a password: the user itself (even with an expired
    /// token) or an admin sets it without the current one; every earlier token dies.
    SetPassword {
        user_id: String,
        new_hash: String,
    },
    ResetPassword {
        user_id: String,
        new_hash: String,
    },
    /// logout-all: every token of the user issued before dies (its API keys do not).
    EndSessions {
        user_id: String,
    },
    /// verify-email with a verification token issued at account version `token_version`:
    /// single-use, because verifying moves the version on.
    VerifyEmail {
        user_id: String,
        token_version: i64,
    },
    /// complete-password-reset with a reset token issued at account version `token_version`
    /// (single-use: the new password moves the version on). Only verified accounts reset.
    CompletePasswordReset {
        user_id: String,
        token_version: i64,
        new_hash: String,
    },
    /// Records a mail carrying an email token, sent or failed. Never the token or the mail.
    RecordMail {
        user_id: String,
        purpose: MailPurpose,
        token_id: String,
        expires: DateTime<Utc>,
        failure: Option<String>,
    },
    /// `iamd import`: a user of another system.
    ImportUser(ImportedUser),
    /// A login verified `old_hash` (an older scheme) and hashed the password anew; nothing
    /// when the hash changed meanwhile.
    RehashPassword {
        user_id: String,
        old_hash: String,
        new_hash: String,
    },
    /// Gives a user created before integer ids its `number`; nothing when it has one.
    NumberUser {
        user_id: String,
        number: i32,
    },
    /// The cleanup job: deletes `user_id` if it registered itself, is still unverified and
    /// was created before `created_before`; else nothing (it verified meanwhile).
    RemoveUnverified {
        user_id: String,
        created_before: DateTime<Utc>,
    },
    CreateApiKey {
        key_id: String,
        user_id: String,
        name: String,
        prefix: String,
        key_hash: String,
        expires: Option<DateTime<Utc>>,
    },
    RevokeApiKey {
        key_id: String,
    },
    /// mint-token: records that a token for `user_id` (a user of this workspace) acting in
    /// `workspace` was issued. The token itself is never recorded.
    RecordMintedToken {
        user_id: String,
        workspace: String,
        token_id: String,
        expires: DateTime<Utc>,
        user_context: serde_json::Value,
    },
    /// issue-token: records that a token for `user_id` was issued. Never the token itself.
    RecordIssuedToken {
        user_id: String,
        token_id: String,
        expires: DateTime<Utc>,
    },
}

/// What a successful command answers with: nothing, or the workspace, user or key it
/// concerns, as the state holds it after the command's events (the actor renders it for the
/// wire: `actors::replies`). One-time secrets are added by the caller, never held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Nothing,
    Workspace,
    User(String),
    Key(String),
}

/// The [`Answer`] to `command`.
pub fn answer(command: &WorkspaceCommand) -> Answer {
    use WorkspaceCommand as C;
    match command {
        C::CreateWorkspace { .. } | C::UpdateWorkspace { .. } => Answer::Workspace,
        C::CreateUser { user_id, .. }
        | C::ImportUser(ImportedUser { user_id, .. })
        | C::UpdateUser { user_id, .. }
        | C::EnableUser { user_id } => Answer::User(user_id.clone()),
        C::CreateApiKey { key_id, .. } => Answer::Key(key_id.clone()),
        C::DisableWorkspace
        | C::DisableUser { .. }
        | C::DeleteUser { .. }
        | C::ChangePassword { .. }
        | C::SetPassword { .. }
        | C::RehashPassword { .. }
        | C::ResetPassword { .. }
        | C::EndSessions { .. }
        | C::RevokeApiKey { .. }
        | C::RecordMintedToken { .. }
        | C::RecordIssuedToken { .. }
        | C::VerifyEmail { .. }
        | C::CompletePasswordReset { .. }
        | C::RecordMail { .. }
        | C::NumberUser { .. }
        | C::RemoveUnverified { .. } => Answer::Nothing,
    }
}
