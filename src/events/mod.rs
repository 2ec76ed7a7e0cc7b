//! Events: what is stored in the log — the vocabulary only, no I/O. Types are dotted and
//! past-tense (`user.created`), each with a schema version; older versions are upcast on read
//! ([`upcast`]). [`hash`] chains them per stream; [`crate::store`] appends and reads them.

pub mod hash;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The stream of the system aggregate: signing keys and bootstrap.
pub const SYSTEM_STREAM: &str = "system";

/// What every workspace's stream name starts with.
pub const WORKSPACE_STREAM_PREFIX: &str = "workspace:";

/// The stream of workspace `workspace_id`: `workspace:<id>`.
pub fn workspace_stream(workspace_id: &str) -> String {
    format!("{WORKSPACE_STREAM_PREFIX}{workspace_id}")
}

/// The workspace id of a workspace's stream; `None` for any other stream (`system`).
pub fn workspace_of(stream: &str) -> Option<&str> {
    stream.strip_prefix(WORKSPACE_STREAM_PREFIX)
}

/// Why an API key stopped being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeReason {
    Revoked,
    UserDisabled,
    WorkspaceDisabled,
    UserDeleted,
}

/// Why a user's sessions ended, other than by its own event (a password change or reset,
/// disabling): every token issued before dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionsEndReason {
    /// logout-all: the user, or an admin for it, logged out everywhere.
    LogoutEverywhere,
    /// The email changed: a token was issued for the old address.
    EmailChanged,
    /// The user gained or lost the admin role: a token's `is_admin` would no longer hold.
    AdminRoleChanged,
    /// The email became verified, or stopped being: a verification token must not work twice.
    VerifiedChanged,
}

/// Why a user was deleted other than by delete-user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeletionReason {
    /// The cleanup job: the account registered itself and never verified its email within
    /// `cleanup.max_age`.
    UnverifiedExpired,
}

/// What an email token a mail carried is for; each is its own JWT audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailPurpose {
    /// Proves the address: verify-email marks the account verified.
    Verification,
    /// Sets a new password: complete-password-reset.
    PasswordReset,
}

impl MailPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            MailPurpose::Verification => "verification",
            MailPurpose::PasswordReset => "password-reset",
        }
    }

    /// The token's `aud` (Netsoc's names).
    pub fn audience(self) -> &'static str {
        match self {
            MailPurpose::Verification => "verification",
            MailPurpose::PasswordReset => "password_reset",
        }
    }
}

fn is_false(v: &bool) -> bool {
    !v
}

/// Every fact iamd records. Payloads hold no plaintext secret: passwords travel as argon2id
/// encodings, API keys as SHA-256, signing keys as public keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload")]
pub enum Event {
    #[serde(rename = "workspace.created")]
    WorkspaceCreated { workspace_id: String, name: String, created: DateTime<Utc> },
    #[serde(rename = "workspace.renamed")]
    WorkspaceRenamed { name: String },
    #[serde(rename = "workspace.disabled")]
    WorkspaceDisabled {},
    #[serde(rename = "workspace.enabled")]
    WorkspaceEnabled {},

