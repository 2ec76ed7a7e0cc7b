//! The PostgreSQL event store. [`EventStore::append`] writes a command's events to one or more
//! streams in ONE transaction together with the inline projections, username reservations,
//! the private half of a new signing key (sealed with the KEK when one is configured) and the
//! processed-request record. Optimistic
//! concurrency comes from `UNIQUE (stream, version)`: a second writer gets
//! [`AppendError::Conflict`] and nothing of its command is kept. What committed is counted in
//! the store's [`CommitCounters`] (API keys created and revoked), after the commit.

use crate::crypto::{seal, Kek, SigningKey};
use crate::events::hash::{self, HashInput};
use crate::events::{Event, Metadata, RecordedEvent};
use crate::metrics::CommitCounters;
use crate::projections::{
    self,
    key_cache::{self, Change, KeyCache},
};
use crate::protocol::{ErrorKind, IamError};
use chrono::Utc;
use deadpool_postgres::{GenericClient, Pool};
use std::sync::Arc;
use tokio_postgres::error::SqlState;

const INSERT_EVENT: &str = "INSERT INTO events (stream, version, event_type, schema_version, \
    payload, metadata, recorded_at, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    RETURNING position";
const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys (kid, public_key, private_key, kek, \
    created, algorithm) VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_PROCESSED: &str = "INSERT INTO processed_requests (caller, request_id, digest, operation, \
    response) VALUES ($1, $2, $3, $4, $5)";
/// Invalidations of the resolve-api-key cache, delivered to every listener at commit.
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const SELECT_PROCESSED: &str =
    "SELECT operation, digest, response FROM processed_requests WHERE caller = $1 AND request_id = $2";
const SELECT_STREAM: &str = "SELECT position, stream, version, event_type, schema_version, payload, \
    metadata, recorded_at, prev_hash, hash FROM events WHERE stream = $1 ORDER BY version";

/// New events for one stream, written after `expected_version` whose hash was `last_hash`.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: String,
    pub expected_version: i64,
    pub last_hash: String,
    pub events: Vec<Event>,
}

/// What makes a request idempotent: who sent it, the id it gave, and a keyed digest of what
/// it asked (operation and fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// `gateway` (Kafka, or HTTP with the gateway secret), `user:<id>` (a user's bearer).
    pub caller: String,
    pub request_id: String,
    pub digest: String,
}

/// The processed-request record committed with the events.
#[derive(Debug, Clone)]
pub struct Dedupe {
    pub key: RequestKey,
    pub operation: String,
    /// The reply without one-time secrets.
    pub response: serde_json::Value,
}

/// An already applied request, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub operation: String,
    /// None for records kept from before digests were recorded.
    pub digest: Option<String>,
    pub response: serde_json::Value,
}

/// Everything one command commits.
#[derive(Debug, Default)]
pub struct Append {
    pub streams: Vec<StreamAppend>,
    pub metadata: Metadata,
    /// A new signing key whose private half goes to `signing_keys` (never to the log).
    pub signing_key: Option<SigningKey>,
    pub dedupe: Option<Dedupe>,
}

/// Where a stream stands after an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    pub stream: String,
    pub version: i64,
    pub last_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to this stream first: reload and decide again.
    #[error("version conflict on stream {0}")]
    Conflict(String),
    /// A uniqueness reservation is taken (e.g. the username).
    #[error("{0}")]
    Duplicate(String),
    /// This caller's request id was already applied; answer from the processed-request record.
    #[error("request already processed")]
    AlreadyProcessed,
    /// Told by [`crate::db::error_line`], and not its `source()`: the driver's error chain
    /// quotes the row (a unique violation's DETAIL).
    #[error("event store: {}", crate::db::error_line(.0))]
    Database(tokio_postgres::Error),
    #[error("event store: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl From<tokio_postgres::Error> for AppendError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppendError::Database(e)
    }
}

impl AppendError {
    /// The protocol error a caller sees for this failure on `stream`; the cause is logged.
    pub fn into_iam_error(self, stream: &str) -> IamError {
        match self {
            AppendError::Duplicate(message) => IamError::duplicate(message),
            AppendError::Conflict(_) => {
                tracing::warn!(stream, "version conflict persisted after a reload");
                IamError::new(ErrorKind::InternalError, "concurrent modification; retry the request")
            }
            other => {
                tracing::error!(stream, error = %other, "event store failure");
                IamError::internal()
            }
        }
    }
}

/// The log and the tables written with it.
#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    /// Counts what appends committed; shared by every clone, registered by
    /// [`crate::metrics::Metrics`].
    commits: Arc<CommitCounters>,
    /// The resolve-api-key cache appends invalidate (and notify other processes of).
    key_cache: Arc<KeyCache>,
    /// Seals the private half of a new signing key; None: stored unsealed.
    kek: Option<Kek>,
}

impl EventStore {
    /// A store whose key cache stays offline (never used) until a listener puts it online.
    pub fn new(pool: Pool) -> Self {
        Self::with_key_cache(pool, KeyCache::new(0, std::time::Duration::ZERO))
    }

    pub fn with_key_cache(pool: Pool, key_cache: Arc<KeyCache>) -> Self {
        EventStore { pool, commits: Arc::default(), key_cache, kek: None }
    }

    /// This store, sealing new signing keys' private halves with `kek`.
    pub fn sealing_with(self, kek: Option<Kek>) -> Self {
        EventStore { kek, ..self }
    }

    /// The resolve-api-key cache this store's appends keep current.
    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.key_cache
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What this store (and its clones) committed so far.
    pub fn commit_counters(&self) -> &CommitCounters {
        &self.commits
    }

