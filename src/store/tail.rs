//! Reading the log in commit order without gaps (invariant 5), for everything that tails it:
//! the audit feed, projection rebuild catch-up and cache invalidation.
//!
//! Positions come from an identity column, so they are handed out at INSERT time, not at
//! commit: a transaction holding position 10 may commit after one holding 11. A reader that
//! moved its cursor past 11 would never see 10. Instead every event carries the id of the
//! transaction that wrote it (`transaction_id xid8`), and a reader takes only events whose
//! transaction is older than the oldest one still running (`pg_snapshot_xmin`): those are all
//! committed (or rolled back) for good, so nothing can later appear below the cursor. Events
//! come in `(transaction_id, position)` order, which is each writer's transaction in turn.
//! The price: a long-running transaction anywhere in the database holds readers back.

use super::append::recorded_from_row;
use crate::events::RecordedEvent;
use deadpool_postgres::GenericClient;

/// Where a tailing reader stands: the last event it has handed on. Cursors compare in commit
/// order; [`Cursor::START`] precedes every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub transaction_id: u64,
    pub position: i64,
}

impl Cursor {
    pub const START: Cursor = Cursor { transaction_id: 0, position: 0 };
}

/// An event read by a tailing reader, with the cursor that resumes after it.
#[derive(Debug, Clone)]
pub struct TailedEvent {
    pub cursor: Cursor,
    pub event: RecordedEvent,
}

/// The transaction id comes back as text under ANOTHER name: `ORDER BY transaction_id` must
/// sort the xid8 column, not a text alias of it ("100000" sorts before "99999" as text).
const COLUMNS: &str = "position, stream, version, event_type, schema_version, payload, metadata, \
    recorded_at, prev_hash, hash, transaction_id::text AS transaction_id_text";

/// At most `limit` events after `cursor` whose transactions have ended, in commit order.
/// An empty page means "caught up for now": poll again later.
pub async fn read_after(
    client: &impl GenericClient,
    cursor: Cursor,
    limit: i64,
) -> Result<Vec<TailedEvent>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events \
         WHERE (transaction_id, position) > ($1::text::xid8, $2) \
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.transaction_id, events.position LIMIT $3"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&cursor.transaction_id.to_string(), &cursor.position, &limit]).await?;
    Ok(rows.iter().map(tailed_from_row).collect())
}

/// Every event after `cursor`, with no transaction bound: only correct while no writer can be
/// in flight, i.e. inside a transaction that holds `LOCK TABLE events IN EXCLUSIVE MODE` (the
/// last catch-up of an online rebuild).
pub async fn read_rest_locked(
    client: &impl GenericClient,
    cursor: Cursor,
    limit: i64,
) -> Result<Vec<TailedEvent>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) \
         ORDER BY events.transaction_id, events.position LIMIT $3"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&cursor.transaction_id.to_string(), &cursor.position, &limit]).await?;
    Ok(rows.iter().map(tailed_from_row).collect())
}

/// The cursor just after the event at `position` (the feed's `after=POSITION`), or `None`
/// when no event has that position. Position 0 is [`Cursor::START`].
pub async fn cursor_at(
    client: &impl GenericClient,
    position: i64,
) -> Result<Option<Cursor>, tokio_postgres::Error> {
    if position == 0 {
        return Ok(Some(Cursor::START));
    }
    let stmt = client.prepare_cached("SELECT transaction_id::text FROM events WHERE position = $1").await?;
    Ok(client
        .query_opt(&stmt, &[&position])
        .await?
        .map(|row| Cursor { transaction_id: parse_xid(row.get(0)), position }))
}

fn tailed_from_row(row: &tokio_postgres::Row) -> TailedEvent {
    let event = recorded_from_row(row);
    let cursor =
        Cursor { transaction_id: parse_xid(row.get("transaction_id_text")), position: event.position };
    TailedEvent { cursor, event }
}

/// xid8 is a 64-bit unsigned integer printed in decimal.
pub(crate) fn parse_xid(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}
