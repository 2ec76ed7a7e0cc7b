//! The workspace aggregate: a tenant with its users and API keys. One stream per workspace
//! (`workspace:<id>`), one actor writing it. `apply` holds no business rule; `decide` holds
//! them all.

mod command;
mod decide;
mod lifecycle;
mod profile;
#[cfg(test)]
mod tests;

pub use command::{answer, Answer, WorkspaceCommand};
pub use decide::{decide, ProfileEdit};
pub use lifecycle::ImportedUser;

use crate::events::Event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    pub must_change_password: bool,
    pub password_hash: Option<String>,
    pub account_version: i64,
    pub created: DateTime<Utc>,
    /// Netsoc's account fields (`user.profile.changed`).
    #[serde(default)]
    pub profile: Profile,
    /// The account registered itself (the cleanup job's to delete while unverified).
    #[serde(default)]
    pub self_registered: bool,
    /// The integer id (`None`: created before ids, not numbered yet).
    #[serde(default)]
    pub number: Option<i32>,
}

/// Netsoc's account fields of a user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub first_name: String,
    pub last_name: String,
    /// An OpenSSH public key line; empty: none.
    pub ssh_key: String,
    /// The email address was proven (or an admin said so).
    pub verified: bool,
    /// When the account was last renewed; `None`: never.
    pub renewed: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub expires: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub revoked: bool,
}

/// Everything decide needs to know about one workspace. Ordered maps keep iteration (and so
/// the order of cascaded events) deterministic. Serialisable for the actors' snapshots
/// (`crate::store::snapshot`): a change to these types or to [`apply`] bumps its `FORMAT`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceState {
    pub id: String,
    pub exists: bool,
    pub name: String,
    pub enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub users: BTreeMap<String, UserState>,
    pub keys: BTreeMap<String, KeyState>,
}

impl WorkspaceState {
    pub fn new(id: &str) -> Self {
        WorkspaceState { id: id.to_owned(), ..Default::default() }
    }

    pub fn user_by_username(&self, username: &str) -> Option<&UserState> {
        self.users.values().find(|u| super::username::same(&u.username, username))
    }

    /// The user of this workspace whose email is `email`, compared case-insensitively
    /// (emails are unique per workspace; empty is no email).
    pub fn user_by_email(&self, email: &str) -> Option<&UserState> {
        if email.is_empty() {
            return None;
        }
        let wanted = email.to_lowercase();
        self.users.values().find(|u| !u.email.is_empty() && u.email.to_lowercase() == wanted)
    }

    pub fn active_keys_of<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a KeyState> + 'a {
        self.keys.values().filter(move |k| !k.revoked && k.user_id == user_id)
    }
}

/// Folds one event into the state. No validation: events are facts.
pub fn apply(state: &mut WorkspaceState, event: &Event) {
    match event {
        Event::WorkspaceCreated { workspace_id, name, created } => {
            state.id = workspace_id.clone();
            state.exists = true;
            state.name = name.clone();
            state.enabled = true;
            state.created = Some(*created);
        }
        Event::WorkspaceRenamed { name } => state.name = name.clone(),
        Event::WorkspaceDisabled {} => state.enabled = false,
        Event::WorkspaceEnabled {} => state.enabled = true,
        Event::UserCreated {
            user_id,
            username,
            name,
            email,
            roles,
            enabled,
            must_change_password,
            password_hash,
            created,
            self_registered,
            number,
        } => {
            state.users.insert(
                user_id.clone(),
                UserState {
                    id: user_id.clone(),
                    username: username.clone(),
                    name: name.clone(),
                    email: email.clone(),
                    roles: roles.clone(),
                    enabled: *enabled,
                    must_change_password: *must_change_password,
                    password_hash: password_hash.clone(),
                    account_version: 1,
                    created: *created,
                    profile: Profile::default(),
                    self_registered: *self_registered,
                    number: *number,
                },
            );
        }
        Event::UserProfileChanged { user_id, first_name, last_name, ssh_key, verified, renewed } => {
            if let Some(u) = state.users.get_mut(user_id) {
                let p = &mut u.profile;
                if let Some(v) = first_name {
                    p.first_name = v.clone();
                }
                if let Some(v) = last_name {
                    p.last_name = v.clone();
                }
                if let Some(v) = ssh_key {
                    p.ssh_key = v.clone();
                }
                if let Some(v) = verified {
                    p.verified = *v;
                }
                if let Some(v) = renewed {
                    p.renewed = Some(*v);
                }
            }
        }
        Event::UserChanged { user_id, username, name, email, roles, must_change_password } => {
            if let Some(u) = state.users.get_mut(user_id) {
                if let Some(v) = username {
                    u.username = v.clone();
                }
                if let Some(v) = name {
                    u.name = v.clone();
                }
                if let Some(v) = email {
                    u.email = v.clone();
                }
                if let Some(v) = roles {
                    u.roles = v.clone();
                }
                if let Some(v) = must_change_password {
                    u.must_change_password = *v;
                }
            }
        }
        Event::UserNumbered { user_id, number } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.number = Some(*number);
            }
        }
        Event::UserImported { user_id, account_version, .. } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.account_version = *account_version;
            }
        }
        Event::UserPasswordRehashed { user_id, password_hash } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.password_hash = Some(password_hash.clone());
            }
        }
        Event::UserDisabled { user_id } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.enabled = false;
                u.account_version += 1;
            }
        }
        Event::UserEnabled { user_id } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.enabled = true;
            }
        }
        // The user's keys stay in `keys`, revoked, as history.
        Event::UserDeleted { user_id, .. } => {
            state.users.remove(user_id);
        }
        Event::UserPasswordChanged { user_id, password_hash } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.password_hash = Some(password_hash.clone());
                u.must_change_password = false;
                u.account_version += 1;
            }
        }
        Event::UserPasswordReset { user_id, password_hash } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.password_hash = Some(password_hash.clone());
                u.must_change_password = true;
                u.account_version += 1;
            }
        }
        Event::UserSessionsEnded { user_id, .. } => {
            if let Some(u) = state.users.get_mut(user_id) {
                u.account_version += 1;
            }
        }
        Event::ApiKeyCreated { key_id, user_id, name, prefix, expires, created, .. } => {
            state.keys.insert(
                key_id.clone(),
                KeyState {
                    id: key_id.clone(),
                    user_id: user_id.clone(),
                    name: name.clone(),
                    prefix: prefix.clone(),
                    expires: *expires,
                    created: *created,
                    revoked: false,
                },
            );
        }
        Event::ApiKeyRevoked { key_id, .. } => {
            if let Some(k) = state.keys.get_mut(key_id) {
                k.revoked = true;
            }
        }
        Event::SigningKeyCreated { .. }
        | Event::SigningKeyRetired { .. }
        | Event::SystemBootstrapped { .. }
        | Event::TokenMinted { .. }
        | Event::TokenIssued { .. }
        | Event::MailSent { .. } => {}
    }
}
