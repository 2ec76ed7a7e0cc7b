//! The decisions of an account's lifecycle beyond management (docs/accounts.md): the email
//! tokens' single use (verify-email, complete-password-reset), the cleanup job's deletion of
//! accounts never verified, and integer ids for users created before them. Pure, as
//! [`super::decide`] is, which dispatches here.

use super::decide::{existing, revoke_all};
use super::WorkspaceState;
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
