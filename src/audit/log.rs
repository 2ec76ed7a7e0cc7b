//! `iamd audit log`: the history as people read it. One entry per event, in the order the log
//! recorded them (position), each saying when, who (actor), through what (source, request id,
//! operation), on what (target) and what changed — never a password hash or a key digest
//! ([`super::redact`]). Filters: one workspace, one user (events about the user, and events the
//! user caused), an interval. The read is one read-only snapshot in keyset pages.

use super::redact::public_payload;
use crate::events::{Event, Metadata, RecordedEvent, SessionsEndReason};
use crate::store::recorded_from_row;
use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use serde_json::{json, Value};

/// Rows per round trip.
const PAGE: i64 = 5_000;

/// Which events the log shows; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only the stream of this workspace.
    pub workspace: Option<String>,
    /// Only events about this user (its own events and those of its API keys) or caused by it.
    pub user: Option<String>,
    /// Only events recorded at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only events recorded at or before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub metadata: Metadata,
    /// What the event is about, e.g. `user u-1` or `api key k-2`.
    pub target: String,
    /// What changed, in words; never a secret or a hash.
    pub change: String,
    /// The payload without its withheld fields.
    pub payload: Value,
    /// The payload fields that were withheld (hashes).
    pub withheld: Vec<&'static str>,
}

/// `$1`: the last position read; `$2`: page size; `$3`–`$6`: the filters, NULL when unused;
/// `$7`: the user's API keys. A revocation names only the key, so a user's keys are found
/// first, through their creation ([`SELECT_KEYS`]).
const SELECT: &str = "SELECT position, stream, version, event_type, schema_version, payload, metadata, \
    recorded_at, prev_hash, hash FROM events \
    WHERE position > $1 \
      AND ($3::text IS NULL OR stream = $3) \
      AND ($4::text IS NULL \
           OR payload->>'user_id' = $4 \
           OR metadata->>'actor' = $4 \
           OR (event_type = 'api_key.revoked' AND payload->>'key_id' = ANY($7))) \
      AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
      AND ($6::timestamptz IS NULL OR recorded_at <= $6) \
    ORDER BY position LIMIT $2";

/// The ids of the API keys created for user `$1`.
const SELECT_KEYS: &str =
    "SELECT payload->>'key_id' FROM events WHERE event_type = 'api_key.created' AND payload->>'user_id' = $1";

