//! The rules that turn a workspace's commands ([`super::command`]) into events. Pure: the
//! caller passes `now`, fresh ids and any hash computed outside (argon2 never runs here).

use super::command::WorkspaceCommand;
use super::lifecycle;
pub use super::profile::ProfileEdit;
use super::{UserState, WorkspaceState};
use crate::domain::rules;
use crate::events::{Event, RevokeReason, SessionsEndReason};
use crate::protocol::IamError;
use chrono::{DateTime, Utc};

/// What create-user and import-user both hold a new user to: its fields' rules, an enabled
/// workspace, a free username and email. Its roles and its profile's event.
pub(super) fn new_user(
    state: &WorkspaceState,
    user_id: &str,
    username: &str,
    name: &str,
    email: &str,
    roles: &[String],
    profile: &ProfileEdit,
) -> Result<(Vec<String>, Option<Event>), IamError> {
    let roles = rules::new_user(username, name, email, roles)?;
    let profile = profile.event(user_id, &super::Profile::default())?;
    enabled_workspace(state)?;
    if state.user_by_username(username).is_some() {
        return Err(IamError::duplicate("username is already taken"));
    }
    // Unique per workspace: the workspace's stream serialises its writes (its expected
    // version), so a rule decided from its state cannot race.
    if state.user_by_email(email).is_some() {
        return Err(IamError::duplicate("email is already taken"));
    }
    Ok((roles, profile))
}

pub(super) fn existing(state: &WorkspaceState) -> Result<(), IamError> {
    if !state.exists {
        return Err(IamError::not_found("workspace not found"));
    }
    Ok(())
}

pub(super) fn enabled_workspace(state: &WorkspaceState) -> Result<(), IamError> {
    existing(state)?;
    if !state.enabled {
        return Err(IamError::disabled("workspace is disabled"));
    }
    Ok(())
}

pub(super) fn user<'a>(state: &'a WorkspaceState, user_id: &str) -> Result<&'a UserState, IamError> {
    if user_id.is_empty() {
        return Err(IamError::invalid("user_id is required"));
    }
    state.users.get(user_id).ok_or_else(|| IamError::not_found("user not found"))
}

/// Revocations of every active key of `user_id`.
pub(super) fn revoke_all(state: &WorkspaceState, user_id: &str, reason: RevokeReason) -> Vec<Event> {
    state.active_keys_of(user_id).map(|k| Event::ApiKeyRevoked { key_id: k.id.clone(), reason }).collect()
}

