//! The system aggregate (stream `system`): JWT signing keys and the one-time bootstrap.

use crate::crypto::KeyAlgorithm;
use crate::domain::workspace::WorkspaceState;
use crate::events::Event;
use crate::protocol::IamError;
use chrono::{DateTime, Duration, Utc};

pub const BOOTSTRAP_WORKSPACE: &str = "default";
pub const BOOTSTRAP_USERNAME: &str = "admin";

#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub kid: String,
    pub public_key: String,
    pub created: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub algorithm: KeyAlgorithm,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemState {
    pub bootstrapped: bool,
    /// Every signing key ever created; of each algorithm, the last one without `valid_until`
    /// is active.
    pub keys: Vec<KeyInfo>,
}

impl SystemState {
    /// The active EdDSA key (iamd's own tokens).
    pub fn active_key(&self) -> Option<&KeyInfo> {
        self.active_key_for(KeyAlgorithm::EdDSA)
    }

    pub fn active_key_for(&self, algorithm: KeyAlgorithm) -> Option<&KeyInfo> {
        self.keys.iter().rev().find(|k| k.valid_until.is_none() && k.algorithm == algorithm)
    }
}

pub fn apply(state: &mut SystemState, event: &Event) {
    match event {
        Event::SigningKeyCreated { kid, public_key, created, algorithm } => state.keys.push(KeyInfo {
            kid: kid.clone(),
            public_key: public_key.clone(),
            created: *created,
            valid_until: None,
            algorithm: *algorithm,
        }),
        Event::SigningKeyRetired { kid, valid_until, .. } => {
            if let Some(k) = state.keys.iter_mut().find(|k| k.kid == *kid) {
                k.valid_until = Some(*valid_until);
            }
        }
        Event::SystemBootstrapped { .. } => state.bootstrapped = true,
        _ => {}
    }
}

/// A new key pair's public facts (the private half stays with the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub kid: String,
    pub public_key: String,
    pub algorithm: KeyAlgorithm,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SystemCommand {
    /// Creates a signing key when there is no active one of its algorithm (start-up).
    EnsureSigningKey { key: NewKey },
    /// Introduces `key`; the active key of its algorithm keeps validating for `grace` (at
    /// least one hour).
    RotateSigningKey { key: NewKey, grace: Duration },
    /// Creates the first admin (and workspace `default` unless it exists). `admin_exists`
    /// is what the read tables said: bootstrap is a no-op once any user holds `admin`.
    Bootstrap {
        user_id: String,
        key_id: String,
        key_hash: String,
        prefix: String,
        signing_key: NewKey,
        admin_exists: bool,
        /// The admin's integer id (see `user.created`'s `number`).
        number: Option<i32>,
    },
}

/// Events for the system stream and for the `default` workspace's stream.
#[derive(Debug, Default, PartialEq)]
pub struct SystemDecision {
    pub system: Vec<Event>,
    pub default_workspace: Vec<Event>,
}

impl SystemDecision {
    pub fn is_empty(&self) -> bool {
        self.system.is_empty() && self.default_workspace.is_empty()
    }
}

fn created(key: &NewKey, now: DateTime<Utc>) -> Event {
    Event::SigningKeyCreated {
        kid: key.kid.clone(),
        public_key: key.public_key.clone(),
        created: now,
        algorithm: key.algorithm,
    }
}