    #[serde(rename = "user.created")]
    UserCreated {
        user_id: String,
        username: String,
        name: String,
        email: String,
        roles: Vec<String>,
        enabled: bool,
        must_change_password: bool,
        /// argon2id encoding; `None` for a user with no usable password (the bootstrap admin).
        password_hash: Option<String>,
        created: DateTime<Utc>,
        /// The account registered itself (self-registration): the cleanup job may delete it
        /// while it is unverified.
        #[serde(default, skip_serializing_if = "is_false")]
        self_registered: bool,
        /// The user's integer id (Netsoc's `id`, a token's `sub` on `/v1`): stable, never
        /// reused. Absent on users created before ids existed (`user.numbered` gives theirs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<i32>,
    },
    /// A user created before integer ids existed got one.
    #[serde(rename = "user.numbered")]
    UserNumbered { user_id: String, number: i32 },
    /// The user just created (the `user.created` before this event) was brought over from
    /// another system (`source`: `netsoc`), keeping its id there (the `number`), its account
    /// version (tokens that system issued stay valid until it moves) and its times.
    #[serde(rename = "user.imported")]
    UserImported {
        user_id: String,
        source: String,
        account_version: i64,
        created: DateTime<Utc>,
        updated: DateTime<Utc>,
    },
    /// A login found a password hash of an older scheme (an imported bcrypt hash) and stored
    /// the same password as argon2id. Not a password change: no session ends.
    #[serde(rename = "user.password.rehashed")]
    UserPasswordRehashed { user_id: String, password_hash: String },
    /// update-user: only the fields that changed are present.
    #[serde(rename = "user.changed")]
    UserChanged {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        roles: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        must_change_password: Option<bool>,
    },
    /// Bumps the account version: every token issued before dies.
    #[serde(rename = "user.disabled")]
    UserDisabled { user_id: String },
    #[serde(rename = "user.enabled")]
    UserEnabled { user_id: String },
    /// delete-user: the user is gone from the read tables and its username is free again.
    /// Its keys were revoked by the events just before; they stay in the log as history.
    #[serde(rename = "user.deleted")]
    UserDeleted {
        user_id: String,
        username: String,
        /// Absent: delete-user (the event's actor asked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<DeletionReason>,
    },
    /// change-password: clears must_change_password, bumps the account version.
    #[serde(rename = "user.password.changed")]
    UserPasswordChanged { user_id: String, password_hash: String },
    /// reset-password: sets must_change_password, bumps the account version.
    #[serde(rename = "user.password.reset")]
    UserPasswordReset { user_id: String, password_hash: String },
    /// Netsoc's account fields of a user changed: only those present. `ssh_key: ""` removes
    /// the key. A change of `verified` comes with a `user.sessions.ended`.
    #[serde(rename = "user.profile.changed")]
    UserProfileChanged {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssh_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renewed: Option<DateTime<Utc>>,
    },
    /// Bumps the account version: every token issued before dies (see [`SessionsEndReason`]).
    #[serde(rename = "user.sessions.ended")]
    UserSessionsEnded { user_id: String, reason: SessionsEndReason },

    #[serde(rename = "api_key.created")]
    ApiKeyCreated {
        key_id: String,
        user_id: String,
        name: String,
        prefix: String,
        /// The digest of the plaintext, algorithm-tagged: `sha256:<hex>` (schema version 2;
        /// version 1 stored bare hex, upcast on read).
        key_hash: String,
        expires: Option<DateTime<Utc>>,
        created: DateTime<Utc>,
    },
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked { key_id: String, reason: RevokeReason },
    /// mint-token: a token was issued to `user_id` (of this stream's workspace) to act in
    /// `workspace`, with `user_context` as its claim. `token_id` is the token's `jti`; the
    /// token itself is never recorded. The minter is the event's actor.
    #[serde(rename = "token.minted")]
    TokenMinted {
        user_id: String,
        workspace: String,
        token_id: String,
        expires: DateTime<Utc>,
        user_context: serde_json::Value,
    },
    /// issue-token: an admin (the event's actor) issued a long-lived token to `user_id` (of
    /// this stream's workspace), bound to its account version. `token_id` is its `jti`; the
    /// token itself is never recorded.
    #[serde(rename = "token.issued")]
    TokenIssued { user_id: String, token_id: String, expires: DateTime<Utc> },
    /// A mail carrying an email token (`purpose`) was handed to the SMTP server for
    /// `user_id`, or could not be (`failure` says why, as a category: never the address, the
    /// mail or the server's text). `token_id` is the token's `jti`; the token is never recorded.
    #[serde(rename = "mail.sent")]
    MailSent {
        user_id: String,
        purpose: MailPurpose,
        token_id: String,
        expires: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },

    /// The private half lives only in the `signing_keys` table. `algorithm`: EdDSA (iamd's
    /// tokens; absent from the payload) or ES256 (the `/v1` tokens); each has its own active key.
    #[serde(rename = "signing_key.created")]
    SigningKeyCreated {
        kid: String,
        public_key: String,
        created: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "crate::crypto::KeyAlgorithm::is_eddsa")]
        algorithm: crate::crypto::KeyAlgorithm,
    },
    #[serde(rename = "signing_key.retired")]
    SigningKeyRetired { kid: String, retired: DateTime<Utc>, valid_until: DateTime<Utc> },
    #[serde(rename = "system.bootstrapped")]
    SystemBootstrapped { workspace_id: String, user_id: String, key_id: String },
}