    /// Appends atomically; returns the new head of every stream written.
    pub async fn append(&self, append: Append) -> Result<Vec<StreamHead>, AppendError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let result = write(&tx, &append, self.kek.as_ref()).await;
        match result {
            Ok((heads, changes)) => {
                tx.commit().await.map_err(classify)?;
                // Before the command replies: this process's next resolve sees the change.
                self.key_cache.invalidate(&changes);
                let events = append.streams.iter().flat_map(|s| &s.events);
                let created = events.clone().filter(|e| matches!(e, Event::ApiKeyCreated { .. })).count();
                let revoked = events.filter(|e| matches!(e, Event::ApiKeyRevoked { .. })).count();
                self.commits.committed(created as u64, revoked as u64);
                Ok(heads)
            }
            Err(e) => {
                // Dropping the transaction rolls it back.
                Err(e)
            }
        }
    }

    /// Every event of a stream, in version order.
    pub async fn load_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, AppendError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(SELECT_STREAM).await?;
        let rows = client.query(&stmt, &[&stream]).await?;
        Ok(rows.iter().map(recorded_from_row).collect())
    }

    /// The record of the request `caller` sent as `request_id`, if it was applied.
    pub async fn processed(&self, caller: &str, request_id: &str) -> Result<Option<Processed>, AppendError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(SELECT_PROCESSED).await?;
        Ok(client.query_opt(&stmt, &[&caller, &request_id]).await?.map(|r| Processed {
            operation: r.get(0),
            digest: r.get(1),
            response: r.get(2),
        }))
    }
}

pub fn recorded_from_row(row: &tokio_postgres::Row) -> RecordedEvent {
    RecordedEvent {
        position: row.get("position"),
        stream: row.get("stream"),
        version: row.get("version"),
        event_type: row.get("event_type"),
        schema_version: row.get("schema_version"),
        payload: row.get("payload"),
        metadata: row.get("metadata"),
        recorded_at: row.get("recorded_at"),
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    }
}

/// Writes everything of `append`; returns the streams' new heads and what the events change
/// about resolving API keys (already notified, delivered at commit).
async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    append: &Append,
    kek: Option<&Kek>,
) -> Result<(Vec<StreamHead>, Vec<Change>), AppendError> {
    let recorded_at = hash::truncate(Utc::now());
    let metadata = serde_json::to_value(&append.metadata).expect("metadata serialises");
    let insert = tx.prepare_cached(INSERT_EVENT).await?;
    let mut heads = Vec::with_capacity(append.streams.len());
    let mut changes = Vec::new();
    for sa in &append.streams {
        let mut prev = sa.last_hash.clone();
        let mut version = sa.expected_version;
        for event in &sa.events {
            version += 1;
            let (event_type, payload) = event.to_columns();
            let schema_version = event.schema_version();
            let hash = hash::event_hash(&HashInput {
                prev_hash: &prev,
                stream: &sa.stream,
                version,
                event_type: &event_type,
                schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            });
            tx.query_one(
                &insert,
                &[
                    &sa.stream,
                    &version,
                    &event_type,
                    &schema_version,
                    &payload,
                    &metadata,
                    &recorded_at,
                    &prev,
                    &hash,
                ],
            )
            .await
            .map_err(classify)?;
            changes.extend(key_cache::changes(&sa.stream, event));
            let ctx = projections::Context { stream: &sa.stream, recorded_at };
            for w in projections::writes(&ctx, event) {
                let stmt = tx.prepare_cached(w.shape.sql()).await?;
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    w.params.iter().map(|p| p.as_ref() as _).collect();
                tx.execute(&stmt, &params).await.map_err(classify)?;
            }
            prev = hash;
        }
        heads.push(StreamHead { stream: sa.stream.clone(), version, last_hash: prev });
    }
    if let Some(key) = &append.signing_key {
        let stmt = tx.prepare_cached(INSERT_SIGNING_KEY).await?;
        let (private, sealed_by) = seal::store(kek, &seal::signing_key_name(&key.kid), key.private_pkcs8());
        let algorithm = key.algorithm.as_str();
        tx.execute(
            &stmt,
            &[&key.kid, &key.public.as_slice(), &private, &sealed_by, &key.created, &algorithm],
        )
        .await
        .map_err(classify)?;
    }
    if let Some(d) = &append.dedupe {
        let stmt = tx.prepare_cached(INSERT_PROCESSED).await?;
        tx.execute(&stmt, &[&d.key.caller, &d.key.request_id, &d.key.digest, &d.operation, &d.response])
            .await
            .map_err(classify)?;
    }
    if let Some(payload) = key_cache::payload(&changes) {
        let stmt = tx.prepare_cached(NOTIFY).await?;
        tx.execute(&stmt, &[&key_cache::CHANNEL, &payload]).await.map_err(classify)?;
    }
    Ok((heads, changes))
}

/// Turns a unique violation into the typed error it stands for.
fn classify(err: tokio_postgres::Error) -> AppendError {
    if err.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return AppendError::Database(err);
    }
    let constraint = err.as_db_error().and_then(|e| e.constraint()).unwrap_or_default().to_owned();
    match constraint.as_str() {
        "events_stream_version" => AppendError::Conflict(String::new()),
        "processed_requests_pkey" => AppendError::AlreadyProcessed,
        "unique_usernames_pkey" => AppendError::Duplicate("username is already taken".into()),
        "workspaces_pkey" => AppendError::Duplicate("workspace already exists".into()),
        "api_keys_pkey" | "api_keys_id_key" => AppendError::Duplicate("api key already exists".into()),
        _ => AppendError::Database(err),
    }
}
