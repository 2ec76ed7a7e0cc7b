//! The shadow tables: clones of the live read tables read from the catalog, filled without
//! their indexes and given them (and their constraints) after the replay ([`Plan`]).

use super::*;

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
/// finds its rows by that column ([`Plan::lookups`]). The real indexes are built after the replay, in one sort each
/// ([`Plan::indexes`]; the unique ones and the constraints in `enforce`).
pub(super) struct Plan {
    /// Tables, checks and exclusion constraints.
    pub(super) create: String,
    /// Builds the unique constraints and indexes, drops the lookup indexes.
    pub(super) enforce: String,
    /// The reverse of `enforce` (for the online rebuild's final step).
    pub(super) relax: String,
    /// Builds the non-unique indexes (a rebuild's; verify compares rows, it needs none).
    pub(super) indexes: String,
    /// Indexes the replay may need, created when it first does.
    pub(super) lookups: Vec<Lookup>,
    /// A rebuild's shadow tables are UNLOGGED while they are filled (no WAL for every row
    /// version the replay writes); this drops the lookup indexes `enforce` would drop and
    /// makes them logged, which rewrites each, WAL-logged, with only its live rows (see
    /// [`make_durable`]). Empty for verify's temporary tables.
    pub(super) durable: String,
}

/// An index of the replay's own on a column of a shadow table that one of the read table's
/// indexes is on (alone, plainly): for finding rows by it. Dropped before the real indexes
/// and constraints are built.
pub(super) struct Lookup {
    /// The table, as the reducers name it.
    pub(super) table: String,
    pub(super) column: String,
    /// `CREATE INDEX IF NOT EXISTS iamd_lookup_… USING hash (column)` (or, for a type without
    /// a hash operator class, the read table's index definition).
    pub(super) create: String,
    /// Created, or no longer needed (the real constraints and indexes are there).
    pub(super) ready: std::cell::Cell<bool>,
}

impl Plan {
    /// The lookup indexes writes of `shape` need that are not there yet, as one SQL string,
    /// marked as there.
    pub(super) fn lookups_for(&self, shape: &Shape) -> Option<String> {
        let mut sql = String::new();
        for lookup in self.lookups.iter().filter(|l| !l.ready.get()) {
            let needed = shape.table == lookup.table && shape.finds_rows_by(&lookup.column);
            if needed {
                sql.push_str(&lookup.create);
                lookup.ready.set(true);
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

/// Drops a stale shadow schema and creates an empty one with a clone of every read table.
pub(super) async fn fresh_shadow_schema(tx: &Transaction<'_>, paths: &Paths) -> anyhow::Result<Plan> {
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
pub(super) async fn make_durable(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.durable).await.map_err(db("making the shadow tables logged"))
}

/// Builds the indexes the replay does without ([`Plan::indexes`]).
pub(super) async fn build_indexes(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
    tx.batch_execute(&plan.indexes).await.map_err(db("building the shadow tables' indexes"))
}

/// Builds the unique constraints (and drops the lookup indexes they replace). From here on
/// the replay's lookups are served by the real constraints and indexes ([`build_indexes`]
/// follows in a rebuild): no lookup index is created any more.
pub(super) async fn enforce(tx: &Transaction<'_>, plan: &Plan) -> anyhow::Result<()> {
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
pub(super) async fn plan(tx: &Transaction<'_>, live: &str, target: &str) -> anyhow::Result<Plan> {
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
pub(super) fn index_suffix<'a>(def: &'a str, table: &str) -> Option<(&'a str, &'a str)> {
    let on = format!(" ON {table} USING ");
    if !def.starts_with("CREATE ") || def.matches(&on).count() != 1 {
        return None;
    }
    def.split_once(&on)
}

/// The primary-key columns of `table`, in order.
pub(super) async fn primary_key(client: &impl GenericClient, table: &str) -> anyhow::Result<Vec<String>> {
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
pub(super) fn drop_shadow_schema() -> String {
    format!(
        "BEGIN; SET LOCAL client_min_messages = warning; DROP SCHEMA IF EXISTS {} CASCADE; COMMIT",
        ident(SHADOW_SCHEMA)
    )
}
