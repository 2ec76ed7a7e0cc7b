//! `iamd projections verify`: the log replayed into temporary tables and compared with the
//! live ones row by row, in one snapshot.

use super::*;

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
pub(super) async fn diff(
    tx: &Transaction<'_>,
    live: &str,
    table: &str,
) -> anyhow::Result<(u64, Vec<Difference>)> {
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
pub(super) async fn row_key(
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
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