/// Hands every entry the filter selects to `visit`, in log order, a page at a time.
pub async fn read(
    pool: &Pool,
    filter: &Filter,
    mut visit: impl FnMut(&Entry) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut client = pool.get().await.context("connecting to read the log")?;
    let tx = crate::db::read_only_snapshot(&mut client).await.context("starting a snapshot of the log")?;
    let keys: Vec<String> = match &filter.user {
        Some(user) => tx
            .query(SELECT_KEYS, &[user])
            .await
            .context("reading the user's keys")?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        None => Vec::new(),
    };
    let stmt = tx.prepare(SELECT).await?;
    let stream = filter.workspace.as_deref().map(crate::events::workspace_stream);
    let (mut after, mut shown) = (0_i64, 0_u64);
    loop {
        let rows = tx
            .query(&stmt, &[&after, &PAGE, &stream, &filter.user, &filter.since, &filter.until, &keys])
            .await
            .context("reading the log")?;
        for row in &rows {
            let entry = entry(&recorded_from_row(row))?;
            visit(&entry)?;
            shown += 1;
            after = entry.position;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    tx.commit().await?;
    Ok(shown)
}

/// Describes one recorded event; fails (naming stream and version, never the payload) when
/// it does not decode.
pub fn entry(e: &RecordedEvent) -> anyhow::Result<Entry> {
    let event = e
        .decode()
        .with_context(|| format!("event {} v{} ({}) does not decode", e.stream, e.version, e.event_type))?;
    let metadata: Metadata = serde_json::from_value(e.metadata.clone()).unwrap_or_default();
    let (target, change) = describe(&e.stream, &event);
    let (payload, withheld) = public_payload(&e.payload);
    Ok(Entry {
        position: e.position,
        recorded_at: e.recorded_at,
        stream: e.stream.clone(),
        version: e.version,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        metadata,
        target,
        change,
        payload,
        withheld,
    })
}

/// (target, what changed) in words.
pub fn describe(stream: &str, event: &Event) -> (String, String) {
    let workspace = crate::events::workspace_of(stream).unwrap_or(stream);
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    match event {
        Event::WorkspaceCreated { workspace_id, name, .. } => {
            (format!("workspace {workspace_id}"), format!("created, name {name:?}"))
        }
        Event::WorkspaceRenamed { name } => {
            (format!("workspace {workspace}"), format!("renamed to {name:?}"))
        }
        Event::WorkspaceDisabled {} => {
            (format!("workspace {workspace}"), "disabled (its API keys revoked, logins refused)".into())
        }
        Event::WorkspaceEnabled {} => (format!("workspace {workspace}"), "enabled".into()),
        Event::UserCreated {
            user_id,
            username,
            name,
            email,
            roles,
            enabled,
            must_change_password,
            password_hash,
            self_registered,
            ..
        } => (
            format!("user {user_id}"),
            format!(
                "{}: username {username:?}, name {name:?}, email {email:?}, roles [{}], {}{}, {}",
                if *self_registered { "registered itself" } else { "created" },
                roles.join(", "),
                if *enabled { "enabled" } else { "disabled" },
                if *must_change_password { ", must change password" } else { "" },
                if password_hash.is_some() { "password set" } else { "no password" },
            ),
        ),
        Event::UserChanged { user_id, username, name, email, roles, must_change_password } => {
            let mut changes = Vec::new();
            if let Some(v) = username {
                changes.push(format!("username {v:?}"));
            }
            if let Some(v) = name {
                changes.push(format!("name {v:?}"));
            }
            if let Some(v) = email {
                changes.push(format!("email {v:?}"));
            }
            if let Some(v) = roles {
                changes.push(format!("roles [{}]", v.join(", ")));
            }
            if let Some(v) = must_change_password {
                changes.push(format!("must change password {v}"));
            }
            (format!("user {user_id}"), format!("changed: {}", changes.join(", ")))
        }
        Event::UserDisabled { user_id } => {
            (format!("user {user_id}"), "disabled (its sessions ended, its API keys revoked)".into())
        }
        Event::UserEnabled { user_id } => (format!("user {user_id}"), "enabled".into()),
        Event::UserDeleted { user_id, username, reason } => {
            let why = match reason {
                Some(crate::events::DeletionReason::UnverifiedExpired) => {
                    ", by the cleanup job: self-registered and never verified"
                }
                None => "",
            };
            (format!("user {user_id}"), format!("deleted (username {username:?} freed{why})"))
        }
        Event::UserImported { user_id, source, account_version, .. } => (
            format!("user {user_id}"),
            format!("imported from {source} (its id and account version {account_version} kept)"),
        ),
        Event::UserPasswordRehashed { user_id, .. } => (
            format!("user {user_id}"),
            "password hash upgraded to argon2id at a login (no session ended)".into(),
        ),
        Event::UserPasswordChanged { user_id, .. } => {
            (format!("user {user_id}"), "password changed (its sessions ended)".into())
        }
        Event::UserPasswordReset { user_id, .. } => (
            format!("user {user_id}"),
            "password reset to a temporary one (must change it; its sessions ended)".into(),
        ),
        Event::UserProfileChanged { user_id, first_name, last_name, ssh_key, verified, renewed } => {
            let mut changes = Vec::new();
            if let Some(v) = first_name {
                changes.push(format!("first name {v:?}"));
            }
            if let Some(v) = last_name {
                changes.push(format!("last name {v:?}"));
            }
            if let Some(v) = ssh_key {
                changes.push(if v.is_empty() { "ssh key removed".into() } else { "ssh key set".into() });
            }
            if let Some(v) = verified {
                changes.push(if *v { "verified".into() } else { "no longer verified".into() });
            }
            if let Some(v) = renewed {
                changes.push(format!("renewed {}", time(v)));
            }
            (format!("user {user_id}"), format!("profile: {}", changes.join(", ")))
        }
        Event::UserSessionsEnded { user_id, reason } => (
            format!("user {user_id}"),
            format!(
                "sessions ended ({})",
                match reason {
                    SessionsEndReason::LogoutEverywhere => "logged out everywhere",
                    SessionsEndReason::EmailChanged => "its email changed",
                    SessionsEndReason::AdminRoleChanged => "it gained or lost the admin role",
                    SessionsEndReason::VerifiedChanged => "its email's verification changed",
                }
            ),
        ),
        Event::ApiKeyCreated { key_id, user_id, name, prefix, expires, .. } => (
            format!("api key {key_id}"),
            format!(
                "created for user {user_id}: name {name:?}, prefix {prefix}, {}",
                expires
                    .as_ref()
                    .map(|t| format!("expires {}", time(t)))
                    .unwrap_or_else(|| "no expiry".into())
            ),
        ),
        Event::ApiKeyRevoked { key_id, reason } => (
            format!("api key {key_id}"),
            format!(
                "revoked ({})",
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
        ),
        Event::TokenMinted { user_id, workspace, token_id, expires, .. } => (
            format!("user {user_id}"),
            format!("token {token_id} minted to act in workspace {workspace}, expires {}", time(expires)),
        ),
        Event::TokenIssued { user_id, token_id, expires } => {
            (format!("user {user_id}"), format!("token {token_id} issued, expires {}", time(expires)))
        }
        Event::UserNumbered { user_id, number } => (format!("user {user_id}"), format!("numbered {number}")),
        Event::MailSent { user_id, purpose, token_id, expires, failure } => {
            let outcome = match failure {
                None => "sent".to_owned(),
                Some(why) => format!("NOT sent ({why})"),
            };
            (
                format!("user {user_id}"),
                format!("{} mail {outcome}: token {token_id}, expires {}", purpose.as_str(), time(expires)),
            )
        }
        Event::SigningKeyCreated { kid, algorithm, .. } => {
            (format!("signing key {kid}"), format!("created ({})", algorithm.curve()))
        }
        Event::SigningKeyRetired { kid, valid_until, .. } => {
            (format!("signing key {kid}"), format!("retired; verifies tokens until {}", time(valid_until)))
        }
        Event::SystemBootstrapped { workspace_id, user_id, key_id } => (
            "system".into(),
            format!("bootstrapped: workspace {workspace_id}, admin user {user_id}, admin API key {key_id}"),
        ),
    }
}

/// One text line: time, position, actor and transport, target, change.
pub fn render_text(e: &Entry) -> String {
    let m = &e.metadata;
    let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    format!(
        "{}  #{:<6} {:<22} by {} via {} (request {}, {})  {}: {}",
        e.recorded_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        e.position,
        e.event_type,
        or_dash(&m.actor),
        or_dash(&m.source),
        or_dash(&m.request_id),
        or_dash(&m.operation),
        e.target,
        e.change
    )
}

/// One JSON line.
pub fn render_json(e: &Entry) -> Value {
    let mut line = json!({
        "position": e.position,
        "recorded_at": e.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "stream": e.stream,
        "version": e.version,
        "event_type": e.event_type,
        "schema_version": e.schema_version,
        "actor": e.metadata.actor,
        "source": e.metadata.source,
        "request_id": e.metadata.request_id,
        "operation": e.metadata.operation,
        "target": e.target,
        "change": e.change,
        "payload": e.payload,
    });
    if !e.withheld.is_empty() {
        line["withheld"] = json!(e.withheld);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RevokeReason;

    fn recorded(stream: &str, event: &Event) -> RecordedEvent {
        let (event_type, payload) = event.to_columns();
        RecordedEvent {
            position: 7,
            stream: stream.into(),
            version: 3,
            event_type,
            schema_version: event.schema_version(),
            payload,
            metadata: json!({"actor": "u-admin", "request_id": "r-1", "source": "http", "operation": "create-user"}),
            recorded_at: Utc::now(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_created_user_is_described_without_its_password_hash() {
        let e = recorded(
            "workspace:acme",
            &Event::UserCreated {
                user_id: "u-1".into(),
                username: "alice".into(),
                name: "Alice".into(),
                email: "a@example.org".into(),
                roles: vec!["reader".into()],
                enabled: true,
                must_change_password: false,
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
                created: Utc::now(),
                self_registered: false,
                number: None,
            },
        );
        let entry = entry(&e).unwrap();
        assert_eq!(entry.target, "user u-1");
        assert!(entry.change.contains("username \"alice\"") && entry.change.contains("password set"));
        let text = render_text(&entry);
        let json = render_json(&entry).to_string();
        for out in [&text, &json] {
            assert!(!out.contains("argon2"), "{out}");
        }
        assert!(text.contains("by u-admin via http (request r-1, create-user)"), "{text}");
        assert_eq!(render_json(&entry)["withheld"], json!(["password_hash"]));
    }

    #[test]
    fn a_key_is_named_by_id_and_prefix_and_never_by_digest() {
        let digest = "ab".repeat(32);
        let e = recorded(
            "workspace:acme",
            &Event::ApiKeyCreated {
                key_id: "k-1".into(),
                user_id: "u-1".into(),
                name: "ci".into(),
                prefix: "tg_x".into(),
                key_hash: digest.clone(),
                expires: None,
                created: Utc::now(),
            },
        );
        let entry = entry(&e).unwrap();
        assert_eq!(entry.change, "created for user u-1: name \"ci\", prefix tg_x, no expiry");
        assert!(!render_json(&entry).to_string().contains(&digest));
        let revoked = entry_of(
            "workspace:acme",
            &Event::ApiKeyRevoked { key_id: "k-1".into(), reason: RevokeReason::UserDeleted },
        );
        assert_eq!(
            (revoked.target.as_str(), revoked.change.as_str()),
            ("api key k-1", "revoked (user-deleted)")
        );
    }

    fn entry_of(stream: &str, event: &Event) -> Entry {
        entry(&recorded(stream, event)).unwrap()
    }

    #[test]
    fn a_change_lists_only_what_changed() {
        let e = entry_of(
            "workspace:acme",
            &Event::UserChanged {
                user_id: "u-1".into(),
                username: None,
                name: None,
                email: None,
                roles: Some(vec!["admin".into()]),
                must_change_password: None,
            },
        );
        assert_eq!(e.change, "changed: roles [admin]");
        let e = entry_of("workspace:acme", &Event::WorkspaceRenamed { name: "Acme 2".into() });
        assert_eq!((e.target.as_str(), e.change.as_str()), ("workspace acme", "renamed to \"Acme 2\""));
    }

    #[test]
    fn an_event_that_does_not_decode_is_named_without_its_payload() {
        let mut e = recorded("workspace:acme", &Event::WorkspaceEnabled {});
        e.event_type = "user.created".into();
        e.payload = json!({"password_hash": "secret-ish"});
        let err = entry(&e).unwrap_err().to_string();
        assert!(err.contains("workspace:acme v3") && !err.contains("secret-ish"), "{err}");
    }
}
