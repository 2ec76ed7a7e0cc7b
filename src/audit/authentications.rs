//! The authentication audit (`docs/authentication-audit.md`): every login and
//! resolve-api-key outcome, and every failed HTTP bearer authentication, becomes a row of
//! `authentications` that auditors read through `GET /api/v1/audit/authentications` and
//! `iamd audit authentications`.
//!
//! Recording stays off the request's path: [`Recorder::record`] is a non-blocking `try_send`
//! into a bounded channel; a background [`Writer`] writes what accumulates as one multi-row
//! `INSERT … SELECT FROM UNNEST(…)` per batch. Nothing is lost silently: a record that finds
//! the queue full, or whose batch the database still refuses after a few retries, is counted
//! in `iamd_authentications_dropped_total`; a written one in `…_recorded_total`.
//!
//! A record names the attempt, never its secret: no password, API key or hash. `key_id` is
//! the key's public id (known only when the key was found); `username` is the name of the
//! user a login found. A name that finds no user may be a password typed into the wrong
//! field: it is kept only as `username_digest`, a keyed digest (HMAC-SHA256 under the
//! server's digest key) that shows repeated attempts on one name without holding it. The
//! reason bucket is for auditors: callers always get the one `auth-failed`.

use crate::config::AuthenticationAuditSettings;
use crate::crypto::DigestKey;
use crate::metrics::AuthenticationCounters;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Longest text kept from caller input (usernames, workspaces, request ids); longer is cut.
pub const MAX_FIELD: usize = 256;
/// Retries of a batch the database refused, and the wait before each.
const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(1600)];
/// How long a write may wait for the table lock before it counts as a failed attempt.
const LOCK_TIMEOUT: &str = "5s";

/// Why an attempt ended as it did: a bucket for auditors, never told to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Authenticated.
    Ok,
    /// Nothing that could be checked: an empty username or password, an oversized field, a
    /// key without the `tg_` prefix, a bearer that is neither an API key nor a JWT.
    Malformed,
    /// No user has that username (login), or the token's subject is gone (JWT).
    UnknownUser,
    /// The user exists; the password does not match.
    BadPassword,
    /// The user exists but has no password set.
    NoPassword,
    /// The user or its workspace is disabled (the credential itself was right).
    Disabled,
    /// The right password, but the login named another workspace than the user's.
    WrongWorkspace,
    /// No key has that digest: never issued, or revoked (a revoked key's row is gone, so the
    /// two cannot be told apart).
    RevokedOrUnknown,
    /// The key exists but its expiry has passed.
    Expired,
    /// A JWT whose signature, expiry, issuer or algorithm does not verify.
    InvalidToken,
    /// A JWT signed with a key (`kid`) iamd does not know.
    UnknownSigningKey,
    /// A JWT of an older account version: the user logged out everywhere or changed password.
    StaleToken,
    /// iamd could not decide (the database was unavailable, signing failed).
    Error,
    /// authenticate-anonymous: iamd grants no anonymous access.
    AnonymousRefused,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::Ok,
        Reason::Malformed,
        Reason::UnknownUser,
        Reason::BadPassword,
        Reason::NoPassword,
        Reason::Disabled,
        Reason::WrongWorkspace,
        Reason::RevokedOrUnknown,
        Reason::Expired,
        Reason::InvalidToken,
        Reason::UnknownSigningKey,
        Reason::StaleToken,
        Reason::Error,
        Reason::AnonymousRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Malformed => "malformed",
            Reason::UnknownUser => "unknown-user",
            Reason::BadPassword => "bad-password",
            Reason::NoPassword => "no-password",
            Reason::Disabled => "disabled",
            Reason::WrongWorkspace => "wrong-workspace",
            Reason::RevokedOrUnknown => "revoked-or-unknown",
            Reason::Expired => "expired",
            Reason::InvalidToken => "invalid-token",
            Reason::UnknownSigningKey => "unknown-signing-key",
            Reason::StaleToken => "stale-token",
            Reason::Error => "error",
            Reason::AnonymousRefused => "anonymous-refused",
        }
    }
}

