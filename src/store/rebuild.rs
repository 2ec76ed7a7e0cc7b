//! `iamd projections rebuild [--online]` and `iamd projections verify`: the read tables
//! ([`READ_TABLES`]) replayed from the log with the reducers the append path runs inline
//! ([`read_table_statements`]), into shadow tables that are then swapped in or compared.
//!
//! - **Shadow tables** are clones of the live ones, read from the catalog (columns, defaults,
//!   checks, primary keys, unique constraints and indexes under the SAME names, so the store's
//!   constraint-name matching keeps working after a swap, and a later migration that alters a
//!   read table is cloned too). A rebuild puts them in the schema [`SHADOW_SCHEMA`]; verify
//!   uses temporary tables. The reducers' unqualified table names reach them through
//!   `search_path`, which names only the shadow while statements run, so a statement can
//!   never fall through to a live table.
//! - **Order**: commit order, `(transaction_id, position)`, read gaplessly as `store::tail`
//!   does ([`read_log`]). Usernames are unique across workspaces, so a name freed in one
//!   workspace and taken in another must be replayed in the order the two commits happened,
//!   which `(stream, version)` order would not give. That order is still not exactly commit
//!   order (see [`Plan`]), so the unique constraints are built after the replay.
//! - **Speed**: PostgreSQL's cost was per request, not per row, so each page's statements
//!   are regrouped into multi-row statements ([`batch`]: rewritten mechanically from the
//!   reducers' SQL, each (stream, table) sequence kept in order), sent pipelined; the next
//!   page is read and planned on the blocking pool while PostgreSQL applies one ([`Pager`]).
//!   The shadow tables are UNLOGGED while they fill and have no index but hash indexes on the
//!   columns the reducers find rows by ([`Plan`]); they are made logged (rewritten with their
//!   live rows only) and get their real indexes and constraints after the replay.
//! - **Usage stamps** ([`USAGE_COLUMNS`]: `api_keys.last_used`) do not come from events: a
//!   rebuild copies them from the live table at the swap, under a lock that holds off their
//!   writers, and verify leaves them out.
//! - **Offline** rebuild: one transaction holding `LOCK TABLE events IN EXCLUSIVE MODE`
//!   (commands wait; reads go on) replays everything, swaps and commits.
//! - **Online** rebuild: the shadow is filled in committed batches of events whose
//!   transactions have ended (below `pg_snapshot_xmin`), in passes until a pass finds little
//!   new; then one short transaction takes the events lock (waiting for commands in flight,
//!   holding off new ones), replays the rest, copies the usage stamps, drops the live tables
//!   and moves the shadow ones into their schema, and commits. Readers of a read table wait
//!   for that commit and then see the new table: never an empty one.
//!
//! See `docs/projections.md`.

mod batch;

use super::tail::{self, Cursor, TailedEvent};
use crate::events::Event;
use crate::projections::{read_table_statements, Context, READ_TABLES};
use anyhow::{anyhow, bail};
use batch::Batch;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient, Transaction};
use futures_util::future::maybe_done;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

/// The schema a rebuild builds its shadow tables in (dropped when it ends, and at the start of
/// the next rebuild when a crashed one left it behind).
pub const SHADOW_SCHEMA: &str = "iamd_rebuild";
/// Columns of read tables that no event writes: kept across a rebuild, left out of verify.
pub const USAGE_COLUMNS: &[(&str, &str)] = &[("api_keys", "last_used")];
/// Events read (and applied, in one transaction when online) per round.
pub const PAGE: i64 = 5_000;
/// Differences verify reports per table (it counts them all).
pub const MAX_DIFFERENCES: i64 = 50;

/// Session buffers for verify's temporary tables.
const VERIFY_TEMP_BUFFERS: &str = "256MB";
/// Requests in flight on the connection at once.
const WINDOW: usize = 4_096;
/// Planner settings turned off while the reducers' statements run against the shadow tables:
/// those grow from empty, and a plan cached while they were small must not scan (or hash) a
/// whole table once it is big. With these off, a lookup by key is an index scan at any size.
const PLANNER_OFF: [&str; 4] = ["enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"];
/// A catch-up pass that applied fewer events than this hands over to the locked final step.
const CAUGHT_UP: u64 = 1_000;
/// Catch-up passes before the final step regardless (writers outpacing the rebuild).
const MAX_PASSES: u32 = 10;
/// How long the final step waits for a lock before it gives up and tries again.
const FINAL_LOCK_TIMEOUT: &str = "5s";
const FINAL_ATTEMPTS: u32 = 5;
/// Session advisory lock: one rebuild at a time (`iamd migrate` uses 7368227301).
const REBUILD_LOCK: i64 = 7_368_227_302;

/// How a rebuild treats writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commands wait for the whole replay.
    Offline,
    /// Commands go on; they wait only for the final catch-up and swap.
    Online,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rebuilt {
    /// Events replayed.
    pub events: u64,
    pub seconds: f64,
    /// Online: catch-up passes before the final step.
    pub passes: u32,
    /// Events replayed while commands were held off (all of them when offline).
    pub locked_events: u64,
    /// Seconds commands were held off (the final step when online).
    pub locked_seconds: f64,
}

impl Rebuilt {
    pub fn events_per_second(&self) -> f64 {
        per_second(self.events, self.seconds)
    }
}

/// Rebuilds every read table from the log and swaps the result in. `progress` gets the
/// running count of events replayed after each page.
pub async fn rebuild(
    client: &mut Client,
    mode: Mode,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    let paths = Paths::of(client).await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&REBUILD_LOCK])
        .await
        .map_err(db("taking the rebuild lock"))?
        .get(0);
    if !locked {
        bail!("another `iamd projections rebuild` is running on this database");
    }
    let mut done = match mode {
        Mode::Offline => offline(client, &paths, &mut progress).await,
        Mode::Online => online(client, &paths, &mut progress).await,
    };
    if done.is_err() {
        // A failed transaction was rolled back when dropped; what an online rebuild committed
        // goes here. (If even this fails, the next rebuild drops it first.)
        let _ = client.batch_execute(&drop_shadow_schema()).await;
    }
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&REBUILD_LOCK]).await;
    if let Ok(r) = &mut done {
        r.seconds = started.elapsed().as_secs_f64();
    }
    done
}

