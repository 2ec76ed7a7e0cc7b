//! `iamd projections rebuild [--online]` and `iamd projections verify`: the read tables
//! ([`READ_TABLES`]) replayed from the log with the reducers the append path runs inline
//! ([`read_table_writes`]), into shadow tables that are then swapped in or compared.
//!
//! - **Shadow tables** are clones of the live ones, read from the catalog (columns, defaults,
//!   checks, primary keys, unique constraints and indexes under the SAME names, so the store's
//!   constraint-name matching keeps working after a swap, and a later migration that alters a
//!   read table is cloned too). A rebuild puts them in the schema [`SHADOW_SCHEMA`]; verify
//!   uses temporary tables. The reducers' unqualified table names reach them through
//!   `search_path`, which names only the shadow while the writes run, so a write can
//!   never fall through to a live table.
//! - **Order**: commit order, `(transaction_id, position)`, read gaplessly as `store::tail`
//!   does ([`read_log`]). Usernames are unique across workspaces, so a name freed in one
//!   workspace and taken in another must be replayed in the order the two commits happened,
//!   which `(stream, version)` order would not give. That order is still not exactly commit
//!   order (see [`Plan`]), so the unique constraints are built after the replay.
//! - **Speed**: PostgreSQL's cost was per request, not per row, so each page's writes are
//!   regrouped into multi-row statements ([`batch`]: the reducers' typed writes rendered
//!   many rows at a time, each (stream, table) sequence kept in order), sent pipelined; the next
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
mod pager;
mod session;
mod shadow;
mod verify;

use super::tail::{self, Cursor, TailedEvent};
use crate::events::Event;
use crate::projections::write::Shape;
use crate::projections::{read_table_writes, Context, READ_TABLES};
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

use pager::*;
use session::*;
use shadow::*;
pub use verify::{verify, Difference, DifferenceKind, Verified};

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

#[cfg(test)]
mod tests {
    use super::verify::literal;
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
        assert!(read_table_writes(&ctx, &retired).is_empty());
        assert_eq!(crate::projections::writes(&ctx, &retired).len(), 1);
    }

    /// Every read-table write names a table a rebuild replaces and carries the parameters
    /// its shape counts (the multi-row statements are cut by that count).
    #[test]
    fn every_read_table_write_fits_its_shape() {
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
                self_registered: false,
                number: None,
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
            Event::UserProfileChanged {
                user_id: "u".into(),
                first_name: Some("A".into()),
                last_name: None,
                ssh_key: None,
                verified: Some(true),
                renewed: Some(now),
            },
            Event::UserSessionsEnded {
                user_id: "u".into(),
                reason: crate::events::SessionsEndReason::LogoutEverywhere,
            },
            Event::UserDeleted { user_id: "u".into(), username: "b".into(), reason: None },
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
            for w in read_table_writes(&ctx, event) {
                assert_eq!(w.shape.params(), w.params.len(), "{}", w.shape.sql());
                assert!(READ_TABLES.contains(&w.shape.table), "{}", w.shape.sql());
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