/// Decides what `command` means for `state` at `now`: the events to record, or why not.
pub fn decide(
    state: &WorkspaceState,
    command: &WorkspaceCommand,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, IamError> {
    use WorkspaceCommand as C;
    match command {
        C::CreateWorkspace { name } => {
            rules::workspace_id(&state.id)?;
            rules::workspace_name(name)?;
            if state.exists {
                return Err(IamError::duplicate("workspace already exists"));
            }
            let name = if name.is_empty() { state.id.clone() } else { name.clone() };
            Ok(vec![Event::WorkspaceCreated { workspace_id: state.id.clone(), name, created: now }])
        }
        C::UpdateWorkspace { name, enabled } => {
            existing(state)?;
            let rename = name.as_ref().filter(|n| !n.is_empty() && **n != state.name);
            if let Some(name) = rename {
                rules::workspace_name(name)?;
            }
            let renamed = rename.map(|name| Event::WorkspaceRenamed { name: name.clone() });
            let mut events = Vec::new();
            match enabled {
                // Disabling is idempotent and cascades; a rename in the same request is kept.
                Some(false) => {
                    events.extend(renamed);
                    events.extend(decide(state, &C::DisableWorkspace, now)?);
                }
                Some(true) if !state.enabled => {
                    events.push(Event::WorkspaceEnabled {});
                    events.extend(renamed);
                }
                _ if !state.enabled && renamed.is_some() => {
                    return Err(IamError::disabled("workspace is disabled"));
                }
                _ => events.extend(renamed),
            }
            Ok(events)
        }
        C::DisableWorkspace => {
            existing(state)?;
            if !state.enabled {
                return Ok(vec![]);
            }
            let mut events = vec![Event::WorkspaceDisabled {}];
            events.extend(
                state
                    .users
                    .values()
                    .filter(|u| u.enabled)
                    .map(|u| Event::UserDisabled { user_id: u.id.clone() }),
            );
            events.extend(state.keys.values().filter(|k| !k.revoked).map(|k| Event::ApiKeyRevoked {
                key_id: k.id.clone(),
                reason: RevokeReason::WorkspaceDisabled,
            }));
            Ok(events)
        }
        C::CreateUser {
            user_id,
            username,
            name,
            email,
            roles,
            enabled,
            must_change_password,
            password_hash,
            profile,
            self_registered,
            number,
        } => {
            let (roles, profile) = new_user(state, user_id, username, name, email, roles, profile)?;
            let name = if name.is_empty() { username.clone() } else { name.clone() };
            Ok(vec![Event::UserCreated {
                user_id: user_id.clone(),
                username: username.clone(),
                name,
                email: email.clone(),
                roles,
                enabled: *enabled,
                must_change_password: *must_change_password,
                password_hash: Some(password_hash.clone()),
                created: now,
                self_registered: *self_registered,
                number: *number,
            }]
            .into_iter()
            .chain(profile)
            .collect())
        }
        C::ImportUser(user) => lifecycle::import_user(state, user),
        C::RehashPassword { user_id, old_hash, new_hash } => {
            lifecycle::rehash_password(state, user_id, old_hash, new_hash)
        }
        C::UpdateUser {
            user_id,
            username,
            name,
            email,
            roles,
            enabled,
            must_change_password,
            password_given,
            profile,
        } => {
            if *password_given {
                return Err(IamError::invalid(
                    "update-user does not change passwords; use change-password or reset-password",
                ));
            }
            existing(state)?;
            let u = user(state, user_id)?;
            enabled_workspace(state)?;
            let username = username.as_ref().filter(|v| !v.is_empty() && **v != u.username);
            if let Some(v) = username {
                rules::username(v)?;
                if state.user_by_username(v).is_some_and(|other| other.id != u.id) {
                    return Err(IamError::duplicate("username is already taken"));
                }
            }
            let name = name.as_ref().filter(|v| !v.is_empty() && **v != u.name);
            if let Some(v) = name {
                rules::max_len("user.name", v, rules::MAX_NAME)?;
            }
            let email = email.as_ref().filter(|v| **v != u.email);
            if let Some(v) = email {
                rules::email(v)?;
                if state.user_by_email(v).is_some_and(|other| other.id != u.id) {
                    return Err(IamError::duplicate("email is already taken"));
                }
            }
            let roles = match roles {
                Some(r) => Some(rules::roles(r)?).filter(|r| *r != u.roles),
                None => None,
            };
            let must_change_password = must_change_password.filter(|v| *v != u.must_change_password);
            // A new address is unproven until its own verification (unless an admin says).
            let mut profile = profile.clone();
            if email.is_some() && profile.verified.is_none() {
                profile.verified = Some(false);
            }
            let profile = profile.event(&u.id, &u.profile)?;
            let admin = |roles: &[String]| roles.iter().any(|r| r == crate::authz::ADMIN_ROLE);
            let admin_changed = roles.as_ref().is_some_and(|r| admin(r) != admin(&u.roles));
            let mut events = Vec::new();
            if username.is_some()
                || name.is_some()
                || email.is_some()
                || roles.is_some()
                || must_change_password.is_some()
            {
                events.push(Event::UserChanged {
                    user_id: u.id.clone(),
                    username: username.cloned(),
                    name: name.cloned(),
                    email: email.cloned(),
                    roles,
                    must_change_password,
                });
            }
            let verified_changed =
                matches!(&profile, Some(Event::UserProfileChanged { verified: Some(_), .. }));
            events.extend(profile);
            // A token proves an address and says whether its holder is an admin: either
            // changing ends every session; so does the verification (its token is single-use).
            let ended = |reason| Event::UserSessionsEnded { user_id: u.id.clone(), reason };
            if email.is_some() {
                events.push(ended(SessionsEndReason::EmailChanged));
            } else if verified_changed {
                events.push(ended(SessionsEndReason::VerifiedChanged));
            }
            if admin_changed {
                events.push(ended(SessionsEndReason::AdminRoleChanged));
            }
            match enabled {
                Some(false) if u.enabled => {
                    events.push(Event::UserDisabled { user_id: u.id.clone() });
                    events.extend(revoke_all(state, &u.id, RevokeReason::UserDisabled));
                }
                Some(true) if !u.enabled => events.push(Event::UserEnabled { user_id: u.id.clone() }),
                _ => {}
            }
            Ok(events)
        }
        C::DisableUser { user_id } => {
            existing(state)?;
            let u = user(state, user_id)?;
            if !u.enabled {
                return Ok(vec![]);
            }
            let mut events = vec![Event::UserDisabled { user_id: u.id.clone() }];
            events.extend(revoke_all(state, &u.id, RevokeReason::UserDisabled));
            Ok(events)
        }
        C::EnableUser { user_id } => {
            existing(state)?;
            let u = user(state, user_id)?;
            enabled_workspace(state)?;
            if u.enabled {
                return Ok(vec![]);
            }
            Ok(vec![Event::UserEnabled { user_id: u.id.clone() }])
        }
        C::DeleteUser { user_id } => {
            existing(state)?;
            let u = user(state, user_id)?;
            let mut events = revoke_all(state, &u.id, RevokeReason::UserDeleted);
            events.push(Event::UserDeleted {
                user_id: u.id.clone(),
                username: u.username.clone(),
                reason: None,
            });
            Ok(events)
        }
        C::NumberUser { user_id, number } => lifecycle::number(state, user_id, *number),
        C::RemoveUnverified { user_id, created_before } => {
            lifecycle::remove_unverified(state, user_id, *created_before)
        }
        C::VerifyEmail { user_id, token_version } => lifecycle::verify_email(state, user_id, *token_version),
        C::CompletePasswordReset { user_id, token_version, new_hash } => {
            lifecycle::complete_password_reset(state, user_id, *token_version, new_hash)
        }
        C::RecordMail { user_id, purpose, token_id, expires, failure } => {
            existing(state)?;
            let u = user(state, user_id)?;
            Ok(vec![Event::MailSent {
                user_id: u.id.clone(),
                purpose: *purpose,
                token_id: token_id.clone(),
                expires: *expires,
                failure: failure.clone(),
            }])
        }
        C::ChangePassword { user_id, verified_hash, new_hash } => {
            // Self-service: every failure is the one auth-failed bucket.
            let u = state.users.get(user_id).ok_or_else(IamError::auth_failed)?;
            if !state.exists || !state.enabled || !u.enabled {
                return Err(IamError::auth_failed());
            }
            if u.password_hash.as_deref() != Some(verified_hash.as_str()) {
                return Err(IamError::auth_failed());
            }
            Ok(vec![Event::UserPasswordChanged { user_id: u.id.clone(), password_hash: new_hash.clone() }])
        }
        C::SetPassword { user_id, new_hash } => {
            enabled_workspace(state)?;
            let u = user(state, user_id)?;
            Ok(vec![Event::UserPasswordChanged { user_id: u.id.clone(), password_hash: new_hash.clone() }])
        }
        C::EndSessions { user_id } => {
            existing(state)?;
            let u = user(state, user_id)?;
            Ok(vec![Event::UserSessionsEnded {
                user_id: u.id.clone(),
                reason: SessionsEndReason::LogoutEverywhere,
            }])
        }
        C::ResetPassword { user_id, new_hash } => {
            existing(state)?;
            let u = user(state, user_id)?;
            enabled_workspace(state)?;
            if !u.enabled {
                return Err(IamError::disabled("user is disabled"));
            }
            Ok(vec![Event::UserPasswordReset { user_id: u.id.clone(), password_hash: new_hash.clone() }])
        }
        C::CreateApiKey { key_id, user_id, name, prefix, key_hash, expires } => {
            if name.is_empty() {
                return Err(IamError::invalid("key.name is required"));
            }
            rules::max_len("key.name", name, rules::MAX_KEY_NAME)?;
            if expires.is_some_and(|e| e <= now) {
                return Err(IamError::invalid("key.expires is in the past"));
            }
            existing(state)?;
            let u = user(state, user_id)?;
            enabled_workspace(state)?;
            if !u.enabled {
                return Err(IamError::disabled("user is disabled"));
            }
            // An expired key no longer holds its name.
            if state.active_keys_of(&u.id).any(|k| k.name == *name && k.expires.is_none_or(|e| e > now)) {
                return Err(IamError::duplicate("the user already has a key with this name"));
            }
            Ok(vec![Event::ApiKeyCreated {
                key_id: key_id.clone(),
                user_id: u.id.clone(),
                name: name.clone(),
                prefix: prefix.clone(),
                key_hash: key_hash.clone(),
                expires: *expires,
                created: now,
            }])
        }
        C::RevokeApiKey { key_id } => {
            if key_id.is_empty() {
                return Err(IamError::invalid("key_id is required"));
            }
            existing(state)?;
            match state.keys.get(key_id) {
                Some(k) if !k.revoked => {
                    Ok(vec![Event::ApiKeyRevoked { key_id: k.id.clone(), reason: RevokeReason::Revoked }])
                }
                _ => Err(IamError::not_found("api key not found")),
            }
        }
        C::RecordMintedToken { user_id, workspace, token_id, expires, user_context } => {
            existing(state)?;
            let u = user(state, user_id)?;
            if !u.enabled || !state.enabled {
                return Err(IamError::not_permitted("user is disabled"));
            }
            Ok(vec![Event::TokenMinted {
                user_id: u.id.clone(),
                workspace: workspace.clone(),
                token_id: token_id.clone(),
                expires: *expires,
                user_context: user_context.clone(),
            }])
        }
        C::RecordIssuedToken { user_id, token_id, expires } => {
            existing(state)?;
            let u = user(state, user_id)?;
            if !u.enabled || !state.enabled {
                return Err(IamError::not_permitted("user is disabled"));
            }
            Ok(vec![Event::TokenIssued {
                user_id: u.id.clone(),
                token_id: token_id.clone(),
                expires: *expires,
            }])
        }
    }
}
