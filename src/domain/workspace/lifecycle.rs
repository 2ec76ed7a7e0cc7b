//! The decisions of an account's lifecycle beyond management (docs/accounts.md): the email
//! tokens' single use (verify-email, complete-password-reset), the cleanup job's deletion of
//! accounts never verified, integer ids for users created before them, users imported from
//! another system and the upgrade of their password hashes. Pure, as [`super::decide`] is,
//! which dispatches here.

use super::decide::{existing, new_user, revoke_all};
use super::{ProfileEdit, WorkspaceState};
use crate::events::{DeletionReason, Event, RevokeReason, SessionsEndReason};
use crate::protocol::IamError;
use chrono::{DateTime, Utc};

/// A user created before integer ids gets `number`; nothing when it has one.
pub(super) fn number(state: &WorkspaceState, user_id: &str, number: i32) -> Result<Vec<Event>, IamError> {
    existing(state)?;
    match state.users.get(user_id) {
        Some(u) if u.number.is_none() => Ok(vec![Event::UserNumbered { user_id: u.id.clone(), number }]),
        _ => Ok(vec![]),
    }
}

/// The cleanup job's deletion: only an account that registered itself, is still unverified
/// and was created before `created_before`; else nothing (it verified meanwhile, or is gone).
pub(super) fn remove_unverified(
    state: &WorkspaceState,
    user_id: &str,
    created_before: DateTime<Utc>,
) -> Result<Vec<Event>, IamError> {
    existing(state)?;
    let Some(u) = state.users.get(user_id) else { return Ok(vec![]) };
    if !u.self_registered || u.profile.verified || u.created >= created_before {
        return Ok(vec![]);
    }
    let mut events = revoke_all(state, &u.id, RevokeReason::UserDeleted);
    events.push(Event::UserDeleted {
        user_id: u.id.clone(),
        username: u.username.clone(),
        reason: Some(DeletionReason::UnverifiedExpired),
    });
    Ok(events)
}

/// verify-email with a token issued at account version `token_version`: verifying moves the
/// version on, so the token works once. A token that no longer holds is the one auth-failed,
/// whatever the cause.
pub(super) fn verify_email(
    state: &WorkspaceState,
    user_id: &str,
    token_version: i64,
) -> Result<Vec<Event>, IamError> {
    let u = state.users.get(user_id).ok_or_else(IamError::auth_failed)?;
    if !state.exists || !state.enabled || !u.enabled || u.account_version != token_version {
        return Err(IamError::auth_failed());
    }
    if u.profile.verified {
        return Err(IamError::invalid("email address is already verified"));
    }
    Ok(vec![
        Event::UserProfileChanged {
            user_id: u.id.clone(),
            first_name: None,
            last_name: None,
            ssh_key: None,
            verified: Some(true),
            renewed: None,
        },
        Event::UserSessionsEnded { user_id: u.id.clone(), reason: SessionsEndReason::VerifiedChanged },
    ])
}

/// complete-password-reset with a token issued at `token_version`, for a verified account
/// only; the new password moves the version on, so the token works once.
pub(super) fn complete_password_reset(
    state: &WorkspaceState,
    user_id: &str,
    token_version: i64,
    new_hash: &str,
) -> Result<Vec<Event>, IamError> {
    let u = state.users.get(user_id).ok_or_else(IamError::auth_failed)?;
    if !state.exists
        || !state.enabled
        || !u.enabled
        || !u.profile.verified
        || u.account_version != token_version
    {
        return Err(IamError::auth_failed());
    }
    Ok(vec![Event::UserPasswordChanged { user_id: u.id.clone(), password_hash: new_hash.to_owned() }])
}

/// A user of another system (`iamd import`), with its id there (`number`), its password hash
/// (any scheme iamd verifies: Netsoc's bcrypt), account version and times.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedUser {
    pub user_id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub password_hash: Option<String>,
    pub profile: ProfileEdit,
    pub number: i32,
    /// Where it came from (`netsoc`).
    pub source: String,
    pub account_version: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// An imported user: held to create-user's checks, and its id must be free; `user.created`
/// with its id, hash and creation time, its profile, then `user.imported` with its version
/// and times.
pub(super) fn import_user(state: &WorkspaceState, u: &ImportedUser) -> Result<Vec<Event>, IamError> {
    let (roles, profile) = new_user(state, &u.user_id, &u.username, &u.name, &u.email, &u.roles, &u.profile)?;
    if state.users.values().any(|other| other.number == Some(u.number)) {
        return Err(IamError::duplicate("the id is already taken"));
    }
    let name = if u.name.is_empty() { u.username.clone() } else { u.name.clone() };
    let created = Event::UserCreated {
        user_id: u.user_id.clone(),
        username: u.username.clone(),
        name,
        email: u.email.clone(),
        roles,
        enabled: true,
        must_change_password: false,
        password_hash: u.password_hash.clone(),
        created: u.created,
        self_registered: false,
        number: Some(u.number),
    };
    let imported = Event::UserImported {
        user_id: u.user_id.clone(),
        source: u.source.clone(),
        account_version: u.account_version.max(1),
        created: u.created,
        updated: u.updated,
    };
    Ok(std::iter::once(created).chain(profile).chain(std::iter::once(imported)).collect())
}

/// A login verified `old_hash` (an older scheme) and hashed the password anew: the new hash,
/// with no session ended; nothing when the hash changed meanwhile.
pub(super) fn rehash_password(
    state: &WorkspaceState,
    user_id: &str,
    old_hash: &str,
    new_hash: &str,
) -> Result<Vec<Event>, IamError> {
    let current = state.users.get(user_id).and_then(|u| u.password_hash.as_deref());
    if current != Some(old_hash) {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserPasswordRehashed { user_id: user_id.to_owned(), password_hash: new_hash.to_owned() }])
}