/// `success` or `failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// What the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    Password,
    ApiKey,
    Jwt,
    /// No credential at all (authenticate-anonymous).
    Anonymous,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::ApiKey => "api-key",
            CredentialKind::Jwt => "jwt",
            CredentialKind::Anonymous => "anonymous",
        }
    }
}

/// Where the decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOperation {
    Login,
    ResolveApiKey,
    /// The `Authorization: Bearer` of an HTTP call (failures only).
    HttpBearer,
    /// TrustGraph's gateway asking for anonymous access (always refused).
    AuthenticateAnonymous,
}

impl AuthOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOperation::Login => "login",
            AuthOperation::ResolveApiKey => "resolve-api-key",
            AuthOperation::HttpBearer => "http-bearer",
            AuthOperation::AuthenticateAnonymous => "authenticate-anonymous",
        }
    }
}

/// Where a request came from, as its transport knows it. The HTTP adapter fills `client`
/// from the connection's peer address; nothing a caller writes in a request body can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The transport: `http`, `kafka`, `cli`.
    pub source: String,
    /// The client's address (the HTTP peer's IP), when known.
    pub client: Option<String>,
    /// The transport's request id (HTTP: the `X-Request-Id` of the response), used when the
    /// request names none of its own.
    pub request_id: Option<String>,
    /// Who the transport authenticated, when it did: `gateway` (its secret), `user:<id>` (a
    /// user's bearer). What scopes the caller's idempotency keys.
    pub caller: Option<String>,
}

impl Origin {
    /// A transport with nothing more known.
    pub fn of(source: &str) -> Origin {
        Origin { source: source.to_owned(), ..Default::default() }
    }

    /// Whose request ids these are: the authenticated caller; else the gateway for Kafka
    /// (the only writer on its request topic), else the transport (`cli`, `http`).
    pub fn idempotency_caller(&self) -> String {
        match (&self.caller, self.source.as_str()) {
            (Some(caller), _) => caller.clone(),
            (None, "kafka") => "gateway".to_owned(),
            (None, source) => source.to_owned(),
        }
    }

    /// This origin, with the end client's address as a trusted relay (the API gateway over
    /// Kafka or with its secret) reported it in `client_ip`; unchanged when it reported none.
    pub fn relayed(self, client_ip: &str) -> Origin {
        match clip(client_ip) {
            Some(client) => Origin { client: Some(client), ..self },
            None => self,
        }
    }
}

/// One authentication outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When iamd began deciding.
    pub at: DateTime<Utc>,
    pub reason: Reason,
    pub credential: CredentialKind,
    pub operation: AuthOperation,
    pub workspace: Option<String>,
    pub user_id: Option<String>,
    /// The API key's id (never the key or its digest); `None` when no key was found.
    pub key_id: Option<String>,
    /// The username of the user a login found.
    pub username: Option<String>,
    /// A login naming no user: the keyed digest of the name it gave (never the name).
    pub username_digest: Option<String>,
    pub client: Option<String>,
    pub source: String,
    pub request_id: Option<String>,
}