/// The schema version each event type is written with today. A type's version goes up when
/// its payload changes shape; [`upcast`] brings every older version to today's.
pub fn current_schema_version(event_type: &str) -> i32 {
    match event_type {
        // v2: `key_hash` is algorithm-tagged (`sha256:<hex>`); v1 held bare hex.
        "api_key.created" => 2,
        _ => 1,
    }
}

impl Event {
    /// Splits an event into its stored columns: (event_type, payload).
    pub fn to_columns(&self) -> (String, serde_json::Value) {
        let mut value = serde_json::to_value(self).expect("events always serialise");
        let obj = value.as_object_mut().expect("tagged enum is an object");
        let event_type = obj
            .remove("event_type")
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("tagged enum has a tag");
        let payload = obj.remove("payload").unwrap_or_else(|| serde_json::json!({}));
        (event_type, payload)
    }

    /// Reads stored columns back, upcasting older schema versions first. A version newer than
    /// this release knows (written by a later iamd) is refused rather than misread.
    pub fn from_columns(
        event_type: &str,
        schema_version: i32,
        payload: serde_json::Value,
    ) -> Result<Event, serde_json::Error> {
        let current = current_schema_version(event_type);
        if schema_version > current || schema_version < 1 {
            return Err(serde::de::Error::custom(format!(
                "{event_type} schema version {schema_version} is unknown to this release (it reads 1 to {current})"
            )));
        }
        let payload = upcast(event_type, schema_version, payload);
        serde_json::from_value(serde_json::json!({ "event_type": event_type, "payload": payload }))
    }

    /// The schema version this event is written with.
    pub fn schema_version(&self) -> i32 {
        current_schema_version(self.event_type())
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            Event::WorkspaceCreated { .. } => "workspace.created",
            Event::WorkspaceRenamed { .. } => "workspace.renamed",
            Event::WorkspaceDisabled {} => "workspace.disabled",
            Event::WorkspaceEnabled {} => "workspace.enabled",
            Event::UserCreated { .. } => "user.created",
            Event::UserNumbered { .. } => "user.numbered",
            Event::UserImported { .. } => "user.imported",
            Event::UserPasswordRehashed { .. } => "user.password.rehashed",
            Event::UserChanged { .. } => "user.changed",
            Event::UserDisabled { .. } => "user.disabled",
            Event::UserEnabled { .. } => "user.enabled",
            Event::UserDeleted { .. } => "user.deleted",
            Event::UserPasswordChanged { .. } => "user.password.changed",
            Event::UserPasswordReset { .. } => "user.password.reset",
            Event::UserSessionsEnded { .. } => "user.sessions.ended",
            Event::UserProfileChanged { .. } => "user.profile.changed",
            Event::ApiKeyCreated { .. } => "api_key.created",
            Event::ApiKeyRevoked { .. } => "api_key.revoked",
            Event::TokenMinted { .. } => "token.minted",
            Event::TokenIssued { .. } => "token.issued",
            Event::MailSent { .. } => "mail.sent",
            Event::SigningKeyCreated { .. } => "signing_key.created",
            Event::SigningKeyRetired { .. } => "signing_key.retired",
            Event::SystemBootstrapped { .. } => "system.bootstrapped",
        }
    }
}

/// Brings a stored payload of an older schema version to the current shape, one step
/// (version N → N+1) at a time. The stored row is never rewritten: its hash covers what was
/// written, and `iamd audit verify` checks that. A change to a payload adds a step here, bumps
/// [`current_schema_version`] and adds a test.
pub fn upcast(event_type: &str, schema_version: i32, mut payload: serde_json::Value) -> serde_json::Value {
    let mut version = schema_version;
    while version < current_schema_version(event_type) {
        // api_key.created 1 → 2: the bare hex SHA-256 becomes `sha256:<hex>`.
        if let ("api_key.created", 1) = (event_type, version) {
            if let Some(serde_json::Value::String(digest)) = payload.get_mut("key_hash") {
                *digest = format!("{}{digest}", crate::crypto::api_key::DIGEST_TAG);
            }
        }
        version += 1;
    }
    payload
}