async fn offline(
    client: &mut Client,
    paths: &Paths,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<Rebuilt> {
    let tx = client.transaction().await.map_err(db("starting the rebuild"))?;
    tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE").await.map_err(db("locking the log"))?;
    let locked = Instant::now();
    let plan = fresh_shadow_schema(&tx, paths).await?;
    let shadow = paths.shadow();
    let (events, _) =
        replay(&tx, Pager::new(paths, &plan, &shadow, Order::Coalesced), Cursor::START, 0, progress).await?;
    let replayed = Instant::now();
    make_durable(&tx, &plan).await?;
    enforce(&tx, &plan).await?;
    build_indexes(&tx, &plan).await?;
    let indexed = Instant::now();
    swap(&tx, paths, true).await?;
    tx.commit().await.map_err(db("committing the rebuilt tables"))?;
    tracing::debug!(
        replay = (replayed - locked).as_secs_f64(),
        indexes = (indexed - replayed).as_secs_f64(),
        swap = indexed.elapsed().as_secs_f64(),
        "projections rebuild: seconds per step"
    );
    Ok(Rebuilt {
        events,
        locked_events: events,
        locked_seconds: locked.elapsed().as_secs_f64(),
        ..Default::default()
    })
}

async fn online(
    client: &mut Client,
    paths: &Paths,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<Rebuilt> {
    let plan = {
        let tx = client.transaction().await.map_err(db("starting the rebuild"))?;
        let plan = fresh_shadow_schema(&tx, paths).await?;
        tx.commit().await.map_err(db("creating the shadow tables"))?;
        plan
    };
    let mut cursor = Cursor::START;
    let mut events = 0;
    let mut passes = 0;
    loop {
        let before = events;
        (events, cursor) = catch_up(client, paths, &plan, cursor, events, progress).await?;
        passes += 1;
        if events - before < CAUGHT_UP || passes >= MAX_PASSES {
            break;
        }
    }
    // The end of a pass is a consistent state (every transaction below the snapshot's xmin,
    // and so every transaction they waited for), so the unique constraints hold now; building
    // them here keeps that work out of the locked step.
    {
        let tx = client.transaction().await.map_err(db("starting the rebuild"))?;
        make_durable(&tx, &plan).await?;
        enforce(&tx, &plan).await?;
        build_indexes(&tx, &plan).await?;
        for table in READ_TABLES {
            tx.batch_execute(&format!("ANALYZE {}.{}", ident(SHADOW_SCHEMA), ident(table)))
                .await
                .map_err(db("analyzing the shadow tables"))?;
        }
        tx.commit().await.map_err(db("committing the shadow tables"))?;
    }
    let mut attempt = 1;
    loop {
        match final_step(client, paths, &plan, cursor, events, progress).await {
            Ok((locked_events, locked_seconds)) => {
                return Ok(Rebuilt {
                    events: events + locked_events,
                    passes,
                    locked_events,
                    locked_seconds,
                    ..Default::default()
                });
            }
            Err(e) if attempt < FINAL_ATTEMPTS && lock_trouble(&e) => {
                tracing::warn!(
                    attempt,
                    "projections rebuild: the final step could not get its locks; retrying"
                );
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One pass: committed batches of what `read_after` finds, until a page comes back short.
/// Each page is applied in a transaction of its own, which also reads the next page (its
/// snapshot's xmin bound is as good as any: nothing is skipped, see `store::tail`).
async fn catch_up(
    client: &mut Client,
    paths: &Paths,
    plan: &Plan,
    mut cursor: Cursor,
    mut events: u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<(u64, Cursor)> {
    let first = read_log(&*client, cursor, Bound::Finished).await.map_err(db("reading the log"))?;
    let mut planned = plan_off_thread(first, Order::Coalesced).await?;
    let shadow = paths.shadow();
    let mut pager = Pager::new(paths, plan, &shadow, Order::Coalesced);
    loop {
        let (page, batches) = planned;
        let batches = batches?;
        let Some(last) = page.last() else { break };
        let next = last.cursor;
        let tx = client.transaction().await.map_err(db("starting a batch"))?;
        // Losing the last batches in a crash only loses the shadow, which is dropped anyway.
        tx.batch_execute("SET LOCAL synchronous_commit = off").await.map_err(db("starting a batch"))?;
        let read = (page.len() as i64 >= PAGE).then_some((next, Bound::Finished));
        let after = pager.apply_and_read(&tx, &page, &batches, read).await?;
        tx.commit().await.map_err(db("committing a batch of the shadow tables"))?;
        cursor = next;
        events += page.len() as u64;
        progress(events);
        planned = match after {
            Some(planned) => planned,
            None => break,
        };
    }
    tracing::debug!(stats = ?pager.stats, "projections rebuild: catch-up pass replayed");
    Ok((events, cursor))
}

/// The last catch-up and the swap, with commands held off. Returns the events it replayed and
/// how long it held the log.
async fn final_step(
    client: &mut Client,
    paths: &Paths,
    plan: &Plan,
    cursor: Cursor,
    events: u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<(u64, f64)> {
    let tx = client.transaction().await.map_err(db("starting the swap"))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{FINAL_LOCK_TIMEOUT}'; LOCK TABLE events IN EXCLUSIVE MODE; \
         SAVEPOINT iamd_last_events"
    ))
    .await
    .map_err(db("locking the log"))?;
    let locked = Instant::now();
    let shadow = paths.shadow();
    // In commit order (as far as it can be read back), one statement at a time: the unique
    // constraints are in place now, and regrouping could take a name before it is freed.
    let total =
        match replay(&tx, Pager::new(paths, plan, &shadow, Order::Strict), cursor, events, progress).await {
            Ok((total, _)) => total,
            Err(e) if unique_violation(&e) => {
                // Two of the last transactions freed and took the same name, and the taker got
                // the lower transaction id (it waited on the freer's row lock): replay them with
                // the unique constraints set aside, then put them back.
                tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT iamd_last_events; {}", plan.relax))
                    .await
                    .map_err(db("setting the shadow's unique constraints aside"))?;
                let (total, _) =
                    replay(&tx, Pager::new(paths, plan, &shadow, Order::Coalesced), cursor, events, progress)
                        .await?;
                enforce(&tx, plan).await?;
                total
            }
            Err(e) => return Err(e),
        };
    swap(&tx, paths, false).await?;
    tx.commit().await.map_err(db("committing the swap"))?;
    Ok((total - events, locked.elapsed().as_secs_f64()))
}

/// A lock wait that timed out or deadlocked: worth another try.
fn lock_trouble(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DbFailure>().is_some_and(|f| {
        f.code == Some(SqlState::LOCK_NOT_AVAILABLE) || f.code == Some(SqlState::T_R_DEADLOCK_DETECTED)
    })
}

fn unique_violation(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DbFailure>().is_some_and(|f| f.code == Some(SqlState::UNIQUE_VIOLATION))
}

/// Copies the usage stamps into the shadow, then replaces the live tables with it.
async fn swap(tx: &Transaction<'_>, paths: &Paths, analyze: bool) -> anyhow::Result<()> {
    let shadow = ident(SHADOW_SCHEMA);
    let live = ident(&paths.live);
    for (table, column) in USAGE_COLUMNS {
        // Holds off the stamp writers (readers go on) so that none is lost between the copy
        // and the swap.
        tx.batch_execute(&format!("LOCK TABLE {live}.{t} IN EXCLUSIVE MODE", t = ident(table)))
            .await
            .map_err(db(format!("locking {table}")))?;
        let key = primary_key(tx, &format!("{live}.{}", ident(table))).await?;
        let on = key.iter().map(|k| format!("s.{k} = l.{k}", k = ident(k))).collect::<Vec<_>>().join(" AND ");
        tx.batch_execute(&format!(
            "UPDATE {shadow}.{t} s SET {c} = l.{c} FROM {live}.{t} l WHERE {on} AND l.{c} IS NOT NULL",
            t = ident(table),
            c = ident(column)
        ))
        .await
        .map_err(db(format!("copying {table}.{column}")))?;
    }
    let mut sql = String::new();
    if analyze {
        for table in READ_TABLES {
            sql.push_str(&format!("ANALYZE {shadow}.{};", ident(table)));
        }
    }
    for table in READ_TABLES {
        let t = ident(table);
        sql.push_str(&format!("DROP TABLE {live}.{t}; ALTER TABLE {shadow}.{t} SET SCHEMA {live};"));
    }
    sql.push_str(&format!("DROP SCHEMA {shadow}"));
    tx.batch_execute(&sql).await.map_err(db("swapping the rebuilt tables in"))?;
    Ok(())
}

/// Where the live read tables are, and the session's own `search_path` and [`PLANNER_OFF`]
/// settings (restored to read the log between pages).
struct Paths {
    live: String,
    search_path: String,
    planner: Vec<String>,
}

impl Paths {
    async fn of(client: &Client) -> anyhow::Result<Paths> {
        // The lookup indexes are dropped with `IF EXISTS` whether or not the replay needed
        // them; the server's notice for each that was not there is not for the operator.
        client
            .batch_execute("SET client_min_messages = warning")
            .await
            .map_err(db("setting client_min_messages"))?;
        let rows = client
            .query(
                "SELECT t, (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n \
                   ON n.oid = c.relnamespace WHERE c.oid = to_regclass(t)), current_setting('search_path'), \
                   ARRAY(SELECT current_setting(s) FROM unnest($2::text[]) s) \
                 FROM unnest($1::text[]) t",
                &[&READ_TABLES.to_vec(), &PLANNER_OFF.to_vec()],
            )
            .await
            .map_err(db("finding the read tables"))?;
        let mut live: Option<String> = None;
        let mut search_path = String::new();
        let mut planner = Vec::new();
        for row in &rows {
            let table: String = row.get(0);
            let schema: Option<String> = row.get(1);
            search_path = row.get(2);
            planner = row.get(3);
            let Some(schema) = schema else {
                bail!("the read table `{table}` does not exist: run `iamd migrate` first");
            };
            if schema == SHADOW_SCHEMA || schema.starts_with("pg_temp") {
                bail!("`{table}` resolves to {schema}.{table}, not a live table: check search_path");
            }
            match &live {
                Some(l) if *l != schema => {
                    bail!("the read tables are split across schemas {l} and {schema}")
                }
                _ => live = Some(schema),
            }
        }
        Ok(Paths { live: live.unwrap_or_else(|| "public".into()), search_path, planner })
    }

    /// The `search_path` that sends the reducers' statements to the rebuild's shadow tables.
    fn shadow(&self) -> String {
        ident(SHADOW_SCHEMA)
    }
}

/// Replays every event after `cursor` into the tables `shadow_path` names, in one
/// transaction; returns the running total (`done` + replayed) and the last cursor. Reads with
/// no transaction bound ([`Bound::None`]): only right under the events lock, or inside one
/// snapshot that both the replay and the comparison read (verify).
async fn replay(
    tx: &Transaction<'_>,
    mut pager: Pager<'_>,
    mut cursor: Cursor,
    mut done: u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<(u64, Cursor)> {
    set_path(tx, pager.paths, Names::Live).await?;
    let first = read_log(tx, cursor, Bound::None).await.map_err(db("reading the log"))?;
    let mut planned = plan_off_thread(first, pager.order).await?;
    loop {
        let (events, batches) = planned;
        let batches = batches?;
        let Some(last) = events.last() else { break };
        cursor = last.cursor;
        let next = (events.len() as i64 >= PAGE).then_some((cursor, Bound::None));
        let next = pager.apply_and_read(tx, &events, &batches, next).await?;
        done += events.len() as u64;
        progress(done);
        planned = match next {
            Some(planned) => planned,
            None => break,
        };
    }
    set_path(tx, pager.paths, Names::Live).await?;
    tracing::debug!(order = ?pager.order, stats = ?pager.stats, "projections rebuild: statements replayed");
    Ok((done, cursor))
}

/// A page of events read, with its batches planned (or why they could not be).
type Planned = (Vec<LogEvent>, anyhow::Result<Vec<Batch>>);

/// Applies pages of events to the shadow tables, each while the next is read and planned.
struct Pager<'a> {
    paths: &'a Paths,
    plan: &'a Plan,
    shadow_path: &'a str,
    order: Order,
    texts: BatchTexts,
    stats: Stats,
}

impl<'a> Pager<'a> {
    fn new(paths: &'a Paths, plan: &'a Plan, shadow_path: &'a str, order: Order) -> Pager<'a> {
        Pager { paths, plan, shadow_path, order, texts: BatchTexts::default(), stats: Stats::default() }
    }

    /// Applies a planned page in `tx` and, at the same time, reads the page after `next` (a
    /// cursor and a bound) and plans it on the blocking pool, so that PostgreSQL applies one
    /// page while iamd decodes the next. On the wire, in this order: the next page's read
    /// (under the live search_path), the shadow's search_path, this page's statements, the
    /// live search_path again. The read's statement is prepared (the first page was read
    /// the same way and awaited), so it goes out on its future's first poll, and `join` polls
    /// it first. Both keep being polled: a reply must be taken as it comes (the connection
    /// hands each request's reply over through a small channel and reads nothing more until
    /// it is taken), or a big one, the read, would stall the rest.
    async fn apply_and_read(
        &mut self,
        tx: &Transaction<'_>,
        events: &[LogEvent],
        batches: &[Batch],
        next: Option<(Cursor, Bound)>,
    ) -> anyhow::Result<Option<Planned>> {
        let order = self.order;
        let read = async move {
            let Some((cursor, bound)) = next else { return Ok(None) };
            let page = read_log(tx, cursor, bound).await.map_err(db("reading the log"))?;
            plan_off_thread(page, order).await.map(Some)
        };
        let (paths, plan, shadow_path, texts) = (self.paths, self.plan, self.shadow_path, &mut self.texts);
        let apply = async move {
            // Awaited, not pipelined: no statement may go out before the shadow's search_path
            // has taken effect (a request whose statement is not prepared yet only goes out
            // after a round trip, so "sent first" is not "sent on the first poll").
            set_path(tx, paths, Names::Shadow(shadow_path)).await?;
            let mut inflight = VecDeque::new();
            let sent = send(tx, plan, events, batches, texts, &mut inflight).await;
            let mut to_live = Box::pin(maybe_done(set_path(tx, paths, Names::Live)));
            let _ = futures_util::poll!(to_live.as_mut());
            let sent = sent?;
            settle_all(&mut inflight, events, batches).await?;
            to_live.as_mut().await;
            to_live.as_mut().take_output().unwrap_or(Ok(()))?;
            Ok::<_, anyhow::Error>(sent)
        };
        let (next, applied) = futures_util::future::join(read, apply).await;
        // The read went out first: when it failed, the rest failed because of it. (A page
        // that does not decode is not an error here: it comes with the page.)
        let next = next?;
        self.stats.requests += applied?;
        self.stats.batches += batches.len() as u64;
        self.stats.statements += batches.iter().map(|b| b.rows.len() as u64).sum::<u64>();
        Ok(next)
    }
}

/// What a replay sent.
#[derive(Debug, Default)]
struct Stats {
    /// The reducers' statements.
    statements: u64,
    /// [`Batch`]es they were grouped in.
    batches: u64,
    /// Requests sent (a batch is one statement, or a few past the row limits).
    requests: u64,
}

/// Which events [`read_log`] may return.
#[derive(Clone, Copy)]
enum Bound {
    /// Only those whose transactions have ended (below `pg_snapshot_xmin`), as
    /// [`crate::store::tail::read_after`].
    Finished,
    /// Every one after the cursor, as [`crate::store::tail::read_rest_locked`] ([`READ_REST`]).
    None,
}

/// An event as the replay reads it: what the reducers and the error messages need. (Not its
/// metadata or hashes: a third of a row's bytes that the replay would read, send and decode
/// for nothing.)
struct LogEvent {
    cursor: Cursor,
    position: i64,
    stream: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    /// Taken by [`plan_page`] (left `Null`).
    payload: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl From<TailedEvent> for LogEvent {
    fn from(t: TailedEvent) -> LogEvent {
        let e = t.event;
        LogEvent {
            cursor: t.cursor,
            position: e.position,
            stream: e.stream,
            version: e.version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
            recorded_at: e.recorded_at,
        }
    }
}

/// [`crate::store::tail::read_rest_locked`]'s query (every event after the cursor, in
/// `(transaction_id, position)` order, with no transaction bound), with only the columns of a
/// [`LogEvent`]. `ORDER BY` names the xid8 column, not its text form.
const READ_REST: &str =
    "SELECT transaction_id::text, position, stream, version, event_type, schema_version, \
    payload, recorded_at FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) \
    ORDER BY events.transaction_id, events.position LIMIT $3";

/// The next [`PAGE`] events after `cursor` in commit order: with [`Bound::Finished`], through
/// [`crate::store::tail::read_after`] (the gapless reader); with [`Bound::None`], its
/// unbounded twin [`READ_REST`].
async fn read_log(
    client: &impl GenericClient,
    cursor: Cursor,
    bound: Bound,
) -> Result<Vec<LogEvent>, tokio_postgres::Error> {
    match bound {
        Bound::Finished => {
            Ok(tail::read_after(client, cursor, PAGE).await?.into_iter().map(LogEvent::from).collect())
        }
        Bound::None => {
            let stmt = client.prepare_cached(READ_REST).await?;
            let rows =
                client.query(&stmt, &[&cursor.transaction_id.to_string(), &cursor.position, &PAGE]).await?;
            let mut page = Vec::with_capacity(rows.len());
            for row in rows {
                let xid: &str = row.try_get(0)?;
                let position: i64 = row.try_get(1)?;
                page.push(LogEvent {
                    // xid8 prints as a 64-bit unsigned integer.
                    cursor: Cursor { transaction_id: tail::parse_xid(xid), position },
                    position,
                    stream: row.try_get(2)?,
                    version: row.try_get(3)?,
                    event_type: row.try_get(4)?,
                    schema_version: row.try_get(5)?,
                    payload: row.try_get(6)?,
                    recorded_at: row.try_get(7)?,
                });
            }
            Ok(page)
        }
    }
}

/// Where the unqualified names of a transaction's statements go.
#[derive(Clone, Copy)]
enum Names<'a> {
    /// Only to this schema (the reducers' statements), with [`PLANNER_OFF`] off.
    Shadow(&'a str),
    /// The session's own `search_path` and planner settings (reading the log).
    Live,
}

/// Sets `search_path` and the [`PLANNER_OFF`] settings for the rest of the transaction (or
/// until set again). The request goes out on the first poll once the statement is prepared,
/// which the first call of a replay awaits.
async fn set_path(tx: &Transaction<'_>, paths: &Paths, names: Names<'_>) -> anyhow::Result<()> {
    let mut sql = "SELECT set_config('search_path', $1, true)".to_owned();
    for (i, setting) in PLANNER_OFF.iter().enumerate() {
        sql.push_str(&format!(", set_config('{setting}', ${}, true)", i + 2));
    }
    let stmt = tx.prepare_cached(&sql).await.map_err(db("setting search_path"))?;
    let (path, planner): (&str, Vec<&str>) = match names {
        Names::Shadow(path) => (path, vec!["off"; PLANNER_OFF.len()]),
        Names::Live => (paths.search_path.as_str(), paths.planner.iter().map(String::as_str).collect()),
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&path];
    params.extend(planner.iter().map(|p| p as &(dyn ToSql + Sync)));
    tx.query_one(&stmt, &params).await.map_err(db("setting search_path"))?;
    Ok(())
}

/// Whether a page's statements may be regrouped into multi-row statements ([`batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Regrouped: each (stream, table) sequence keeps its order, the rest may not. The end
    /// state is the same; the unique constraints must be set aside until the end (they are,
    /// except in the online rebuild's final step).
    Coalesced,
    /// Every statement alone, in commit order.
    Strict,
}

/// Decodes a page of events and plans the batches that apply their read-table statements.
/// Pure: no I/O (runs on the blocking pool while PostgreSQL applies the previous page).
fn plan_page(events: &mut [LogEvent], order: Order) -> anyhow::Result<Vec<Batch>> {
    let mut decoded = Vec::with_capacity(events.len());
    for e in events.iter_mut() {
        let payload = std::mem::take(&mut e.payload);
        decoded
            .push(Event::from_columns(&e.event_type, e.schema_version, payload).map_err(|_| undecodable(e))?);
    }
    let mut items = Vec::with_capacity(events.len() * 3 / 2);
    for (i, (e, event)) in events.iter().zip(&decoded).enumerate() {
        let ctx = Context { stream: &e.stream, recorded_at: e.recorded_at };
        for statement in read_table_statements(&ctx, event) {
            items.push(batch::Item { event: i, stream: &e.stream, statement });
        }
    }
    Ok(batch::schedule(items, &mut batch::Shapes::default(), order == Order::Coalesced))
}

/// [`plan_page`] on the blocking pool; gives the page back with its plan.
async fn plan_off_thread(
    mut page: Vec<LogEvent>,
    order: Order,
) -> anyhow::Result<(Vec<LogEvent>, anyhow::Result<Vec<Batch>>)> {
    tokio::task::spawn_blocking(move || {
        let batches = plan_page(&mut page, order);
        (page, batches)
    })
    .await
    .map_err(|e| anyhow!("planning a page of the replay: {e}"))
}

/// The SQL of multi-row statements, by (reducer SQL, rows).
#[derive(Default)]
struct BatchTexts(HashMap<(&'static str, usize), String>);

type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + 'a>>;

/// A request in flight: rows `rows` of batch `batch`.
struct Request<'a> {
    batch: usize,
    rows: Range<usize>,
    pending: Pending<'a>,
}

/// Sends the statements of `batches`, in order, pipelined: each request is sent as soon as it
/// is built (a tokio-postgres request goes out on its future's first poll) and its reply
/// awaited later ([`settle`]), in order, with at most [`WINDOW`] outstanding. A batch of more
/// than one row is one multi-row statement (or a few: [`batch::Shape::pieces`]). The first
/// failure is reported against its event(s); PostgreSQL refuses everything after it in the
/// transaction.
async fn send<'a>(
    tx: &'a Transaction<'_>,
    plan: &Plan,
    events: &[LogEvent],
    batches: &'a [Batch],
    texts: &mut BatchTexts,
    inflight: &mut VecDeque<Request<'a>>,
) -> anyhow::Result<u64> {
    let mut requests = 0;
    for (b, batch) in batches.iter().enumerate() {
        if let Some(sql) = plan.lookups_for(batch.shape.as_deref()) {
            // After everything in flight (and it waits for that): report a failure there first.
            if let Err(e) = tx.batch_execute(&sql).await {
                settle_all(inflight, events, batches).await?;
                return Err(DbFailure::new("creating a lookup index on a shadow table".into(), &e).into());
            }
        }
        let mut start = 0;
        let mut single = None;
        for k in pieces(batch) {
            let rows = start..start + k;
            start += k;
            let stmt = match statement(tx, batch, k, &mut single, texts).await {
                Ok(stmt) => stmt,
                Err(e) => {
                    // A statement in flight may have failed first (and so failed this one):
                    // report that one.
                    settle_all(inflight, events, batches).await?;
                    return Err(not_applied(events, batch, rows, &e));
                }
            };
            let params: Vec<&(dyn ToSql + Sync)> = batch.rows[rows.clone()]
                .iter()
                .flat_map(|(_, params)| params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)))
                .collect();
            let mut pending: Pending<'a> = Box::pin(async move { tx.execute(&stmt, &params).await });
            requests += 1;
            match futures_util::poll!(pending.as_mut()) {
                Poll::Ready(result) => {
                    result.map_err(|e| not_applied(events, batch, rows, &e))?;
                }
                Poll::Pending => inflight.push_back(Request { batch: b, rows, pending }),
            }
            while inflight.len() > WINDOW {
                settle(inflight, events, batches).await?;
            }
        }
    }
    Ok(requests)
}

/// How many rows of `batch` each of its statements takes.
fn pieces(batch: &Batch) -> Vec<usize> {
    match &batch.shape {
        Some(shape) if batch.rows.len() > 1 => shape.pieces(batch.rows.len()),
        _ => vec![1; batch.rows.len()],
    }
}

/// The prepared statement for `rows` rows of `batch`: the reducer's own for one, else the
/// multi-row rewrite, prepared with the reducer statement's parameter types repeated.
/// `single` keeps the reducer's own once prepared.
async fn statement(
    tx: &Transaction<'_>,
    batch: &Batch,
    rows: usize,
    single: &mut Option<tokio_postgres::Statement>,
    texts: &mut BatchTexts,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    let single = match single {
        Some(stmt) => stmt,
        None => single.insert(tx.prepare_cached(batch.sql).await?),
    };
    let Some(shape) = batch.shape.as_ref().filter(|_| rows > 1) else {
        return Ok(single.clone());
    };
    // `Shape::of` counted `$1..$n`; PostgreSQL counts them too, and they agree for any
    // statement that prepares (each `$k` is used, none is missing).
    let types: Vec<Type> = (0..rows).flat_map(|_| single.params().iter().cloned()).collect();
    let text = texts.0.entry((batch.sql, rows)).or_insert_with(|| shape.batched(rows));
    tx.prepare_typed_cached(text, &types).await
}

async fn settle(
    inflight: &mut VecDeque<Request<'_>>,
    events: &[LogEvent],
    batches: &[Batch],
) -> anyhow::Result<()> {
    if let Some(r) = inflight.pop_front() {
        r.pending.await.map_err(|e| not_applied(events, &batches[r.batch], r.rows, &e))?;
    }
    Ok(())
}

async fn settle_all(
    inflight: &mut VecDeque<Request<'_>>,
    events: &[LogEvent],
    batches: &[Batch],
) -> anyhow::Result<()> {
    while !inflight.is_empty() {
        settle(inflight, events, batches).await?;
    }
    Ok(())
}

/// The decoder's message may quote payload values (hashes): this names the event only.
fn undecodable(e: &LogEvent) -> anyhow::Error {
    anyhow!(
        "the event at position {} ({} v{} of {}, schema version {}) does not decode: replay stopped",
        e.position,
        e.event_type,
        e.version,
        e.stream,
        e.schema_version
    )
}

/// A failed statement, named by the event(s) whose statements it applied.
fn not_applied(
    events: &[LogEvent],
    batch: &Batch,
    rows: Range<usize>,
    err: &tokio_postgres::Error,
) -> anyhow::Error {
    let mut which: Vec<usize> = batch.rows[rows].iter().map(|(event, _)| *event).collect();
    which.dedup();
    let what = match which[..] {
        [one] => {
            let e = &events[one];
            format!(
                "the event at position {} ({} v{} of {}) could not be applied",
                e.position, e.event_type, e.version, e.stream
            )
        }
        _ => {
            let positions: Vec<String> =
                which.iter().take(5).map(|&i| events[i].position.to_string()).collect();
            format!(
                "one of the events at positions {}{} (applied together by one statement) could not be applied",
                positions.join(", "),
                if which.len() > 5 { ", …" } else { "" }
            )
        }
    };
    DbFailure::new(what, err).into()
}

/// A database error as one line: what was being done, the server's message and constraint,
/// never its DETAIL (which quotes key values, e.g. a key hash). Keeps the SQLSTATE.
#[derive(Debug)]
struct DbFailure {
    what: String,
    message: String,
    code: Option<SqlState>,
}

impl DbFailure {
    fn new(what: String, err: &tokio_postgres::Error) -> DbFailure {
        let message = match err.as_db_error() {
            Some(d) => match d.constraint() {
                Some(c) => format!("{} (constraint {c})", d.message()),
                None => d.message().to_owned(),
            },
            None if err.is_closed() => "the connection to PostgreSQL closed".to_owned(),
            // Not from the server (I/O, protocol, conversion): no row values in these.
            None => err.to_string(),
        };
        DbFailure { what, message, code: err.code().cloned() }
    }
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

impl std::error::Error for DbFailure {}

/// `map_err` for database calls: a [`DbFailure`] saying what was being done.
fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> anyhow::Error {
    let what = what.into();
    move |err| DbFailure::new(what, &err).into()
}

/// How to build the shadow of the read tables, and how to enforce their uniqueness.
///
/// Unique constraints and unique indexes are NOT built before the replay: each gets a plain
/// index on the same columns for the lookups, and the real ones are built after it
/// ([`Plan::enforce`]). Commit order cannot be read back exactly: `(transaction_id, position)`
/// puts a transaction that took a name before the one that freed it when the taker got its id
/// first and then waited on the freer's row lock; replayed with the constraint in place, that
/// would fail forever. Every row belongs to one stream and each stream replays in order, so
/// the end state does not depend on how streams interleave; only the constraints in between
/// do, and those are checked once, at the end (also faster to build in one go).
///
/// None of the read tables' indexes is there during the replay: each costs an insertion per
/// row version, and the replay needs only to find rows by the columns its reducers name
/// (`WHERE id = $1`). For that, a column that an index is on (alone and plainly) gets a hash
/// index of the replay's own, created the first time an `UPDATE` or `DELETE` on its table
/// names that column in its condition ([`Plan::lookups`]; a statement [`batch`] cannot take
/// apart creates them all). The real indexes are built after the replay, in one sort each
/// ([`Plan::indexes`]; the unique ones and the constraints in `enforce`).
struct Plan {
    /// Tables, checks and exclusion constraints.
    create: String,
    /// Builds the unique constraints and indexes, drops the lookup indexes.
    enforce: String,
    /// The reverse of `enforce` (for the online rebuild's final step).
    relax: String,
    /// Builds the non-unique indexes (a rebuild's; verify compares rows, it needs none).
    indexes: String,
    /// Indexes the replay may need, created when it first does.
    lookups: Vec<Lookup>,
    /// A rebuild's shadow tables are UNLOGGED while they are filled (no WAL for every row
    /// version the replay writes); this drops the lookup indexes `enforce` would drop and
    /// makes them logged, which rewrites each, WAL-logged, with only its live rows (see
    /// [`make_durable`]). Empty for verify's temporary tables.
    durable: String,
}

/// An index of the replay's own on a column of a shadow table that one of the read table's
/// indexes is on (alone, plainly): for finding rows by it. Dropped before the real indexes
/// and constraints are built.
struct Lookup {
    /// The table, as the reducers name it.
    table: String,
    column: String,
    /// `CREATE INDEX IF NOT EXISTS iamd_lookup_… USING hash (column)` (or, for a type without
    /// a hash operator class, the read table's index definition).
    create: String,
    /// Created, or no longer needed (the real constraints and indexes are there).
    ready: std::cell::Cell<bool>,
}

impl Plan {
    /// The lookup indexes `shape` (`None`: a statement of unknown shape) may need that are
    /// not there yet, as one SQL string, marked as there.
    fn lookups_for(&self, shape: Option<&batch::Shape>) -> Option<String> {
        let mut sql = String::new();
        for lookup in self.lookups.iter().filter(|l| !l.ready.get()) {
            let needed = match shape {
                Some(shape) => shape.table == lookup.table && shape.finds_rows_by(&lookup.column),
                None => true,
            };
            if needed {
                sql.push_str(&lookup.create);
                lookup.ready.set(true);
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

/// Drops a stale shadow schema and creates an empty one with a clone of every read table.
async fn fresh_shadow_schema(tx: &Transaction<'_>, paths: &Paths) -> anyhow::Result<Plan> {
    let shadow = ident(SHADOW_SCHEMA);
    tx.batch_execute(&format!(
        "SET LOCAL client_min_messages = warning; DROP SCHEMA IF EXISTS {shadow} CASCADE; \
         CREATE SCHEMA {shadow}"
    ))
    .await
    .map_err(db("creating the shadow schema"))?;
    let plan = plan(tx, &paths.live, SHADOW_SCHEMA).await?;
    tx.batch_execute(&plan.create).await.map_err(db("creating the shadow tables"))?;
    Ok(plan)
}

/// Makes the shadow tables logged ([`Plan::durable`]), before their constraints and indexes
/// are built (so that the rewrite does not build them twice), once nothing more is replayed
/// into them unlogged. After a crash before this commits, the shadow is dropped anyway; after,
/// the tables are as durable as any.
async fn make_durable(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.durable).await.map_err(db("making the shadow tables logged"))
}

/// Builds the indexes the replay does without ([`Plan::indexes`]).
async fn build_indexes(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.indexes).await.map_err(db("building the shadow tables' indexes"))
}

/// Builds the unique constraints (and drops the lookup indexes they replace). From here on
/// the replay's lookups are served by the real constraints and indexes ([`build_indexes`]
/// follows in a rebuild): no lookup index is created any more.
async fn enforce(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.enforce).await.map_err(|e| {
        anyhow::Error::from(DbFailure::new(
            "the replayed read tables break a unique constraint (the log holds conflicting events)".into(),
            &e,
        ))
    })?;
    plan.lookups.iter().for_each(|l| l.ready.set(true));
    Ok(())
}

/// Clones every read table `live.t` as `target.t` (`target` may be `pg_temp`): the same
/// columns, defaults, checks, and the same constraint and index names (the store tells a
/// taken username from its constraint's name), cloned from the catalog so that a migration
/// that changes a read table changes its shadow too.
async fn plan(tx: &Transaction<'_>, live: &str, target: &str) -> anyhow::Result<Plan> {
    let mut plan = Plan {
        create: String::new(),
        enforce: String::new(),
        relax: String::new(),
        indexes: String::new(),
        lookups: Vec::new(),
        durable: String::new(),
    };
    let temporary = target == "pg_temp";
    let mut set_logged = String::new();
    for (n, table) in READ_TABLES.iter().enumerate() {
        let from = format!("{}.{}", ident(live), ident(table));
        let to = format!("{}.{}", ident(target), ident(table));
        let unlogged = if temporary { "" } else { "UNLOGGED " };
        if !temporary {
            set_logged.push_str(&format!("ALTER TABLE {to} SET LOGGED;"));
        }
        plan.create.push_str(&format!(
            "CREATE {unlogged}TABLE {to} (LIKE {from} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY \
             INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION);"
        ));
        // Every index, with the constraint it backs (if any), the table's name as
        // pg_get_indexdef prints it, and its column when it is on one plain column (with
        // whether that column's type has a default hash operator class).
        let rows = tx
            .query(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique, \
                   quote_ident(n.nspname) || '.' || quote_ident(t.relname), \
                   k.conname::text, k.contype::text, pg_get_constraintdef(k.oid), \
                   a.attname::text, EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod \
                     WHERE m.amname = 'hash' AND o.opcdefault AND o.opcintype = a.atttypid) \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                   AND i.indnatts = 1 AND i.indexprs IS NULL AND i.indpred IS NULL \
                 WHERE i.indrelid = $1::text::regclass ORDER BY 1",
                &[&from],
            )
            .await
            .map_err(db(format!("reading the indexes of {from}")))?;
        // (column, how to index it for lookups)
        let mut lookups: Vec<(String, String)> = Vec::new();
        for row in &rows {
            let name: String = row.get(0);
            let def: String = row.get(1);
            let unique: bool = row.get(2);
            let printed: String = row.get(3);
            let constraint: Option<(String, String, String)> =
                row.get::<_, Option<String>>(4).map(|c| (c, row.get(5), row.get(6)));
            let (using, suffix) = index_suffix(&def, &printed)
                .ok_or_else(|| anyhow!("cannot clone the index {name} of {from}: unexpected definition"))?;
            if let Some(column) = row.get::<_, Option<String>>(7) {
                // A hash index where the type has one (no ordering comparisons, one page per
                // probe), else the index's own definition, as a plain index.
                let method = if row.get::<_, bool>(8) {
                    format!("hash ({})", ident(&column))
                } else {
                    suffix.to_owned()
                };
                if !lookups.iter().any(|(c, _)| *c == column) {
                    lookups.push((column, method));
                }
            }
            let exclusion = constraint.as_ref().is_some_and(|(_, kind, _)| kind == "x");
            match &constraint {
                // Exclusion constraints (and any other non-unique one) stay as they are.
                Some((c, _, cdef)) if !unique || exclusion => {
                    plan.create.push_str(&format!("ALTER TABLE {to} ADD CONSTRAINT {} {cdef};", ident(c)))
                }
                Some((c, _, cdef)) => {
                    plan.enforce.push_str(&format!("ALTER TABLE {to} ADD CONSTRAINT {} {cdef};", ident(c)));
                    plan.relax.push_str(&format!("ALTER TABLE {to} DROP CONSTRAINT {};", ident(c)));
                }
                None if unique => {
                    plan.enforce.push_str(&format!("{using} ON {to} USING {suffix};"));
                    plan.relax.push_str(&format!("DROP INDEX {}.{};", ident(target), ident(&name)));
                }
                None => plan.indexes.push_str(&format!("{using} ON {to} USING {suffix};")),
            }
        }
        for (m, (column, method)) in lookups.into_iter().enumerate() {
            let lookup = format!("iamd_lookup_{n}_{m}");
            let create = format!("CREATE INDEX IF NOT EXISTS {lookup} ON {to} USING {method};");
            let drop = format!("DROP INDEX IF EXISTS {}.{lookup};", ident(target));
            plan.enforce.push_str(&drop);
            if !temporary {
                plan.durable.push_str(&drop);
            }
            plan.relax.push_str(&create);
            plan.lookups.push(Lookup { table: table.to_string(), column, create, ready: false.into() });
        }
        let foreign: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'f'",
                &[&from],
            )
            .await
            .map_err(db(format!("reading the constraints of {from}")))?
            .get(0);
        if foreign > 0 {
            bail!("{from} has a foreign key; rebuild does not know how to swap such a table");
        }
    }
    plan.durable.push_str(&set_logged);
    Ok(plan)
}

/// Splits `CREATE [UNIQUE] INDEX name ON <table> USING <rest>` into
/// (`CREATE [UNIQUE] INDEX name`, `<rest>`), for rebuilding it on another table.
fn index_suffix<'a>(def: &'a str, table: &str) -> Option<(&'a str, &'a str)> {
    let on = format!(" ON {table} USING ");
    if !def.starts_with("CREATE ") || def.matches(&on).count() != 1 {
        return None;
    }
    def.split_once(&on)
}

/// The primary-key columns of `table`, in order.
async fn primary_key(client: &impl GenericClient, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) ON true \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.n",
            &[&table],
        )
        .await
        .map_err(db(format!("reading the primary key of {table}")))?;
    let key: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if key.is_empty() {
        bail!("{table} has no primary key");
    }
    Ok(key)
}

/// Drops the shadow schema, quietly (no NOTICE per table), in a transaction of its own.
fn drop_shadow_schema() -> String {
    format!(
        "BEGIN; SET LOCAL client_min_messages = warning; DROP SCHEMA IF EXISTS {} CASCADE; COMMIT",
        ident(SHADOW_SCHEMA)
    )
}

/// SQL identifier quoting.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn per_second(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// verify

/// A row on which the live table and the log's replay disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: String,
    /// The row's key as `column=value` (never a hash: API keys are named by `id`).
    pub key: String,
    pub kind: DifferenceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// In the live table; the log does not produce it.
    OnlyLive,
    /// Produced by the log; missing from the live table.
    Missing,
    /// In both, with these columns different (names only, never values).
    Columns(Vec<String>),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.table, self.key)?;
        match &self.kind {
            DifferenceKind::OnlyLive => write!(f, "in the live table but not produced by the log"),
            DifferenceKind::Missing => write!(f, "produced by the log but missing from the live table"),
            DifferenceKind::Columns(c) if c.len() == 1 => write!(f, "{} differs", c[0]),
            DifferenceKind::Columns(c) => write!(f, "{} differ", c.join(", ")),
        }
    }
}

