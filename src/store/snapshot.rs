//! Snapshots of workspace state: a cache that lets a workspace actor start from the state at
//! some version plus the events after it, instead of replaying its whole stream.
//!
//! The `snapshots` table (migration 0005) holds one row per stream: the version, the hash of
//! the stream's event at that version, the [`FORMAT`] of the serialised state, the state
//! (jsonb) and when it was taken. It is not history: `events` stays the only truth, nothing in
//! `iamd audit` reads it, and any row may be deleted at any time.
//!
//! [`load`] uses a snapshot only when its format is [`FORMAT`], the hash it stores is the hash
//! of the log's event at its version, and it decodes to the state of this workspace. Anything
//! else (a snapshot from an older release, a stale or foreign one, a row edited by SQL, a read
//! failure) is ignored with a log line and the whole stream is replayed: a snapshot can make a
//! load faster, never fail it. [`spawn_write`] stores a new snapshot in the background once a
//! stream is far enough past its last one ([`due`]); [`crate::audit::snapshots::verify`] (`iamd snapshots verify`)
//! replays each snapshot's stream up to its version and compares.

use super::{AppendError, EventStore};
use crate::domain::workspace::{self, WorkspaceState};
use crate::events::{current_schema_version, workspace_stream, Event};
use crate::protocol::IamError;
use deadpool_postgres::{GenericClient, Pool};
use futures_util::{pin_mut, TryStreamExt};

/// The shape of a serialised [`WorkspaceState`] and the meaning of `apply` it was folded with.
/// Bump it whenever `WorkspaceState` (or what it contains) changes shape, or `apply` (or an
/// upcast of an event it reads) changes what a stream folds to: every stored snapshot is then
/// ignored and rewritten from a replay. The `state_format_is_pinned` test fails first.
pub const FORMAT: i32 = 4;

/// A new snapshot is written once a stream is this many events past its last one, or a tenth
/// of its length for a long stream (see [`due`]).
pub const EVERY: i64 = 1_000;

/// The snapshot row if it can be used: its state is only sent when the format is ours and the
/// stored hash is the log's hash at that version (checked by the join, in one statement).
const SELECT_SNAPSHOT: &str = "SELECT s.version, s.format, s.hash, e.hash, \
    CASE WHEN s.format = $2 AND e.hash = s.hash THEN s.state::text END \
    FROM snapshots s LEFT JOIN events e ON e.stream = s.stream AND e.version = s.version \
    WHERE s.stream = $1";

/// The events after a version, only the columns `apply` needs, decoded as they arrive.
const SELECT_EVENTS: &str = "SELECT version, event_type, schema_version, payload::text, hash \
    FROM events WHERE stream = $1 AND version > $2 AND version <= $3 ORDER BY version";

/// Replaces a snapshot with one at the same or a later version (the same version replays to
/// the same state, and rewriting it repairs a row that did not decode), or with any one when
/// the stored row is unusable (another format, or a hash that is not the log's).
const UPSERT: &str = "INSERT INTO snapshots (stream, version, hash, format, state, taken_at) \
    VALUES ($1, $2, $3, $4, $5::text::jsonb, now()) \
    ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash, \
        format = EXCLUDED.format, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at \
    WHERE snapshots.version <= EXCLUDED.version OR snapshots.format <> EXCLUDED.format \
       OR NOT EXISTS (SELECT 1 FROM events e WHERE e.stream = snapshots.stream \
                      AND e.version = snapshots.version AND e.hash = snapshots.hash)";

/// A workspace's state as loaded, and how.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: WorkspaceState,
    /// The stream's last version (0 when empty) and that event's hash.
    pub version: i64,
    pub last_hash: String,
    /// The version of the snapshot the load started from, if one was used.
    pub snapshot: Option<i64>,
    /// Events replayed on top of the snapshot (or from the start).
    pub replayed: u64,
}

/// Loads a workspace: from its snapshot when one is usable, else from the start of its stream.
pub async fn load(store: &EventStore, id: &str) -> Result<Loaded, IamError> {
    let stream = workspace_stream(id);
    let client = store.pool().get().await.map_err(|e| AppendError::from(e).into_iam_error(&stream))?;
    let (mut state, mut version, mut last_hash, snapshot) = match read_snapshot(&client, &stream, id).await {
        Ok(Some((version, hash, state))) => (state, version, hash, Some(version)),
        Ok(None) => (WorkspaceState::new(id), 0, crate::events::hash::GENESIS.to_owned(), None),
        Err(why) => {
            tracing::warn!(%stream, %why, "snapshot unreadable, replaying the whole stream");
            (WorkspaceState::new(id), 0, crate::events::hash::GENESIS.to_owned(), None)
        }
    };
    let after = version;
    let replayed = replay_into(&client, &stream, &mut state, after, i64::MAX, |v, h| {
        version = v;
        last_hash = h;
    })
    .await?;
    tracing::debug!(%stream, version, snapshot, replayed, "workspace loaded");
    Ok(Loaded { state, version, last_hash, snapshot, replayed })
}