/// Who did it, and through what: stored with every event, never holding a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub request_id: String,
    /// The transport: `http`, `kafka`, `cli` or `system`.
    #[serde(default)]
    pub source: String,
    /// The protocol operation that caused the event.
    #[serde(default)]
    pub operation: String,
}

/// An event as read back from the log.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

impl RecordedEvent {
    pub fn decode(&self) -> Result<Event, serde_json::Error> {
        Event::from_columns(&self.event_type, self.schema_version, self.payload.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_for_every_shape() {
        let now = Utc::now();
        let events = vec![
            Event::WorkspaceCreated { workspace_id: "w".into(), name: "W".into(), created: now },
            Event::WorkspaceDisabled {},
            Event::UserChanged {
                user_id: "u".into(),
                username: None,
                name: Some("n".into()),
                email: None,
                roles: None,
                must_change_password: None,
            },
            Event::ApiKeyRevoked { key_id: "k".into(), reason: RevokeReason::UserDisabled },
            Event::ApiKeyRevoked { key_id: "k".into(), reason: RevokeReason::UserDeleted },
            Event::UserDeleted { user_id: "u".into(), username: "alice".into(), reason: None },
        ];
        for e in events {
            let (t, p) = e.to_columns();
            assert_eq!(t, e.event_type());
            assert_eq!(Event::from_columns(&t, e.schema_version(), p).unwrap(), e);
        }
    }

    #[test]
    fn user_deleted_and_its_revoke_reason_have_their_wire_names() {
        let (t, p) =
            Event::UserDeleted { user_id: "u".into(), username: "alice".into(), reason: None }.to_columns();
        assert_eq!(
            (t.as_str(), p),
            ("user.deleted", serde_json::json!({"user_id": "u", "username": "alice"}))
        );
        let (_, p) =
            Event::ApiKeyRevoked { key_id: "k".into(), reason: RevokeReason::UserDeleted }.to_columns();
        assert_eq!(p, serde_json::json!({"key_id": "k", "reason": "user-deleted"}));
    }

    #[test]
    fn api_key_created_v1_is_upcast_to_a_tagged_digest() {
        let hex = "ab".repeat(32);
        let v1 = serde_json::json!({"key_id": "k", "user_id": "u", "name": "ci", "prefix": "tg_x",
            "key_hash": hex, "expires": null, "created": "2026-01-01T00:00:00Z"});
        let Event::ApiKeyCreated { key_hash, .. } =
            Event::from_columns("api_key.created", 1, v1.clone()).unwrap()
        else {
            panic!("not an api_key.created");
        };
        assert_eq!(key_hash, format!("sha256:{hex}"));
        assert_eq!(crate::crypto::ApiKeyHash::from_tagged(&key_hash).unwrap().to_hex(), hex);
        // Today's events are written at v2 and read back unchanged.
        let event = Event::from_columns("api_key.created", 1, v1).unwrap();
        assert_eq!(event.schema_version(), 2);
        let (t, p) = event.to_columns();
        assert_eq!(Event::from_columns(&t, 2, p).unwrap(), event);
        // Other types are still at v1 and pass through.
        assert_eq!(Event::WorkspaceEnabled {}.schema_version(), 1);
    }

    #[test]
    fn a_schema_version_from_a_later_release_is_refused_not_misread() {
        let err = Event::from_columns(
            "api_key.revoked",
            2,
            serde_json::json!({"key_id": "k", "reason": "revoked"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("api_key.revoked schema version 2 is unknown to this release"), "{err}");
        assert!(Event::from_columns("workspace.enabled", 0, serde_json::json!({})).is_err());
    }

    #[test]
    fn changed_fields_only_are_stored() {
        let (_, p) = Event::UserChanged {
            user_id: "u".into(),
            username: None,
            name: Some("n".into()),
            email: None,
            roles: None,
            must_change_password: None,
        }
        .to_columns();
        assert_eq!(p, serde_json::json!({"user_id": "u", "name": "n"}));
    }
}