/// What verify found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    /// Events replayed (every event visible in the snapshot).
    pub events: u64,
    /// Tables compared.
    pub tables: usize,
    /// Up to [`MAX_DIFFERENCES`] per table, in table then key order.
    pub differences: Vec<Difference>,
    /// Every difference, counted.
    pub total_differences: u64,
    pub seconds: f64,
}

impl Verified {
    pub fn equal(&self) -> bool {
        self.total_differences == 0
    }
}

/// Replays the log into temporary tables and compares them with the live read tables, all in
/// one REPEATABLE READ snapshot (consistent while iamd writes), then rolls back: nothing is
/// left behind. Usage stamps ([`USAGE_COLUMNS`]) are not compared.
pub async fn verify(client: &mut Client, mut progress: impl FnMut(u64)) -> anyhow::Result<Verified> {
    let started = Instant::now();
    let paths = Paths::of(client).await?;
    // Temporary tables live in session-local buffers (8 MB by default): room for a big log's
    // tables. Only possible before the session touches a temporary table; else keep it.
    let _ = client.batch_execute(&format!("SET temp_buffers = '{VERIFY_TEMP_BUFFERS}'")).await;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(db("starting a snapshot"))?;
    let plan = plan(&tx, &paths.live, "pg_temp").await?;
    tx.batch_execute(&plan.create).await.map_err(db("creating temporary tables"))?;
    let (events, _) =
        replay(&tx, Pager::new(&paths, &plan, "pg_temp", Order::Coalesced), Cursor::START, 0, &mut progress)
            .await?;
    // The log's projection must itself satisfy the read tables' unique constraints.
    enforce(&tx, &plan).await?;
    let mut found = Verified { events, tables: READ_TABLES.len(), ..Default::default() };
    for table in READ_TABLES {
        tx.batch_execute(&format!("ANALYZE pg_temp.{}", ident(table)))
            .await
            .map_err(db("analyzing temporary tables"))?;
        let (total, rows) = diff(&tx, &paths.live, table).await?;
        found.total_differences += total;
        found.differences.extend(rows);
    }
    tx.rollback().await.map_err(db("rolling back"))?;
    found.seconds = started.elapsed().as_secs_f64();
    Ok(found)
}