impl Attempt {
    /// An attempt that has decided nothing yet: its reason is [`Reason::Error`] until the
    /// deciding code says otherwise, so an early `?` is recorded as an error. The request's
    /// own id wins over the transport's.
    pub fn new(
        operation: AuthOperation,
        credential: CredentialKind,
        origin: &Origin,
        request_id: &str,
    ) -> Attempt {
        Attempt {
            at: Utc::now(),
            reason: Reason::Error,
            credential,
            operation,
            workspace: None,
            user_id: None,
            key_id: None,
            username: None,
            username_digest: None,
            client: origin.client.as_deref().and_then(clip),
            source: origin.source.clone(),
            request_id: clip(request_id).or_else(|| origin.request_id.as_deref().and_then(clip)),
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.reason == Reason::Ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Caller text as a column may hold it: `None` when empty, NUL characters removed (no
/// PostgreSQL text holds one), at most [`MAX_FIELD`] bytes (cut at a character boundary).
pub fn clip(s: &str) -> Option<String> {
    let mut out: String = s.chars().filter(|c| *c != '\0').collect();
    if out.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    (!out.is_empty()).then_some(out)
}

enum Msg {
    Record(Attempt),
    /// Write everything sent before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending side: cheap to clone, never waits.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    counters: AuthenticationCounters,
}

/// The receiving side, not yet running: [`Writer::run`] writes until every [`Recorder`] is
/// gone.
pub struct Writer {
    rx: mpsc::Receiver<Msg>,
    counters: AuthenticationCounters,
    batch: usize,
    flush_interval: Duration,
    coalesce_resolves: bool,
}

/// One row to write: an attempt, or — with `coalesce_resolves` — the successful
/// resolve-api-key attempts of one key from one client and source taken in one batch: the
/// first attempt's fields, how many there were and when the last began.
struct Row {
    attempt: Attempt,
    count: i32,
    last_at: Option<DateTime<Utc>>,
}

/// What makes successful resolves one row: the key, the client, the source.
type ResolveKey = (String, Option<String>, String);

/// A batch being filled.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    /// Where each coalesced key's row is in `rows`.
    resolves: std::collections::HashMap<ResolveKey, usize>,
    /// Attempts taken (at least `rows.len()`).
    attempts: u64,
}

impl Batch {
    fn push(&mut self, attempt: Attempt, coalesce: bool) {
        self.attempts += 1;
        let coalescible = coalesce
            && attempt.operation == AuthOperation::ResolveApiKey
            && attempt.reason == Reason::Ok
            && attempt.key_id.is_some();
        if coalescible {
            let key =
                (attempt.key_id.clone().unwrap_or_default(), attempt.client.clone(), attempt.source.clone());
            if let Some(&i) = self.resolves.get(&key) {
                let row = &mut self.rows[i];
                row.count = row.count.saturating_add(1);
                row.last_at = Some(row.last_at.map_or(attempt.at, |t| t.max(attempt.at)));
                return;
            }
            self.resolves.insert(key, self.rows.len());
        }
        self.rows.push(Row { attempt, count: 1, last_at: None });
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.resolves.clear();
        self.attempts = 0;
    }
}

impl Recorder {
    /// A recorder and its writer, not started (see [`Recorder::start`]).
    pub fn new(
        settings: &AuthenticationAuditSettings,
        counters: AuthenticationCounters,
    ) -> (Recorder, Writer) {
        let (tx, rx) = mpsc::channel(settings.queue.clamp(1, AuthenticationAuditSettings::MAX_QUEUE));
        let writer = Writer {
            rx,
            counters: counters.clone(),
            batch: settings.batch.max(1),
            flush_interval: settings.flush_interval,
            coalesce_resolves: settings.coalesce_resolves,
        };
        (Recorder { tx, counters }, writer)
    }

    /// A recorder whose writer runs on the current tokio runtime, writing to `pool`. Outside
    /// a runtime there is no writer: every record is dropped and counted.
    pub fn start(
        pool: Pool,
        settings: &AuthenticationAuditSettings,
        counters: AuthenticationCounters,
    ) -> Recorder {
        let (recorder, writer) = Recorder::new(settings, counters);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(writer.run(pool));
            }
            Err(_) => {
                tracing::warn!("authentication audit: no runtime for its writer; records will be dropped")
            }
        }
        recorder
    }

    /// Queues one record without waiting; when the queue is full (or the writer is gone) the
    /// record is dropped and counted.
    pub fn record(&self, attempt: Attempt) {
        // Counted as queued first, so that the writer never takes it off a gauge below zero.
        self.counters.queued.inc();
        if self.tx.try_send(Msg::Record(attempt)).is_err() {
            self.counters.queued.dec();
            self.counters.dropped.inc();
        }
    }

    /// Waits until everything recorded before this call is written (or dropped), at most
    /// `within`; false when the time ran out or the writer is gone.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, written) = oneshot::channel();
        tokio::time::timeout(within, async move {
            self.tx.send(Msg::Flush(done)).await.is_ok() && written.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

impl Writer {
    /// Writes batches until every recorder is dropped: a batch is what arrived within
    /// `flush_interval` of its first record, at most `batch` rows, cut short by a flush.
    pub async fn run(mut self, pool: Pool) {
        let mut batch = Batch::default();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut incoming: Vec<Msg> = Vec::with_capacity(self.batch);
        let mut closed = false;
        while !closed {
            if self.rx.recv_many(&mut incoming, self.batch).await == 0 {
                break;
            }
            self.take(&mut incoming, &mut batch, &mut flushes);
            let deadline = Instant::now() + self.flush_interval;
            while batch.rows.len() < self.batch && flushes.is_empty() {
                let room = self.batch - batch.rows.len();
                match tokio::time::timeout_at(deadline, self.rx.recv_many(&mut incoming, room)).await {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(_) => self.take(&mut incoming, &mut batch, &mut flushes),
                    Err(_) => break,
                }
            }
            if !batch.rows.is_empty() {
                write_with_retries(&pool, &batch, &self.counters).await;
                batch.clear();
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    fn take(&self, incoming: &mut Vec<Msg>, batch: &mut Batch, flushes: &mut Vec<oneshot::Sender<()>>) {
        for msg in incoming.drain(..) {
            match msg {
                Msg::Record(a) => {
                    self.counters.queued.dec();
                    batch.push(a, self.coalesce_resolves);
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
    }
}

/// Writes `batch`, retrying with backoff; when every try failed, counts it dropped and logs
/// one line (the database's message and code, never a record).
async fn write_with_retries(pool: &Pool, batch: &Batch, counters: &AuthenticationCounters) {
    let mut tries = 0;
    loop {
        match write(pool, &batch.rows).await {
            Ok(()) => {
                counters.recorded.inc_by(batch.attempts);
                return;
            }
            Err(e) if tries < RETRY_BACKOFF.len() => {
                tracing::debug!(error = %e, records = batch.attempts, "authentication audit: write failed; retrying");
                tokio::time::sleep(RETRY_BACKOFF[tries]).await;
                tries += 1;
            }
            Err(e) => {
                counters.dropped.inc_by(batch.attempts);
                tracing::warn!(
                    error = %e, records = batch.attempts,
                    "authentication audit: records dropped, the database refused them after retries"
                );
                return;
            }
        }
    }
}

const INSERT: &str = "INSERT INTO authentications \
    (at, outcome, reason, credential, operation, workspace, user_id, key_id, username, client, source, request_id, \
     count, last_at, username_digest) \
    SELECT at, outcome, reason, credential, operation, workspace, user_id, key_id, username, client, source, request_id, \
     count, last_at, username_digest \
    FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int4[], $14::timestamptz[], \
                $15::text[]) \
         WITH ORDINALITY \
         AS r(at, outcome, reason, credential, operation, workspace, user_id, key_id, username, client, source, request_id, \
              count, last_at, username_digest, n) \
    ORDER BY n";

/// One transaction: the table lock (ids then commit in the order they are taken, so paging
/// by id never skips a row that commits late), one INSERT of the whole batch.
async fn write(pool: &Pool, rows: &[Row]) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| format!("no database connection: {e}"))?;
    let statement = client.prepare_cached(INSERT).await.map_err(describe)?;
    let tx = client.transaction().await.map_err(describe)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; LOCK TABLE authentications IN EXCLUSIVE MODE"
    ))
    .await
    .map_err(describe)?;
    let batch: Vec<&Attempt> = rows.iter().map(|r| &r.attempt).collect();
    let column = |f: fn(&Attempt) -> Option<&str>| batch.iter().map(|a| f(a)).collect::<Vec<_>>();
    let at: Vec<DateTime<Utc>> = batch.iter().map(|a| a.at).collect();
    let outcome: Vec<&str> = batch.iter().map(|a| a.outcome().as_str()).collect();
    let reason: Vec<&str> = batch.iter().map(|a| a.reason.as_str()).collect();
    let credential: Vec<&str> = batch.iter().map(|a| a.credential.as_str()).collect();
    let operation: Vec<&str> = batch.iter().map(|a| a.operation.as_str()).collect();
    let source: Vec<&str> = batch.iter().map(|a| a.source.as_str()).collect();
    let workspace = column(|a| a.workspace.as_deref());
    let user_id = column(|a| a.user_id.as_deref());
    let key_id = column(|a| a.key_id.as_deref());
    let username = column(|a| a.username.as_deref());
    let username_digest = column(|a| a.username_digest.as_deref());
    let client_address = column(|a| a.client.as_deref());
    let request_id = column(|a| a.request_id.as_deref());
    let count: Vec<i32> = rows.iter().map(|r| r.count).collect();
    let last_at: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.last_at).collect();
    tx.execute(
        &statement,
        &[
            &at,
            &outcome,
            &reason,
            &credential,
            &operation,
            &workspace,
            &user_id,
            &key_id,
            &username,
            &client_address,
            &source,
            &request_id,
            &count,
            &last_at,
            &username_digest,
        ],
    )
    .await
    .map_err(describe)?;
    tx.commit().await.map_err(describe)
}

/// A database error as one line: the server's message and SQLSTATE (never its DETAIL, which
/// could quote a row), or the client's error.
fn describe(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// What the audit keeps of a name that found no user: the keyed digest of its comparison key
/// (equal for names that compare equal), never the name.
pub fn username_digest(key: &DigestKey, name: &str) -> String {
    key.digest("username", crate::domain::username::lookup_key(name).as_bytes())
}

/// Replaces the names that logins which found no user left in the table before digests (up to
/// migration 0011) by their keyed digest; returns how many. Idempotent: run at every start.
pub async fn digest_unknown_usernames(pool: &Pool, key: &DigestKey) -> anyhow::Result<u64> {
    let client = pool.get().await.context("no database connection")?;
    let rows = client
        .query(
            "SELECT id, username FROM authentications \
             WHERE operation = 'login' AND user_id IS NULL AND username IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading authentications: {}", describe(e)))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let digests: Vec<String> = rows.iter().map(|r| username_digest(key, r.get::<_, &str>(1))).collect();
    client
        .execute(
            "UPDATE authentications a SET username = NULL, username_digest = d.digest \
             FROM UNNEST($1::bigint[], $2::text[]) AS d(id, digest) WHERE a.id = d.id",
            &[&ids, &digests],
        )
        .await
        .map_err(|e| anyhow::anyhow!("digesting unknown usernames: {}", describe(e)))
}

/// What auditors may filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub user_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At or before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A recorded outcome as auditors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// Increasing in commit order: pass the last one as `after` to resume.
    pub id: i64,
    /// When iamd began deciding.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The bucket: `ok`, `malformed`, `unknown-user`, `bad-password`, `no-password`,
    /// `disabled`, `wrong-workspace`, `revoked-or-unknown`, `expired`, `invalid-token`,
    /// `unknown-signing-key`, `stale-token`, `error`.
    pub reason: String,
    /// `password`, `api-key` or `jwt`.
    pub credential: String,
    /// `login`, `resolve-api-key` or `http-bearer`.
    pub operation: String,
    pub workspace: Option<String>,
    pub user_id: Option<String>,
    /// The API key's id, when the key was found.
    pub key_id: Option<String>,
    /// The username of the user a login found.
    pub username: Option<String>,
    /// A login that found no user: the keyed digest (HMAC-SHA256, hex) of the name it gave,
    /// equal for equal names, never the name — it may be a password typed into the wrong field.
    pub username_digest: Option<String>,
    /// The client's address (HTTP peer), when known.
    pub client: Option<String>,
    /// `http` or `kafka`.
    pub source: String,
    pub request_id: Option<String>,
    /// How many attempts the record stands for: more than 1 for successful resolves of one
    /// key from one client and source coalesced by the writer (`request_id` is the first's).
    pub count: i32,
    /// When the last of coalesced attempts began (absent when `count` is 1).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

const LIST: &str = "SELECT id, at, outcome, reason, credential, operation, workspace, user_id, key_id, \
    username, username_digest, client, source, request_id, count, last_at FROM authentications \
    WHERE id > $1 AND ($2::text IS NULL OR user_id = $2) AND ($3::text IS NULL OR outcome = $3) \
      AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at <= $5) \
    ORDER BY id LIMIT $6";

/// At most `limit` records after the id `after_id` (0: from the start) that match, oldest
/// id first.
pub async fn list(pool: &Pool, filter: &Filter, after_id: i64, limit: i64) -> anyhow::Result<Vec<Entry>> {
    let client = pool.get().await.context("no database connection")?;
    let outcome = filter.outcome.map(Outcome::as_str);
    let rows = client
        .query(LIST, &[&after_id, &filter.user_id, &outcome, &filter.since, &filter.until, &limit.max(0)])
        .await
        .map_err(|e| anyhow::anyhow!("reading authentications: {}", describe(e)))?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get("id"),
            at: r.get("at"),
            outcome: r.get("outcome"),
            reason: r.get("reason"),
            credential: r.get("credential"),
            operation: r.get("operation"),
            workspace: r.get("workspace"),
            user_id: r.get("user_id"),
            key_id: r.get("key_id"),
            username: r.get("username"),
            username_digest: r.get("username_digest"),
            client: r.get("client"),
            source: r.get("source"),
            request_id: r.get("request_id"),
            count: r.get("count"),
            last_at: r.get("last_at"),
        })
        .collect())
}

/// One line for people: time, outcome, reason, operation, credential, then the known
/// fields as `name=value` (values quoted when they hold a space or a quote).
pub fn render_text(e: &Entry) -> String {
    let mut line = format!(
        "{} #{} {} {} {} {}",
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.id,
        e.outcome,
        e.reason,
        e.operation,
        e.credential
    );
    for (name, value) in [
        ("workspace", &e.workspace),
        ("user", &e.user_id),
        ("key", &e.key_id),
        ("username", &e.username),
        ("username_digest", &e.username_digest),
        ("client", &e.client),
    ] {
        if let Some(v) = value {
            line.push_str(&format!(" {name}={}", quoted(v)));
        }
    }
    line.push_str(&format!(" source={}", quoted(&e.source)));
    if let Some(v) = &e.request_id {
        line.push_str(&format!(" request={}", quoted(v)));
    }
    if e.count > 1 {
        line.push_str(&format!(" count={}", e.count));
        if let Some(last) = e.last_at {
            line.push_str(&format!(" last={}", last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        }
    }
    line
}

/// A value as is when it is plain, else JSON-quoted (so a line stays one line).
fn quoted(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
        v.to_owned()
    } else {
        serde_json::Value::String(v.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_distinct_names_and_only_ok_is_a_success() {
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            let mut a = Attempt::new(AuthOperation::Login, CredentialKind::Password, &Origin::of("http"), "");
            a.reason = reason;
            assert_eq!(a.outcome() == Outcome::Success, reason == Reason::Ok, "{reason:?}");
        }
        assert_eq!(Outcome::parse("failure"), Some(Outcome::Failure));
        assert_eq!(Outcome::parse("FAILURE"), None);
    }

    #[test]
    fn an_attempt_starts_as_an_error_and_prefers_the_request_id_of_the_request() {
        let origin = Origin {
            source: "http".into(),
            client: Some("10.0.0.1".into()),
            request_id: Some("transport-id".into()),
            caller: None,
        };
        let a = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, "req-1");
        assert_eq!(a.reason, Reason::Error);
        assert_eq!(a.request_id.as_deref(), Some("req-1"));
        assert_eq!(a.client.as_deref(), Some("10.0.0.1"));
        let b = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, "");
        assert_eq!(b.request_id.as_deref(), Some("transport-id"));
        assert_eq!(
            Attempt::new(AuthOperation::Login, CredentialKind::Password, &Origin::of("kafka"), "").request_id,
            None
        );
    }

    #[test]
    fn clip_removes_nul_and_cuts_long_text_at_a_character_boundary() {
        assert_eq!(clip(""), None);
        assert_eq!(clip("\0"), None);
        assert_eq!(clip("a\0b").as_deref(), Some("ab"));
        let long = "é".repeat(MAX_FIELD);
        let cut = clip(&long).unwrap();
        assert!(cut.len() <= MAX_FIELD && cut.chars().all(|c| c == 'é'), "{}", cut.len());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let counters = AuthenticationCounters::default();
        let settings = AuthenticationAuditSettings { queue: 3, ..Default::default() };
        let (recorder, writer) = Recorder::new(&settings, counters.clone());
        for _ in 0..10 {
            recorder.record(Attempt::new(
                AuthOperation::Login,
                CredentialKind::Password,
                &Origin::of("http"),
                "",
            ));
        }
        assert_eq!(counters.dropped.get(), 7);
        assert_eq!(counters.queued.get(), 3);
        drop(writer);
        recorder.record(Attempt::new(
            AuthOperation::Login,
            CredentialKind::Password,
            &Origin::of("http"),
            "",
        ));
        assert_eq!(counters.dropped.get(), 8, "a record for a writer that is gone is counted too");
    }

    fn resolve(key: Option<&str>, client: &str, reason: Reason) -> Attempt {
        let origin = Origin { client: Some(client.into()), ..Origin::of("http") };
        let mut a = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, "");
        a.key_id = key.map(str::to_owned);
        a.reason = reason;
        a
    }

    #[test]
    fn a_batch_coalesces_successful_resolves_by_key_client_and_source_only() {
        let mut batch = Batch::default();
        for _ in 0..3 {
            batch.push(resolve(Some("k1"), "10.0.0.1", Reason::Ok), true);
        }
        batch.push(resolve(Some("k1"), "10.0.0.2", Reason::Ok), true);
        batch.push(resolve(Some("k2"), "10.0.0.1", Reason::Ok), true);
        batch.push(resolve(Some("k1"), "10.0.0.1", Reason::Expired), true);
        batch.push(resolve(Some("k1"), "10.0.0.1", Reason::Expired), true);
        batch.push(resolve(None, "10.0.0.1", Reason::RevokedOrUnknown), true);
        let mut login = resolve(Some("k1"), "10.0.0.1", Reason::Ok);
        login.operation = AuthOperation::Login;
        batch.push(login, true);
        let counts: Vec<i32> = batch.rows.iter().map(|r| r.count).collect();
        assert_eq!(counts, [3, 1, 1, 1, 1, 1, 1]);
        assert_eq!(batch.attempts, 9);
        assert!(batch.rows[0].last_at.is_some() && batch.rows[1].last_at.is_none());
        let mut plain = Batch::default();
        for _ in 0..3 {
            plain.push(resolve(Some("k1"), "10.0.0.1", Reason::Ok), false);
        }
        assert_eq!(plain.rows.len(), 3);
        batch.clear();
        assert!(batch.rows.is_empty() && batch.resolves.is_empty() && batch.attempts == 0);
    }

    #[test]
    fn text_lines_name_known_fields_and_stay_one_line() {
        let e = Entry {
            id: 7,
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc),
            outcome: "failure".into(),
            reason: "bad-password".into(),
            credential: "password".into(),
            operation: "login".into(),
            workspace: Some("acme".into()),
            user_id: Some("u-1".into()),
            key_id: None,
            username: Some("al ice\n".into()),
            username_digest: None,
            client: Some("127.0.0.1".into()),
            source: "http".into(),
            request_id: Some("r-1".into()),
            count: 1,
            last_at: None,
        };
        assert_eq!(
            render_text(&e),
            "2026-01-02T03:04:05.000Z #7 failure bad-password login password workspace=acme user=u-1 \
             username=\"al ice\\n\" client=127.0.0.1 source=http request=r-1"
        );
        let later = e.at + chrono::Duration::milliseconds(80);
        let coalesced = Entry { count: 3, last_at: Some(later), ..e };
        assert!(render_text(&coalesced).ends_with(" request=r-1 count=3 last=2026-01-02T03:04:05.080Z"));
    }
}
