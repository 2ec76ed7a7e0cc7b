//! `iamd audit replay --at T`: the workspaces, users and API keys as they stood at instant T,
//! rebuilt by folding each `workspace:*` stream's events recorded at or before T with the same
//! [`apply`] the actors use. The read is one read-only snapshot in keyset pages, never the whole
//! log at once. Nothing here prints or returns a password hash or a key hash.

use super::walk::{walk, Scope, PAGE};
use crate::domain::workspace::{apply, KeyState, WorkspaceState};
use crate::events::RecordedEvent;
use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::ops::ControlFlow;

/// Where an API key stood at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStanding {
    Valid,
    Revoked,
    Expired,
}

impl KeyStanding {
    /// A key is valid at `at` when it is not revoked and has no expiry or one after `at`.
    pub fn of(key: &KeyState, at: DateTime<Utc>) -> KeyStanding {
        if key.revoked {
            KeyStanding::Revoked
        } else if key.expires.is_some_and(|e| e <= at) {
            KeyStanding::Expired
        } else {
            KeyStanding::Valid
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStanding::Valid => "valid",
            KeyStanding::Revoked => "revoked",
            KeyStanding::Expired => "expired",
        }
    }
}

/// The pure part of a replay: fed events in `(stream, version)` order, it folds one
/// [`WorkspaceState`] per stream.
#[derive(Default)]
pub struct Fold {
    current: Option<WorkspaceState>,
    done: Vec<WorkspaceState>,
}

impl Fold {
    /// Folds the next event; fails (naming stream and version, never the payload) when it
    /// does not decode.
    pub fn feed(&mut self, e: &RecordedEvent) -> anyhow::Result<()> {
        let Some(id) = crate::events::workspace_of(&e.stream) else { return Ok(()) };
        let event = e.decode().map_err(|err| {
            anyhow::anyhow!(
                "stream {} version {}: event {} does not decode: {err}",
                e.stream,
                e.version,
                e.event_type
            )
        })?;
        if self.current.as_ref().is_none_or(|s| s.id != id) {
            self.close();
            self.current = Some(WorkspaceState::new(id));
        }
        let state = self.current.as_mut().expect("set just above");
        apply(state, &event);
        // `workspace.created` names the id too; the stream name stays the key.
        state.id = id.to_owned();
        Ok(())
    }

    fn close(&mut self) {
        if let Some(state) = self.current.take().filter(|s| s.exists) {
            self.done.push(state);
        }
    }

    /// The workspaces that existed, in stream order.
    pub fn finish(mut self) -> Vec<WorkspaceState> {
        self.close();
        self.done
    }
}

/// The workspaces (or only `workspace`) as they stood at `at`.
pub async fn replay(
    pool: &Pool,
    at: DateTime<Utc>,
    workspace: Option<&str>,
) -> anyhow::Result<Vec<WorkspaceState>> {
    replay_in_pages(pool, at, workspace, PAGE).await
}