/// The usable snapshot of `stream`: `Ok(None)` when there is none or it must be ignored (the
/// reason is logged), `Err` when it could not be read or decoded.
async fn read_snapshot(
    client: &impl GenericClient,
    stream: &str,
    id: &str,
) -> Result<Option<(i64, String, WorkspaceState)>, String> {
    let stmt = client.prepare_cached(SELECT_SNAPSHOT).await.map_err(|e| e.to_string())?;
    let Some(row) = client.query_opt(&stmt, &[&stream, &FORMAT]).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let (version, format, hash, log_hash, state): (i64, i32, String, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if format != FORMAT {
        tracing::info!(stream, format, expected = FORMAT, "snapshot of another format ignored");
        return Ok(None);
    }
    if log_hash.as_deref() != Some(hash.as_str()) {
        tracing::warn!(stream, version, "snapshot does not match the log at its version; ignored");
        return Ok(None);
    }
    let state = decode_state(state.as_deref().unwrap_or_default())?;
    if state.id != id {
        tracing::warn!(stream, version, "snapshot holds another workspace; ignored");
        return Ok(None);
    }
    Ok(Some((version, hash, state)))
}

/// Decodes a stored state. The error names where it failed, never what was there (a state
/// holds password hashes, and serde's messages may quote the input).
pub(crate) fn decode_state(text: &str) -> Result<WorkspaceState, String> {
    serde_json::from_str(text).map_err(|e| {
        format!("undecodable state ({:?} error at line {} column {})", e.classify(), e.line(), e.column())
    })
}

/// Applies the events of `stream` in `(after, up_to]` to `state`, streaming them; `head` gets
/// the version and hash of every event applied. Returns how many were applied.
pub(crate) async fn replay_into(
    client: &impl GenericClient,
    stream: &str,
    state: &mut WorkspaceState,
    after: i64,
    up_to: i64,
    mut head: impl FnMut(i64, String),
) -> Result<u64, IamError> {
    let failed = |e: tokio_postgres::Error| AppendError::Database(e).into_iam_error(stream);
    let stmt = client.prepare_cached(SELECT_EVENTS).await.map_err(failed)?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&stream, &after, &up_to];
    let rows = client.query_raw(&stmt, params).await.map_err(failed)?;
    pin_mut!(rows);
    let mut applied = 0;
    while let Some(row) = rows.try_next().await.map_err(failed)? {
        let version: i64 = row.get(0);
        let event = decode_event(row.get(1), row.get(2), row.get(3)).map_err(|err| {
            tracing::error!(stream, version, error = %err, "undecodable event");
            IamError::internal()
        })?;
        workspace::apply(state, &event);
        head(version, row.get(4));
        applied += 1;
    }
    Ok(applied)
}

/// [`Event::from_columns`] from the payload's text. A payload already at today's schema
/// version has nothing to upcast and is parsed straight into the event, with no
/// intermediate `serde_json::Value`.
fn decode_event(event_type: &str, schema_version: i32, payload: &str) -> Result<Event, serde_json::Error> {
    if schema_version == current_schema_version(event_type) {
        let tag = serde_json::to_string(event_type)?;
        return serde_json::from_str(&format!("{{\"event_type\":{tag},\"payload\":{payload}}}"));
    }
    Event::from_columns(event_type, schema_version, serde_json::from_str(payload)?)
}

/// The state of workspace `id` replayed from the start of its stream up to `up_to`.
pub async fn replay(store: &EventStore, id: &str, up_to: i64) -> Result<WorkspaceState, IamError> {
    let stream = workspace_stream(id);
    let client = store.pool().get().await.map_err(|e| AppendError::from(e).into_iam_error(&stream))?;
    let mut state = WorkspaceState::new(id);
    replay_into(&client, &stream, &mut state, 0, up_to, |_, _| {}).await?;
    Ok(state)
}

/// True when a stream at `version` is far enough past its last snapshot to take a new one:
/// [`EVERY`] events, or a tenth of the stream when that is more. A snapshot costs about its
/// state's size (10 MB for a workspace of 100,000 events with 22,000 users), so a long
/// stream is snapshotted less often; what a load replays after one stays under a tenth.
pub fn due(version: i64, last_snapshot: i64) -> bool {
    version - last_snapshot >= EVERY.max(version / 10)
}

/// Stores `state` (the workspace at `version`, whose event has `hash`) as the stream's
/// snapshot, in the background: serialised on the blocking pool, upserted only if newer. A
/// failure is logged and nothing else; no command waits for it.
pub fn spawn_write(pool: Pool, id: String, version: i64, hash: String, state: WorkspaceState) {
    tokio::spawn(async move {
        let stream = workspace_stream(&id);
        match write(&pool, &stream, version, &hash, state).await {
            Ok(true) => tracing::debug!(%stream, version, "snapshot written"),
            Ok(false) => tracing::debug!(%stream, version, "a later snapshot exists; not written"),
            Err(e) => tracing::warn!(%stream, version, error = %e, "snapshot not written"),
        }
    });
}

