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
//! - **Order**: commit order, `(transaction_id, position)`, read gaplessly as `events::tail`
//!   does ([`read_log`]). Usernames are unique across workspaces, so a name freed in one
//!   workspace and taken in another must be replayed in the order the two commits happened,
//!   which `(stream, version)` order would not give. That order is still not exactly commit
//!   order (see [`Plan`]), so the unique constraints are built after the replay.
//! - **Speed**: each page of events goes out pipelined — every statement is sent the moment it
//!   is built and its reply awaited later, in order, thousands in flight — instead of one
//!   round trip per statement.
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

use super::{read_table_statements, Context, READ_TABLES};
use crate::events::tail::{self, Cursor, TailedEvent};
use crate::events::RecordedEvent;
use anyhow::{anyhow, bail};
use deadpool_postgres::{Client, GenericClient, Transaction};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

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
/// Statements in flight on the connection at once.
const WINDOW: usize = 4_096;
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
    let (events, _) = replay(&tx, paths, &paths.shadow(), Cursor::START, 0, progress).await?;
    enforce(&tx, &plan).await?;
    swap(&tx, paths, true).await?;
    tx.commit().await.map_err(db("committing the rebuilt tables"))?;
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
        (events, cursor) = catch_up(client, paths, cursor, events, progress).await?;
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
        enforce(&tx, &plan).await?;
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
async fn catch_up(
    client: &mut Client,
    paths: &Paths,
    mut cursor: Cursor,
    mut events: u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<(u64, Cursor)> {
    loop {
        let page = read_log(&*client, cursor, Bound::Finished).await.map_err(db("reading the log"))?;
        let Some(last) = page.last() else { break };
        let next = last.cursor;
        let tx = client.transaction().await.map_err(db("starting a batch"))?;
        // Losing the last batches in a crash only loses the shadow, which is dropped anyway.
        tx.batch_execute("SET LOCAL synchronous_commit = off").await.map_err(db("starting a batch"))?;
        set_path(&tx, &paths.shadow()).await?;
        apply(&tx, &page).await?;
        tx.commit().await.map_err(db("committing a batch of the shadow tables"))?;
        cursor = next;
        events += page.len() as u64;
        progress(events);
        if (page.len() as i64) < PAGE {
            break;
        }
    }
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
    let total = match replay(&tx, paths, &paths.shadow(), cursor, events, progress).await {
        Ok((total, _)) => total,
        Err(e) if unique_violation(&e) => {
            // Two of the last transactions freed and took the same name, and the taker got
            // the lower transaction id (it waited on the freer's row lock): replay them with
            // the unique constraints set aside, then put them back.
            tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT iamd_last_events; {}", plan.relax))
                .await
                .map_err(db("setting the shadow's unique constraints aside"))?;
            let (total, _) = replay(&tx, paths, &paths.shadow(), cursor, events, progress).await?;
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

/// Where the live read tables are, and the session's own `search_path` (restored to read the
/// log between pages).
struct Paths {
    live: String,
    search_path: String,
}

impl Paths {
    async fn of(client: &Client) -> anyhow::Result<Paths> {
        let rows = client
            .query(
                "SELECT t, (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n \
                   ON n.oid = c.relnamespace WHERE c.oid = to_regclass(t)), current_setting('search_path') \
                 FROM unnest($1::text[]) t",
                &[&READ_TABLES.to_vec()],
            )
            .await
            .map_err(db("finding the read tables"))?;
        let mut live: Option<String> = None;
        let mut search_path = String::new();
        for row in &rows {
            let table: String = row.get(0);
            let schema: Option<String> = row.get(1);
            search_path = row.get(2);
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
        Ok(Paths { live: live.unwrap_or_else(|| "public".into()), search_path })
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
    paths: &Paths,
    shadow_path: &str,
    mut cursor: Cursor,
    mut done: u64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<(u64, Cursor)> {
    loop {
        set_path(tx, &paths.search_path).await?;
        let page = read_log(tx, cursor, Bound::None).await.map_err(db("reading the log"))?;
        let Some(last) = page.last() else { break };
        cursor = last.cursor;
        set_path(tx, shadow_path).await?;
        apply(tx, &page).await?;
        done += page.len() as u64;
        progress(done);
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    set_path(tx, &paths.search_path).await?;
    Ok((done, cursor))
}

/// Which events [`read_log`] may return.
#[derive(Clone, Copy)]
enum Bound {
    /// Only those whose transactions have ended (below `pg_snapshot_xmin`), as
    /// [`crate::events::tail::read_after`].
    Finished,
    /// Every one after the cursor, as [`crate::events::tail::read_rest_locked`].
    None,
}

/// The next [`PAGE`] events after `cursor` in commit order, through [`crate::events::tail`].
async fn read_log(
    client: &impl GenericClient,
    cursor: Cursor,
    bound: Bound,
) -> Result<Vec<TailedEvent>, tokio_postgres::Error> {
    match bound {
        Bound::Finished => tail::read_after(client, cursor, PAGE).await,
        Bound::None => tail::read_rest_locked(client, cursor, PAGE).await,
    }
}

async fn set_path(tx: &Transaction<'_>, path: &str) -> anyhow::Result<()> {
    let stmt = tx
        .prepare_cached("SELECT set_config('search_path', $1, true)")
        .await
        .map_err(db("setting search_path"))?;
    tx.query_one(&stmt, &[&path]).await.map_err(db("setting search_path"))?;
    Ok(())
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + 'a>>;

/// Runs the read-table statements of `events`, in order, pipelined: each request is sent as
/// soon as it is built (a tokio-postgres request goes out on its future's first poll) and
/// its reply awaited later, in order, with at most [`WINDOW`] outstanding. The first failure
/// is reported against its event; PostgreSQL refuses everything after it in the transaction.
async fn apply(tx: &Transaction<'_>, events: &[TailedEvent]) -> anyhow::Result<()> {
    let mut inflight: VecDeque<(usize, Pending<'_>)> = VecDeque::with_capacity(WINDOW + 8);
    for (i, tailed) in events.iter().enumerate() {
        let recorded = &tailed.event;
        let event = recorded.decode().map_err(|_| undecodable(recorded))?;
        let ctx = Context { stream: &recorded.stream, recorded_at: recorded.recorded_at };
        for st in read_table_statements(&ctx, &event) {
            let stmt = match tx.prepare_cached(st.sql).await {
                Ok(stmt) => stmt,
                Err(e) => {
                    // A statement in flight may have failed first (and so failed this one):
                    // report that one.
                    while !inflight.is_empty() {
                        settle(&mut inflight, events).await?;
                    }
                    return Err(not_applied(recorded, &e));
                }
            };
            let mut pending: Pending<'_> = Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> = st.params.iter().map(|p| p.as_ref() as _).collect();
                tx.execute(&stmt, &params).await
            });
            match futures_util::poll!(pending.as_mut()) {
                Poll::Ready(result) => {
                    result.map_err(|e| not_applied(recorded, &e))?;
                }
                Poll::Pending => inflight.push_back((i, pending)),
            }
            while inflight.len() > WINDOW {
                settle(&mut inflight, events).await?;
            }
        }
    }
    while !inflight.is_empty() {
        settle(&mut inflight, events).await?;
    }
    Ok(())
}

async fn settle(inflight: &mut VecDeque<(usize, Pending<'_>)>, events: &[TailedEvent]) -> anyhow::Result<()> {
    if let Some((i, pending)) = inflight.pop_front() {
        pending.await.map_err(|e| not_applied(&events[i].event, &e))?;
    }
    Ok(())
}

/// The decoder's message may quote payload values (hashes): this names the event only.
fn undecodable(e: &RecordedEvent) -> anyhow::Error {
    anyhow!(
        "the event at position {} ({} v{} of {}, schema version {}) does not decode: replay stopped",
        e.position,
        e.event_type,
        e.version,
        e.stream,
        e.schema_version
    )
}

fn not_applied(e: &RecordedEvent, err: &tokio_postgres::Error) -> anyhow::Error {
    DbFailure::new(
        format!(
            "the event at position {} ({} v{} of {}) could not be applied",
            e.position, e.event_type, e.version, e.stream
        ),
        err,
    )
    .into()
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
struct Plan {
    /// Tables, checks, exclusion constraints, plain indexes and the lookup indexes.
    create: String,
    /// Builds the unique constraints and indexes, drops the lookup indexes.
    enforce: String,
    /// The reverse of `enforce` (for the online rebuild's final step).
    relax: String,
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

async fn enforce(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.enforce).await.map_err(|e| {
        DbFailure::new(
            "the replayed read tables break a unique constraint (the log holds conflicting events)".into(),
            &e,
        )
        .into()
    })
}

/// Clones every read table `live.t` as `target.t` (`target` may be `pg_temp`): the same
/// columns, defaults, checks, and the same constraint and index names (the store tells a
/// taken username from its constraint's name), cloned from the catalog so that a migration
/// that changes a read table changes its shadow too.
async fn plan(tx: &Transaction<'_>, live: &str, target: &str) -> anyhow::Result<Plan> {
    let mut plan = Plan { create: String::new(), enforce: String::new(), relax: String::new() };
    let mut lookups = String::new();
    for (n, table) in READ_TABLES.iter().enumerate() {
        let from = format!("{}.{}", ident(live), ident(table));
        let to = format!("{}.{}", ident(target), ident(table));
        plan.create.push_str(&format!(
            "CREATE TABLE {to} (LIKE {from} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY \
             INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION);"
        ));
        // Every index, with the constraint it backs (if any) and the table's name as
        // pg_get_indexdef prints it.
        let rows = tx
            .query(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique, \
                   quote_ident(n.nspname) || '.' || quote_ident(t.relname), \
                   k.conname::text, k.contype::text, pg_get_constraintdef(k.oid) \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
                 WHERE i.indrelid = $1::text::regclass ORDER BY 1",
                &[&from],
            )
            .await
            .map_err(db(format!("reading the indexes of {from}")))?;
        for (m, row) in rows.iter().enumerate() {
            let name: String = row.get(0);
            let def: String = row.get(1);
            let unique: bool = row.get(2);
            let printed: String = row.get(3);
            let constraint: Option<(String, String, String)> =
                row.get::<_, Option<String>>(4).map(|c| (c, row.get(5), row.get(6)));
            let (using, suffix) = index_suffix(&def, &printed)
                .ok_or_else(|| anyhow!("cannot clone the index {name} of {from}: unexpected definition"))?;
            let exclusion = constraint.as_ref().is_some_and(|(_, kind, _)| kind == "x");
            if !unique || exclusion {
                match &constraint {
                    Some((c, _, cdef)) => {
                        plan.create.push_str(&format!("ALTER TABLE {to} ADD CONSTRAINT {} {cdef};", ident(c)))
                    }
                    None => plan.create.push_str(&format!("{using} ON {to} USING {suffix};")),
                }
                continue;
            }
            let lookup = format!("iamd_lookup_{n}_{m}");
            lookups.push_str(&format!("CREATE INDEX {lookup} ON {to} USING {suffix};"));
            plan.enforce.push_str(&format!("DROP INDEX {}.{lookup};", ident(target)));
            plan.relax.push_str(&format!("CREATE INDEX {lookup} ON {to} USING {suffix};"));
            match &constraint {
                Some((c, _, cdef)) => {
                    plan.enforce.push_str(&format!("ALTER TABLE {to} ADD CONSTRAINT {} {cdef};", ident(c)));
                    plan.relax.push_str(&format!("ALTER TABLE {to} DROP CONSTRAINT {};", ident(c)));
                }
                None => {
                    plan.enforce.push_str(&format!("{using} ON {to} USING {suffix};"));
                    plan.relax.push_str(&format!("DROP INDEX {}.{};", ident(target), ident(&name)));
                }
            }
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
    plan.create.push_str(&lookups);
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
    let (events, _) = replay(&tx, &paths, "pg_temp", Cursor::START, 0, &mut progress).await?;
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
        assert_eq!(super::super::statements(&ctx, &retired).len(), 1);
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
