//! Reading the log for the audit commands: every event (or a scope of them) in
//! `(stream, version)` order, inside one read-only snapshot, in keyset pages, so that a walk
//! sees one consistent log while iamd writes and never holds the whole log in memory.

use crate::events::RecordedEvent;
use crate::store::recorded_from_row;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Rows read per round trip: enough to stream quickly, few enough to keep memory flat.
pub const PAGE: i64 = 10_000;

/// Which events a walk reads.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this stream.
    pub stream: Option<String>,
    /// Only streams whose name starts with this (e.g. `workspace:`).
    pub prefix: Option<String>,
    /// Only events recorded at or before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// `$1, $2`: the keyset (last stream and version read); `$3`: the page size; `$4`–`$6`: the
/// scope, each NULL when unused.
const SELECT: &str = "SELECT position, stream, version, event_type, schema_version, payload, metadata, \
    recorded_at, prev_hash, hash FROM events \
    WHERE (stream, version) > ($1, $2) \
      AND ($4::text IS NULL OR stream = $4) \
      AND ($5::text IS NULL OR starts_with(stream, $5)) \
      AND ($6::timestamptz IS NULL OR recorded_at <= $6) \
    ORDER BY stream, version LIMIT $3";

/// The recorded head of each stream (`stream_heads`): its last version and that event's hash.
pub type Heads = BTreeMap<String, (i64, String)>;

const SELECT_HEADS: &str = "SELECT stream, version, hash FROM stream_heads \
    WHERE ($1::text IS NULL OR stream = $1) AND ($2::text IS NULL OR starts_with(stream, $2))";

/// What an anchored walk hands its visitor: first the recorded heads, then pages of events.
pub enum Step<'a> {
    Heads(Heads),
    Events(&'a [RecordedEvent]),
}

/// Hands every event of `scope` to `visit`, a page at a time, in `(stream, version)` order,
/// until the log ends or `visit` breaks. `page` rows per round trip (tests use small pages
/// to cross page and stream boundaries).
pub async fn walk(
    pool: &Pool,
    scope: &Scope,
    page: i64,
    mut visit: impl FnMut(&[RecordedEvent]) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<()> {
    walk_inner(pool, scope, page, false, |step| match step {
        Step::Events(events) => visit(events),
        Step::Heads(_) => Ok(ControlFlow::Continue(())),
    })
    .await
}

/// [`walk`], but first hands over the recorded head of every stream in scope, read in the
/// same snapshot (`scope.until` does not apply to heads).
pub async fn walk_anchored(
    pool: &Pool,
    scope: &Scope,
    page: i64,
    visit: impl FnMut(Step<'_>) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<()> {
    walk_inner(pool, scope, page, true, visit).await
}

async fn walk_inner(
    pool: &Pool,
    scope: &Scope,
    page: i64,
    with_heads: bool,
    mut visit: impl FnMut(Step<'_>) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<()> {
    anyhow::ensure!(page > 0, "the page size must be positive");
    let mut client = pool.get().await.context("connecting to read the log")?;
    let tx = crate::db::read_only_snapshot(&mut client).await.context("starting a snapshot of the log")?;
    let mut stop = false;
    if with_heads {
        let rows = tx
            .query(SELECT_HEADS, &[&scope.stream, &scope.prefix])
            .await
            .context("reading the stream heads")?;
        let heads = rows.iter().map(|row| (row.get(0), (row.get(1), row.get(2)))).collect();
        stop = visit(Step::Heads(heads))?.is_break();
    }
    let stmt = tx.prepare(SELECT).await?;
    // Versions start at 1 and every stream name is above "", so ("", 0) precedes every event.
    let (mut stream, mut version) = (String::new(), 0_i64);
    loop {
        let rows = tx
            .query(&stmt, &[&stream, &version, &page, &scope.stream, &scope.prefix, &scope.until])
            .await
            .context("reading the log")?;
        let events: Vec<RecordedEvent> = rows.iter().map(recorded_from_row).collect();
        if stop || visit(Step::Events(&events))?.is_break() {
            break;
        }
        match events.last() {
            Some(last) if events.len() as i64 == page => {
                (stream, version) = (last.stream.clone(), last.version)
            }
            _ => break,
        }
    }
    tx.commit().await?;
    Ok(())
}