/// The differences between `live.table` and `pg_temp.table`: the count and the first
/// [`MAX_DIFFERENCES`].
async fn diff(tx: &Transaction<'_>, live: &str, table: &str) -> anyhow::Result<(u64, Vec<Difference>)> {
    let live_table = format!("{}.{}", ident(live), ident(table));
    let columns: Vec<(String, String)> = tx
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&live_table],
        )
        .await
        .map_err(db(format!("reading the columns of {live_table}")))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let key = row_key(tx, &live_table, &columns).await?;
    let compared: Vec<&String> = columns
        .iter()
        .map(|(c, _)| c)
        .filter(|c| !key.contains(c) && !USAGE_COLUMNS.contains(&(table, c.as_str())))
        .collect();
    let key_text: Vec<String> = key
        .iter()
        .map(|k| {
            let bytea = columns.iter().any(|(c, t)| c == k && t == "bytea");
            if bytea {
                // Never print a binary key: it may be a key hash.
                "'(binary)'".to_owned()
            } else {
                format!("COALESCE(s.{k}::text, l.{k}::text)", k = ident(k))
            }
        })
        .collect();
    let join = key.iter().map(|k| format!("s.{k} = l.{k}", k = ident(k))).collect::<Vec<_>>().join(" AND ");
    let differing = if compared.is_empty() {
        "ARRAY[]::text[]".to_owned()
    } else {
        let cases: Vec<String> = compared
            .iter()
            .map(|c| {
                format!(
                    "CASE WHEN s.{q} IS DISTINCT FROM l.{q} THEN {lit} END",
                    q = ident(c),
                    lit = literal(c)
                )
            })
            .collect();
        format!("array_remove(ARRAY[{}]::text[], NULL)", cases.join(", "))
    };
    let changed = if compared.is_empty() {
        "false".to_owned()
    } else {
        let side =
            |p: &str| compared.iter().map(|c| format!("{p}.{}", ident(c))).collect::<Vec<_>>().join(", ");
        format!("ROW({}) IS DISTINCT FROM ROW({})", side("s"), side("l"))
    };
    let sql = format!(
        "SELECT ARRAY[{keys}]::text[], s.iamd_present IS NULL, l.iamd_present IS NULL, {differing}, \
           count(*) OVER () \
         FROM (SELECT *, true AS iamd_present FROM pg_temp.{t}) s \
         FULL JOIN (SELECT *, true AS iamd_present FROM {live_table}) l ON {join} \
         WHERE s.iamd_present IS NULL OR l.iamd_present IS NULL OR {changed} \
         ORDER BY 1 LIMIT {MAX_DIFFERENCES}",
        keys = key_text.join(", "),
        t = ident(table),
    );
    let rows = tx.query(&sql, &[]).await.map_err(db(format!("comparing {table}")))?;
    let mut total = 0;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let values: Vec<Option<String>> = row.get(0);
        let (only_live, only_rebuilt): (bool, bool) = (row.get(1), row.get(2));
        let columns: Vec<String> = row.get(3);
        total = row.get::<_, i64>(4) as u64;
        let key = key
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}={}", v.unwrap_or_default().escape_debug()))
            .collect::<Vec<_>>()
            .join(", ");
        let kind = if only_live {
            DifferenceKind::OnlyLive
        } else if only_rebuilt {
            DifferenceKind::Missing
        } else {
            DifferenceKind::Columns(columns)
        };
        out.push(Difference { table: table.to_owned(), key, kind });
    }
    Ok((total, out))
}

