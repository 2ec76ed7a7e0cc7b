//! Recording stays off the request's path: [`Recorder::record`] is a non-blocking `try_send`
//! into a bounded channel; a background [`Writer`] writes what accumulates as one multi-row
//! `INSERT … SELECT FROM UNNEST(…)` per batch. Nothing is lost silently: a record that finds
//! the queue full, or whose batch the database still refuses after a few retries, is counted
//! in `iamd_authentications_dropped_total`; a written one in `…_recorded_total`.

use super::{Attempt, AuthOperation, Reason};
use crate::config::AuthenticationAuditSettings;
use crate::metrics::AuthenticationCounters;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Retries of a batch the database refused, and the wait before each.
const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(1600)];
/// How long a write may wait for the table lock before it counts as a failed attempt.
const LOCK_TIMEOUT: &str = "5s";

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

/// A database error as one line ([`crate::db::error_line`]: never a row's values).
pub(super) fn describe(e: tokio_postgres::Error) -> String {
    crate::db::error_line(&e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn_audit::{CredentialKind, Origin};

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
}