/// [`replay`], reading `page` rows per round trip (tests use small pages to cross boundaries).
pub async fn replay_in_pages(
    pool: &Pool,
    at: DateTime<Utc>,
    workspace: Option<&str>,
    page: i64,
) -> anyhow::Result<Vec<WorkspaceState>> {
    let scope = Scope {
        stream: workspace.map(crate::events::workspace_stream),
        prefix: Some(crate::events::WORKSPACE_STREAM_PREFIX.to_owned()),
        until: Some(at),
    };
    let mut fold = Fold::default();
    walk(pool, &scope, page, |events| {
        for event in events {
            fold.feed(event)?;
        }
        Ok(ControlFlow::Continue(()))
    })
    .await
    .context("audit replay")?;
    Ok(fold.finish())
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

/// The text report: a line per workspace, then an indented line per user and per key.
pub fn render_text(workspaces: &[WorkspaceState], at: DateTime<Utc>) -> String {
    let mut out = String::new();
    for ws in workspaces {
        let _ = writeln!(out, "workspace {} {:?} {}", ws.id, ws.name, enabled(ws.enabled));
        for u in ws.users.values() {
            let _ = writeln!(
                out,
                "  user {} {} roles={} {} version={}",
                u.username,
                u.id,
                u.roles.join(","),
                enabled(u.enabled),
                u.account_version
            );
        }
        for k in ws.keys.values() {
            let standing = KeyStanding::of(k, at).as_str();
            let _ = writeln!(out, "  key {} {} of {} {standing}", k.name, k.id, k.user_id);
        }
    }
    out
}

/// The JSON report: `{"at", "workspaces": [{id, name, enabled, users, api_keys}]}`.
pub fn render_json(workspaces: &[WorkspaceState], at: DateTime<Utc>) -> Value {
    let workspaces: Vec<Value> = workspaces
        .iter()
        .map(|ws| {
            let users: Vec<Value> = ws
                .users
                .values()
                .map(|u| {
                    json!({"id": u.id, "username": u.username, "roles": u.roles,
                           "enabled": u.enabled, "account_version": u.account_version})
                })
                .collect();
            let keys: Vec<Value> = ws
                .keys
                .values()
                .map(|k| {
                    json!({"id": k.id, "user_id": k.user_id, "name": k.name,
                           "state": KeyStanding::of(k, at).as_str()})
                })
                .collect();
            json!({"id": ws.id, "name": ws.name, "enabled": ws.enabled,
                   "users": users, "api_keys": keys})
        })
        .collect();
    json!({"at": at.to_rfc3339_opts(SecondsFormat::AutoSi, true), "workspaces": workspaces})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, RevokeReason};
    use chrono::Duration;

    fn key(revoked: bool, expires: Option<DateTime<Utc>>) -> KeyState {
        KeyState {
            id: "k".into(),
            user_id: "u".into(),
            name: "laptop".into(),
            prefix: "tg_abc".into(),
            expires,
            created: Utc::now(),
            revoked,
        }
    }

    #[test]
    fn a_key_is_valid_until_revoked_or_expired() {
        let at = Utc::now();
        assert_eq!(KeyStanding::of(&key(false, None), at), KeyStanding::Valid);
        assert_eq!(KeyStanding::of(&key(false, Some(at + Duration::seconds(1))), at), KeyStanding::Valid);
        assert_eq!(KeyStanding::of(&key(false, Some(at)), at), KeyStanding::Expired);
        assert_eq!(KeyStanding::of(&key(false, Some(at - Duration::seconds(1))), at), KeyStanding::Expired);
        assert_eq!(KeyStanding::of(&key(true, None), at), KeyStanding::Revoked);
        assert_eq!(KeyStanding::of(&key(true, Some(at - Duration::seconds(1))), at), KeyStanding::Revoked);
    }

    fn recorded(stream: &str, version: i64, event: &Event) -> RecordedEvent {
        let (event_type, payload) = event.to_columns();
        RecordedEvent {
            position: version,
            stream: stream.into(),
            version,
            event_type,
            schema_version: event.schema_version(),
            payload,
            metadata: json!({}),
            recorded_at: Utc::now(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn history() -> Vec<RecordedEvent> {
        let now = Utc::now();
        let acme = [
            Event::WorkspaceCreated { workspace_id: "acme".into(), name: "Acme".into(), created: now },
            Event::UserCreated {
                user_id: "u1".into(),
                username: "alice".into(),
                name: "Alice".into(),
                email: String::new(),
                roles: vec!["reader".into(), "writer".into()],
                enabled: true,
                must_change_password: false,
                password_hash: Some("$argon2id$v=19$secret".into()),
                created: now,
                self_registered: false,
                number: None,
            },
            Event::ApiKeyCreated {
                key_id: "k1".into(),
                user_id: "u1".into(),
                name: "laptop".into(),
                prefix: "tg_abc".into(),
                key_hash: "deadbeef".into(),
                expires: None,
                created: now,
            },
            Event::ApiKeyRevoked { key_id: "k1".into(), reason: RevokeReason::Revoked },
            Event::UserDisabled { user_id: "u1".into() },
        ];
        let mut out: Vec<RecordedEvent> =
            acme.iter().enumerate().map(|(i, e)| recorded("workspace:acme", i as i64 + 1, e)).collect();
        // A stream with no workspace.created yet: it did not exist, so it is left out.
        out.push(recorded("workspace:ghost", 1, &Event::WorkspaceRenamed { name: "Ghost".into() }));
        out
    }

    #[test]
    fn streams_fold_into_workspaces_and_absent_ones_are_left_out() {
        let mut fold = Fold::default();
        for e in history() {
            fold.feed(&e).unwrap();
        }
        let states = fold.finish();
        assert_eq!(states.len(), 1);
        let acme = &states[0];
        assert_eq!((acme.id.as_str(), acme.name.as_str(), acme.enabled), ("acme", "Acme", true));
        let alice = &acme.users["u1"];
        assert_eq!((alice.enabled, alice.account_version), (false, 2));
        assert!(acme.keys["k1"].revoked);
    }

    #[test]
    fn the_reports_never_carry_hashes() {
        let mut fold = Fold::default();
        for e in history() {
            fold.feed(&e).unwrap();
        }
        let states = fold.finish();
        let at = Utc::now();
        let text = render_text(&states, at);
        assert_eq!(
            text,
            "workspace acme \"Acme\" enabled\n  user alice u1 roles=reader,writer disabled version=2\n  \
             key laptop k1 of u1 revoked\n"
        );
        let json = render_json(&states, at).to_string();
        for secret in ["$argon2", "deadbeef", "tg_"] {
            assert!(!text.contains(secret) && !json.contains(secret), "{secret} printed");
        }
        assert_eq!(render_json(&states, at)["workspaces"][0]["api_keys"][0]["state"], "revoked");
    }

    #[test]
    fn an_undecodable_event_names_its_place_not_its_payload() {
        let mut bad = recorded("workspace:acme", 3, &Event::WorkspaceDisabled {});
        bad.event_type = "workspace.exploded".into();
        bad.payload = json!({"password_hash": "$argon2id$x"});
        let err = Fold::default().feed(&bad).unwrap_err().to_string();
        assert!(err.starts_with("stream workspace:acme version 3"), "{err}");
        assert!(!err.contains("$argon2"), "{err}");
    }
}