/// The columns that name a row: `id` when it is unique on its own (so an API key is named by
/// its id, not its hash), else the primary key.
async fn row_key(
    tx: &Transaction<'_>,
    table: &str,
    columns: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    if columns.iter().any(|(c, _)| c == "id") {
        let unique_id: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indnkeyatts = 1 \
                   AND i.indexprs IS NULL AND i.indpred IS NULL AND a.attname = 'id')",
                &[&table],
            )
            .await
            .map_err(db(format!("reading the unique indexes of {table}")))?
            .get(0);
        if unique_id {
            return Ok(vec!["id".to_owned()]);
        }
    }
    primary_key(tx, table).await
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn an_index_definition_splits_around_its_table() {
        let def = "CREATE UNIQUE INDEX users_username_lower ON public.users USING btree (lower(username))";
        assert_eq!(
            index_suffix(def, "public.users"),
            Some(("CREATE UNIQUE INDEX users_username_lower", "btree (lower(username))"))
        );
        assert_eq!(index_suffix(def, "public.other"), None);
        assert_eq!(index_suffix("DROP TABLE x ON public.users USING y", "public.users"), None);
    }

    #[test]
    fn differences_name_columns_never_values() {
        let d = |kind| Difference { table: "users".into(), key: "id=u1".into(), kind };
        assert_eq!(
            d(DifferenceKind::Columns(vec!["password_hash".into()])).to_string(),
            "users id=u1: password_hash differs"
        );
        assert_eq!(
            d(DifferenceKind::Columns(vec!["roles".into(), "name".into()])).to_string(),
            "users id=u1: roles, name differ"
        );
        assert_eq!(
            d(DifferenceKind::OnlyLive).to_string(),
            "users id=u1: in the live table but not produced by the log"
        );
        assert_eq!(
            d(DifferenceKind::Missing).to_string(),
            "users id=u1: produced by the log but missing from the live table"
        );
    }

    #[test]
    fn signing_key_stamps_are_not_replayed_into_read_tables() {
        let retired = crate::events::Event::SigningKeyRetired {
            kid: "k".into(),
            retired: Utc::now(),
            valid_until: Utc::now(),
        };
        let ctx = Context { stream: "system", recorded_at: Utc::now() };
        assert!(read_table_statements(&ctx, &retired).is_empty());
        assert_eq!(crate::projections::statements(&ctx, &retired).len(), 1);
    }

    /// A reducer statement that `batch` cannot take apart still replays (alone, a barrier to
    /// regrouping), but every one today can be regrouped: keep it so, or a rebuild slows down
    /// to a statement per request.
    #[test]
    fn every_read_table_statement_can_be_regrouped() {
        use crate::events::{Event, RevokeReason};
        let now = Utc::now();
        let ctx = Context { stream: "workspace:acme", recorded_at: now };
        let events = [
            Event::WorkspaceCreated { workspace_id: "acme".into(), name: "A".into(), created: now },
            Event::WorkspaceRenamed { name: "B".into() },
            Event::WorkspaceDisabled {},
            Event::WorkspaceEnabled {},
            Event::UserCreated {
                user_id: "u".into(),
                username: "a".into(),
                name: "".into(),
                email: "".into(),
                roles: vec![],
                enabled: true,
                must_change_password: false,
                password_hash: None,
                created: now,
            },
            Event::UserChanged {
                user_id: "u".into(),
                username: Some("b".into()),
                name: None,
                email: None,
                roles: None,
                must_change_password: None,
            },
            Event::UserDisabled { user_id: "u".into() },
            Event::UserEnabled { user_id: "u".into() },
            Event::UserPasswordChanged { user_id: "u".into(), password_hash: "h".into() },
            Event::UserPasswordReset { user_id: "u".into(), password_hash: "h".into() },
            Event::UserDeleted { user_id: "u".into(), username: "b".into() },
            Event::ApiKeyCreated {
                key_id: "k".into(),
                user_id: "u".into(),
                name: "n".into(),
                prefix: "tg_x".into(),
                key_hash: crate::crypto::ApiKeyHash::of("tg_x").to_tagged(),
                expires: None,
                created: now,
            },
            Event::ApiKeyRevoked { key_id: "k".into(), reason: RevokeReason::Revoked },
        ];
        let mut seen = 0;
        for event in &events {
            for st in read_table_statements(&ctx, event) {
                let shape = batch::Shape::of(st.sql).unwrap_or_else(|| panic!("not regroupable: {}", st.sql));
                assert_eq!(shape.params, st.params.len(), "{}", st.sql);
                assert!(READ_TABLES.contains(&shape.table.as_str()), "{}", st.sql);
                seen += 1;
            }
        }
        assert!(seen >= events.len(), "{seen}");
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