/// Upserts the snapshot of `stream`; `Ok(false)` when the stored one is later (and usable).
pub async fn write(
    pool: &Pool,
    stream: &str,
    version: i64,
    hash: &str,
    state: WorkspaceState,
) -> anyhow::Result<bool> {
    let text = tokio::task::spawn_blocking(move || serde_json::to_string(&state)).await??;
    let client = pool.get().await?;
    let stmt = client.prepare_cached(UPSERT).await?;
    Ok(client.execute(&stmt, &[&stream, &version, &hash, &FORMAT, &text]).await? == 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::workspace::{KeyState, UserState};
    use chrono::{TimeZone, Utc};

    pub(crate) fn sample() -> WorkspaceState {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut s = WorkspaceState::new("acme");
        s.exists = true;
        s.name = "Acme".into();
        s.enabled = true;
        s.created = Some(t);
        s.users.insert(
            "u1".into(),
            UserState {
                id: "u1".into(),
                username: "alice".into(),
                name: "Alice".into(),
                email: "a@example.org".into(),
                roles: vec!["admin".into()],
                enabled: true,
                must_change_password: false,
                password_hash: Some("$argon2id$x".into()),
                account_version: 2,
                created: t,
                profile: Default::default(),
                self_registered: false,
                number: None,
            },
        );
        s.keys.insert(
            "k1".into(),
            KeyState {
                id: "k1".into(),
                user_id: "u1".into(),
                name: "ci".into(),
                prefix: "tg_abc".into(),
                expires: None,
                created: t,
                revoked: true,
            },
        );
        s
    }

    /// Changing the serialised shape of the state without bumping [`FORMAT`] would let loads
    /// misread old snapshots. If this fails: bump FORMAT, then update the expected document.
    #[test]
    fn state_format_is_pinned() {
        assert_eq!(FORMAT, 4);
        let expected = serde_json::json!({
            "id": "acme", "exists": true, "name": "Acme", "enabled": true,
            "created": "2026-01-02T03:04:05Z",
            "users": {"u1": {"id": "u1", "username": "alice", "name": "Alice",
                "email": "a@example.org", "roles": ["admin"], "enabled": true,
                "must_change_password": false, "password_hash": "$argon2id$x",
                "account_version": 2, "created": "2026-01-02T03:04:05Z",
                "profile": {"first_name": "", "last_name": "", "ssh_key": "", "verified": false,
                    "renewed": null}, "self_registered": false, "number": null}},
            "keys": {"k1": {"id": "k1", "user_id": "u1", "name": "ci", "prefix": "tg_abc",
                "expires": null, "created": "2026-01-02T03:04:05Z", "revoked": true}},
        });
        assert_eq!(serde_json::to_value(sample()).unwrap(), expected);
        assert_eq!(decode_state(&expected.to_string()).unwrap(), sample());
    }

    #[test]
    fn a_bad_state_is_an_error_that_quotes_nothing() {
        let err = decode_state(r#"{"id": "$argon2id$secret", "users": 5}"#).unwrap_err();
        assert!(!err.contains("argon2id"), "{err}");
        assert!(err.contains("line 1"), "{err}");
        assert!(decode_state("\"garbage\"").is_err());
    }

    #[test]
    fn events_decode_like_from_columns() {
        let now = Utc::now();
        for event in [
            Event::WorkspaceCreated { workspace_id: "w".into(), name: "W \"quoted\"".into(), created: now },
            Event::WorkspaceDisabled {},
            Event::ApiKeyCreated {
                key_id: "k".into(),
                user_id: "u".into(),
                name: "n".into(),
                prefix: "tg_x".into(),
                key_hash: "sha256:00".into(),
                expires: Some(now),
                created: now,
            },
        ] {
            let (t, p) = event.to_columns();
            assert_eq!(decode_event(&t, event.schema_version(), &p.to_string()).unwrap(), event);
        }
        // An older schema version is upcast; a later one is refused.
        let hex = "ab".repeat(32);
        let v1 = serde_json::json!({"key_id": "k", "user_id": "u", "name": "ci", "prefix": "tg_x",
            "key_hash": hex, "expires": null, "created": "2026-01-01T00:00:00Z"});
        let Event::ApiKeyCreated { key_hash, .. } =
            decode_event("api_key.created", 1, &v1.to_string()).unwrap()
        else {
            panic!("not an api_key.created");
        };
        assert_eq!(key_hash, format!("sha256:{hex}"));
        assert!(decode_event("workspace.enabled", 2, "{}").is_err());
        assert!(decode_event("no.such.event", 1, "{}").is_err());
    }

    #[test]
    fn a_snapshot_is_due_every_so_many_events() {
        assert!(!due(EVERY - 1, 0));
        assert!(due(EVERY, 0));
        assert!(!due(EVERY + 10, 11));
        // A long stream: a tenth of it.
        assert!(due(100_000, 0));
        assert!(!due(100_000, 91_000));
        assert!(due(100_000, 90_000));
    }
}