/// `default_ws` is the state of the `default` workspace. Bootstrap is a no-op once it was
/// recorded or an admin exists; a `default` workspace that already exists (TrustGraph's
/// bootstrapper creates it first) receives the admin, and must be enabled.
pub fn decide(
    state: &SystemState,
    default_ws: &WorkspaceState,
    command: &SystemCommand,
    now: DateTime<Utc>,
) -> Result<SystemDecision, IamError> {
    match command {
        SystemCommand::EnsureSigningKey { key } => Ok(SystemDecision {
            system: match state.active_key_for(key.algorithm) {
                None => vec![created(key, now)],
                Some(_) => vec![],
            },
            ..Default::default()
        }),
        SystemCommand::RotateSigningKey { key, grace } => {
            if *grace < Duration::hours(1) {
                return Err(IamError::invalid("signing grace period must be at least 1h"));
            }
            let mut system = vec![created(key, now)];
            if let Some(old) = state.active_key_for(key.algorithm) {
                system.push(Event::SigningKeyRetired {
                    kid: old.kid.clone(),
                    retired: now,
                    valid_until: now + *grace,
                });
            }
            Ok(SystemDecision { system, ..Default::default() })
        }
        SystemCommand::Bootstrap { user_id, key_id, key_hash, prefix, signing_key, admin_exists, number } => {
            if state.bootstrapped || *admin_exists {
                return Ok(SystemDecision::default());
            }
            if default_ws.exists && !default_ws.enabled {
                return Err(IamError::disabled("workspace default is disabled"));
            }
            let mut system = Vec::new();
            if state.active_key().is_none() {
                system.push(created(signing_key, now));
            }
            system.push(Event::SystemBootstrapped {
                workspace_id: BOOTSTRAP_WORKSPACE.into(),
                user_id: user_id.clone(),
                key_id: key_id.clone(),
            });
            let mut default_workspace = Vec::new();
            if !default_ws.exists {
                default_workspace.push(Event::WorkspaceCreated {
                    workspace_id: BOOTSTRAP_WORKSPACE.into(),
                    name: "Default".into(),
                    created: now,
                });
            }
            default_workspace.extend([
                Event::UserCreated {
                    user_id: user_id.clone(),
                    username: BOOTSTRAP_USERNAME.into(),
                    name: "Administrator".into(),
                    email: String::new(),
                    roles: vec!["admin".into()],
                    enabled: true,
                    must_change_password: false,
                    password_hash: None,
                    created: now,
                    self_registered: false,
                    number: *number,
                },
                Event::ApiKeyCreated {
                    key_id: key_id.clone(),
                    user_id: user_id.clone(),
                    name: "bootstrap".into(),
                    prefix: prefix.clone(),
                    key_hash: key_hash.clone(),
                    expires: None,
                    created: now,
                },
            ]);
            Ok(SystemDecision { system, default_workspace })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;

    fn key(kid: &str) -> NewKey {
        NewKey { kid: kid.into(), public_key: format!("pem-{kid}"), algorithm: KeyAlgorithm::EdDSA }
    }

    fn given(events: &[Event]) -> SystemState {
        let mut s = SystemState::default();
        events.iter().for_each(|e| apply(&mut s, e));
        s
    }

    fn bootstrap() -> SystemCommand {
        SystemCommand::Bootstrap {
            user_id: "u1".into(),
            key_id: "k1".into(),
            key_hash: "ab".into(),
            prefix: "tg_a".into(),
            signing_key: key("s1"),
            admin_exists: false,
            number: Some(1),
        }
    }

    #[test]
    fn ensure_creates_a_key_only_when_none_is_active() {
        let now = Utc::now();
        let cmd = SystemCommand::EnsureSigningKey { key: key("a") };
        let d = decide(&SystemState::default(), &WorkspaceState::new("default"), &cmd, now).unwrap();
        assert_eq!(d.system, vec![created(&key("a"), now)]);
        let state = given(&d.system);
        assert!(decide(&state, &WorkspaceState::new("default"), &cmd, now).unwrap().is_empty());
    }

    #[test]
    fn rotation_retires_the_active_key_after_the_grace_period() {
        let now = Utc::now();
        let state = given(&[created(&key("a"), now)]);
        let cmd = SystemCommand::RotateSigningKey { key: key("b"), grace: Duration::hours(2) };
        let d = decide(&state, &WorkspaceState::new("default"), &cmd, now).unwrap();
        assert_eq!(
            d.system,
            vec![
                created(&key("b"), now),
                Event::SigningKeyRetired {
                    kid: "a".into(),
                    retired: now,
                    valid_until: now + Duration::hours(2)
                }
            ]
        );
        assert_eq!(
            given(&[created(&key("a"), now), d.system[0].clone(), d.system[1].clone()])
                .active_key()
                .unwrap()
                .kid,
            "b"
        );
    }

    #[test]
    fn rotation_refuses_a_grace_below_one_hour() {
        let cmd = SystemCommand::RotateSigningKey { key: key("b"), grace: Duration::minutes(59) };
        let err =
            decide(&SystemState::default(), &WorkspaceState::new("default"), &cmd, Utc::now()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn bootstrap_creates_workspace_admin_key_and_signing_key_once() {
        let now = Utc::now();
        let d = decide(&SystemState::default(), &WorkspaceState::new("default"), &bootstrap(), now).unwrap();
        assert_eq!(d.system.len(), 2);
        assert_eq!(d.default_workspace.len(), 3);
        match &d.default_workspace[1] {
            Event::UserCreated { username, roles, password_hash, .. } => {
                assert_eq!(username, "admin");
                assert_eq!(roles, &vec!["admin".to_string()]);
                assert!(password_hash.is_none(), "the bootstrap admin has no usable password");
            }
            other => panic!("unexpected {other:?}"),
        }
        let state = given(&d.system);
        assert!(decide(&state, &WorkspaceState::new("default"), &bootstrap(), now).unwrap().is_empty());
    }

    #[test]
    fn bootstrap_creates_the_admin_in_a_default_workspace_that_exists_already() {
        let mut ws = WorkspaceState::new("default");
        ws.exists = true;
        ws.enabled = true;
        let d = decide(&SystemState::default(), &ws, &bootstrap(), Utc::now()).unwrap();
        assert_eq!(d.system.len(), 2, "a signing key and the bootstrap record");
        let types: Vec<_> = d.default_workspace.iter().map(Event::event_type).collect();
        assert_eq!(types, ["user.created", "api_key.created"]);
        ws.enabled = false;
        let err = decide(&SystemState::default(), &ws, &bootstrap(), Utc::now()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Disabled);
    }

    #[test]
    fn bootstrap_is_a_no_op_once_an_admin_exists() {
        let cmd = match bootstrap() {
            SystemCommand::Bootstrap { user_id, key_id, key_hash, prefix, signing_key, .. } => {
                SystemCommand::Bootstrap {
                    user_id,
                    key_id,
                    key_hash,
                    prefix,
                    signing_key,
                    admin_exists: true,
                    number: None,
                }
            }
            other => other,
        };
        let ws = WorkspaceState::new("default");
        assert!(decide(&SystemState::default(), &ws, &cmd, Utc::now()).unwrap().is_empty());
    }

    #[test]
    fn bootstrap_reuses_an_existing_signing_key() {
        let now = Utc::now();
        let state = given(&[created(&key("a"), now)]);
        let d = decide(&state, &WorkspaceState::new("default"), &bootstrap(), now).unwrap();
        assert_eq!(d.system.len(), 1);
        assert!(matches!(d.system[0], Event::SystemBootstrapped { .. }));
    }
}
