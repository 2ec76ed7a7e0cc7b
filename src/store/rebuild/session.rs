//! The rebuild's session: where its statements point (`search_path` over the shadow or
//! temporary tables, [`Paths`]), and its database errors as one line naming what was being done.

use super::*;

/// Where the live read tables are, and the session's own `search_path` and [`PLANNER_OFF`]
/// settings (restored to read the log between pages).
pub(super) struct Paths {
    pub(super) live: String,
    pub(super) search_path: String,
    pub(super) planner: Vec<String>,
}

impl Paths {
    pub(super) async fn of(client: &Client) -> anyhow::Result<Paths> {
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
    pub(super) fn shadow(&self) -> String {
        ident(SHADOW_SCHEMA)
    }
}

/// Where the unqualified names of a transaction's statements go.
#[derive(Clone, Copy)]
pub(super) enum Names<'a> {
    /// Only to this schema (the reducers' statements), with [`PLANNER_OFF`] off.
    Shadow(&'a str),
    /// The session's own `search_path` and planner settings (reading the log).
    Live,
}

/// Sets `search_path` and the [`PLANNER_OFF`] settings for the rest of the transaction (or
/// until set again). The request goes out on the first poll once the statement is prepared,
/// which the first call of a replay awaits.
pub(super) async fn set_path(tx: &Transaction<'_>, paths: &Paths, names: Names<'_>) -> anyhow::Result<()> {
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

/// A database error as one line: what was being done, then [`crate::db::error_line`] (never
/// its DETAIL, which quotes key values, e.g. a key hash). Keeps the SQLSTATE.
#[derive(Debug)]
pub(super) struct DbFailure {
    pub(super) what: String,
    pub(super) message: String,
    pub(super) code: Option<SqlState>,
}

impl DbFailure {
    pub(super) fn new(what: String, err: &tokio_postgres::Error) -> DbFailure {
        DbFailure { what, message: crate::db::error_line(err), code: err.code().cloned() }
    }
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

impl std::error::Error for DbFailure {}

/// `map_err` for database calls: a [`DbFailure`] saying what was being done.
pub(super) fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> anyhow::Error {
    let what = what.into();
    move |err| DbFailure::new(what, &err).into()
}

/// SQL identifier quoting.
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
