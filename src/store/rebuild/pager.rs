//! The replay: pages of the log read in commit order, each page's statements regrouped
//! ([`super::batch`]) and sent pipelined while the next page is read and planned ([`Pager`]).

use super::*;

/// Replays every event after `cursor` into the tables `shadow_path` names, in one
/// transaction; returns the running total (`done` + replayed) and the last cursor. Reads with
/// no transaction bound ([`Bound::None`]): only right under the events lock, or inside one
/// snapshot that both the replay and the comparison read (verify).
pub(super) async fn replay(
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
pub(super) type Planned = (Vec<LogEvent>, anyhow::Result<Vec<Batch>>);

/// Applies pages of events to the shadow tables, each while the next is read and planned.
pub(super) struct Pager<'a> {
    pub(super) paths: &'a Paths,
    pub(super) plan: &'a Plan,
    pub(super) shadow_path: &'a str,
    pub(super) order: Order,
    pub(super) texts: BatchTexts,
    pub(super) stats: Stats,
}

impl<'a> Pager<'a> {
    pub(super) fn new(paths: &'a Paths, plan: &'a Plan, shadow_path: &'a str, order: Order) -> Pager<'a> {
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
    pub(super) async fn apply_and_read(
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
pub(super) struct Stats {
    /// The reducers' statements.
    pub(super) statements: u64,
    /// [`Batch`]es they were grouped in.
    pub(super) batches: u64,
    /// Requests sent (a batch is one statement, or a few past the row limits).
    pub(super) requests: u64,
}

/// Which events [`read_log`] may return.
#[derive(Clone, Copy)]
pub(super) enum Bound {
    /// Only those whose transactions have ended (below `pg_snapshot_xmin`), as
    /// [`crate::store::tail::read_after`].
    Finished,
    /// Every one after the cursor, as [`crate::store::tail::read_rest_locked`] ([`READ_REST`]).
    None,
}

/// An event as the replay reads it: what the reducers and the error messages need. (Not its
/// metadata or hashes: a third of a row's bytes that the replay would read, send and decode
/// for nothing.)
pub(super) struct LogEvent {
    pub(super) cursor: Cursor,
    pub(super) position: i64,
    pub(super) stream: String,
    pub(super) version: i64,
    pub(super) event_type: String,
    pub(super) schema_version: i32,
    /// Taken by [`plan_page`] (left `Null`).
    pub(super) payload: serde_json::Value,
    pub(super) recorded_at: DateTime<Utc>,
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
pub(super) const READ_REST: &str =
    "SELECT transaction_id::text, position, stream, version, event_type, schema_version, \
    payload, recorded_at FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) \
    ORDER BY events.transaction_id, events.position LIMIT $3";

/// The next [`PAGE`] events after `cursor` in commit order: with [`Bound::Finished`], through
/// [`crate::store::tail::read_after`] (the gapless reader); with [`Bound::None`], its
/// unbounded twin [`READ_REST`].
pub(super) async fn read_log(
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

/// Whether a page's statements may be regrouped into multi-row statements ([`batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Regrouped: each (stream, table) sequence keeps its order, the rest may not. The end
    /// state is the same; the unique constraints must be set aside until the end (they are,
    /// except in the online rebuild's final step).
    Coalesced,
    /// Every statement alone, in commit order.
    Strict,
}

/// Decodes a page of events and plans the batches that apply their read-table statements.
/// Pure: no I/O (runs on the blocking pool while PostgreSQL applies the previous page).
pub(super) fn plan_page(events: &mut [LogEvent], order: Order) -> anyhow::Result<Vec<Batch>> {
    let mut decoded = Vec::with_capacity(events.len());
    for e in events.iter_mut() {
        let payload = std::mem::take(&mut e.payload);
        decoded
            .push(Event::from_columns(&e.event_type, e.schema_version, payload).map_err(|_| undecodable(e))?);
    }
    let mut items = Vec::with_capacity(events.len() * 3 / 2);
    for (i, (e, event)) in events.iter().zip(&decoded).enumerate() {
        let ctx = Context { stream: &e.stream, recorded_at: e.recorded_at };
        for write in read_table_writes(&ctx, event) {
            items.push(batch::Item { event: i, stream: &e.stream, write });
        }
    }
    Ok(batch::schedule(items, order == Order::Coalesced))
}

/// [`plan_page`] on the blocking pool; gives the page back with its plan.
pub(super) async fn plan_off_thread(
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

/// The SQL of multi-row statements, by (single-row SQL, rows).
#[derive(Default)]
pub(super) struct BatchTexts(pub(super) HashMap<(&'static str, usize), String>);

pub(super) type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + 'a>>;

/// A request in flight: rows `rows` of batch `batch`.
pub(super) struct Request<'a> {
    pub(super) batch: usize,
    pub(super) rows: Range<usize>,
    pub(super) pending: Pending<'a>,
}

/// Sends the statements of `batches`, in order, pipelined: each request is sent as soon as it
/// is built (a tokio-postgres request goes out on its future's first poll) and its reply
/// awaited later ([`settle`]), in order, with at most [`WINDOW`] outstanding. A batch of more
/// than one row is one multi-row statement (or a few: [`crate::projections::write::Shape::pieces`]). The first
/// failure is reported against its event(s); PostgreSQL refuses everything after it in the
/// transaction.
pub(super) async fn send<'a>(
    tx: &'a Transaction<'_>,
    plan: &Plan,
    events: &[LogEvent],
    batches: &'a [Batch],
    texts: &mut BatchTexts,
    inflight: &mut VecDeque<Request<'a>>,
) -> anyhow::Result<u64> {
    let mut requests = 0;
    for (b, batch) in batches.iter().enumerate() {
        if let Some(sql) = plan.lookups_for(batch.shape) {
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
pub(super) fn pieces(batch: &Batch) -> Vec<usize> {
    batch.shape.pieces(batch.rows.len())
}

/// The prepared statement for `rows` rows of `batch`: the single-row one for one, else the
/// multi-row one, prepared with the single-row statement's parameter types repeated.
/// `single` keeps the single-row one once prepared.
pub(super) async fn statement(
    tx: &Transaction<'_>,
    batch: &Batch,
    rows: usize,
    single: &mut Option<tokio_postgres::Statement>,
    texts: &mut BatchTexts,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    let single = match single {
        Some(stmt) => stmt,
        None => single.insert(tx.prepare_cached(batch.shape.sql()).await?),
    };
    if rows == 1 {
        return Ok(single.clone());
    }
    let types: Vec<Type> = (0..rows).flat_map(|_| single.params().iter().cloned()).collect();
    let text = texts.0.entry((batch.shape.sql(), rows)).or_insert_with(|| batch.shape.batched(rows));
    tx.prepare_typed_cached(text, &types).await
}

pub(super) async fn settle(
    inflight: &mut VecDeque<Request<'_>>,
    events: &[LogEvent],
    batches: &[Batch],
) -> anyhow::Result<()> {
    if let Some(r) = inflight.pop_front() {
        r.pending.await.map_err(|e| not_applied(events, &batches[r.batch], r.rows, &e))?;
    }
    Ok(())
}

pub(super) async fn settle_all(
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
pub(super) fn undecodable(e: &LogEvent) -> anyhow::Error {
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
pub(super) fn not_applied(
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

pub(super) fn per_second(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}
