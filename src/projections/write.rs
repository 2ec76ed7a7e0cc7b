//! Typed writes: what a reducer asks of a read table, as data — an insert, an update or a
//! delete, with its table, columns and key. Both statements are rendered from the same
//! [`Shape`]: the single-row one a live append runs ([`Shape::sql`]) and the multi-row one a
//! rebuild runs for many events at once ([`Shape::batched`]). Nothing parses SQL text.
//!
//! Each reducer declares its shapes as `static`s, so a shape's identity (and its rendered SQL,
//! computed once) is shared by every write of that kind.

use std::fmt::Write as _;
use std::sync::OnceLock;
use tokio_postgres::types::ToSql;

/// A parameter of a write.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// Rows of one multi-row statement at most (also bounded by PostgreSQL's 65,535 parameters).
pub const MAX_ROWS: usize = 1_024;
/// Batches of up to this many rows get a statement of their exact size; bigger ones are
/// split into power-of-two pieces, so that a connection prepares few distinct statements.
const EXACT_UP_TO: usize = 16;

/// The three kinds of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Insert,
    Update,
    Delete,
}

/// How a column of an insert, or of an update's `SET`, gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// The write's next parameter.
    Param,
    /// The write's next parameter, an `Option`: `None` leaves the column as it is (update
    /// only: `COALESCE($n, column)`).
    ParamOrKeep,
    /// A constant, written as SQL: `true`, `false`, `NULL`, `1`.
    Literal(&'static str),
    /// The column's value plus one (update only).
    Increment,
}

/// One kind of write: an insert of `columns` into `table`; an update of `columns` of the rows
/// of `table` whose `key` equals the first parameter; or a delete of those rows. Parameters
/// come in that order: the key (update, delete), then one per [`Value::Param`] or
/// [`Value::ParamOrKeep`] column, in column order.
#[derive(Debug)]
pub struct Shape {
    pub kind: Kind,
    /// The table, unqualified: a rebuild's `search_path` points it at a shadow table.
    pub table: &'static str,
    /// Update and delete: the column rows are found by.
    pub key: Option<&'static str>,
    pub columns: &'static [(&'static str, Value)],
    sql: OnceLock<String>,
}

impl Shape {
    /// `INSERT INTO table (columns) VALUES (…)`. Only [`Value::Param`] and [`Value::Literal`].
    pub const fn insert(table: &'static str, columns: &'static [(&'static str, Value)]) -> Shape {
        assert!(!columns.is_empty(), "an insert writes at least one column");
        let mut i = 0;
        while i < columns.len() {
            assert!(
                matches!(columns[i].1, Value::Param | Value::Literal(_)),
                "an insert has no old value to keep or increment"
            );
            i += 1;
        }
        Shape { kind: Kind::Insert, table, key: None, columns, sql: OnceLock::new() }
    }

    /// `UPDATE table SET columns WHERE key = $1`.
    pub const fn update(
        table: &'static str,
        key: &'static str,
        columns: &'static [(&'static str, Value)],
    ) -> Shape {
        assert!(!columns.is_empty(), "an update sets at least one column");
        Shape { kind: Kind::Update, table, key: Some(key), columns, sql: OnceLock::new() }
    }

    /// `DELETE FROM table WHERE key = $1`.
    pub const fn delete(table: &'static str, key: &'static str) -> Shape {
        Shape { kind: Kind::Delete, table, key: Some(key), columns: &[], sql: OnceLock::new() }
    }

    /// How many parameters one write of this shape has.
    pub fn params(&self) -> usize {
        usize::from(self.key.is_some())
            + self.columns.iter().filter(|(_, v)| matches!(v, Value::Param | Value::ParamOrKeep)).count()
    }

    /// The single-row statement (rendered once).
    pub fn sql(&'static self) -> &'static str {
        self.sql.get_or_init(|| self.render(1))
    }

    /// The statement that does what `rows` writes of this shape do one after another, taking
    /// their parameters in order (row 1's, then row 2's, …). For one row, [`Shape::sql`].
    ///
    /// - insert: `INSERT INTO t (…) VALUES (<row 1>), (<row 2>), …`;
    /// - update: `UPDATE t SET c = iamd_batch.iamd_p2, … FROM (VALUES ($1, $2), …) AS
    ///   iamd_batch(iamd_p1, iamd_p2) WHERE key = iamd_batch.iamd_p1`;
    /// - delete: `DELETE FROM t USING (VALUES ($1), …) AS iamd_batch(iamd_p1) WHERE key =
    ///   iamd_batch.iamd_p1`.
    ///
    /// An update's `FROM` list holding two rows for one target row applies only one of them:
    /// a batch must not hold two updates of the same row (the scheduler sees to it).
    pub fn batched(&self, rows: usize) -> String {
        self.render(rows.max(1))
    }

    fn render(&self, rows: usize) -> String {
        let n = self.params();
        let (table, key) = (self.table, self.key.unwrap_or_default());
        match self.kind {
            Kind::Insert => {
                let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
                let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
                for r in 0..rows {
                    sql.push_str(if r == 0 { "(" } else { ", (" });
                    let mut p = r * n;
                    for (i, (_, value)) in self.columns.iter().enumerate() {
                        if i > 0 {
                            sql.push_str(", ");
                        }
                        match value {
                            Value::Literal(l) => sql.push_str(l),
                            _ => {
                                p += 1;
                                let _ = write!(sql, "${p}");
                            }
                        }
                    }
                    sql.push(')');
                }
                sql
            }
            Kind::Update | Kind::Delete => {
                // One row: `$i`; several: the column `iamd_pi` of the VALUES list.
                let param =
                    |i: usize| if rows == 1 { format!("${i}") } else { format!("iamd_batch.iamd_p{i}") };
                let mut sql = match self.kind {
                    Kind::Update => format!("UPDATE {table} SET "),
                    _ => format!("DELETE FROM {table}"),
                };
                let mut p = 1;
                for (i, (column, value)) in self.columns.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    let value = match value {
                        Value::Param => {
                            p += 1;
                            param(p)
                        }
                        Value::ParamOrKeep => {
                            p += 1;
                            format!("COALESCE({}, {column})", param(p))
                        }
                        Value::Literal(l) => (*l).to_owned(),
                        Value::Increment => format!("{column} + 1"),
                    };
                    let _ = write!(sql, "{column} = {value}");
                }
                if rows > 1 {
                    let mut values = String::new();
                    for r in 0..rows {
                        values.push_str(if r == 0 { "(" } else { ", (" });
                        for i in 1..=n {
                            let _ = write!(values, "{}${}", if i == 1 { "" } else { ", " }, i + r * n);
                        }
                        values.push(')');
                    }
                    let columns = (1..=n).map(|i| format!("iamd_p{i}")).collect::<Vec<_>>().join(", ");
                    let join = if self.kind == Kind::Update { "FROM" } else { "USING" };
                    let _ = write!(sql, " {join} (VALUES {values}) AS iamd_batch({columns})");
                }
                let _ = write!(sql, " WHERE {key} = {}", param(1));
                sql
            }
        }
    }

    /// Whether rows are found by `column` (so that an index on it may find them).
    pub fn finds_rows_by(&self, column: &str) -> bool {
        self.key.is_some_and(|k| k.eq_ignore_ascii_case(column))
    }

    /// Whether consecutive writes of one (stream, table) sequence may share a batch: a
    /// multi-row insert inserts its rows in order, and deleting the rows matching any of
    /// several keys at once leaves what deleting them one after another leaves; two updates
    /// of one row may not (see [`Shape::batched`]).
    pub fn runs(&self) -> bool {
        matches!(self.kind, Kind::Insert | Kind::Delete)
    }

    /// The most rows one statement of this shape may carry: a power of two.
    fn max_rows(&self) -> usize {
        let by_params = (u16::MAX as usize / self.params().max(1)).max(1);
        let cap = by_params.min(MAX_ROWS);
        1 << (usize::BITS - 1 - cap.leading_zeros())
    }

    /// How a batch of `rows` is cut into statements: exact sizes up to a small bound, else
    /// powers of two (largest first), then the rest.
    pub fn pieces(&self, mut rows: usize) -> Vec<usize> {
        let max = self.max_rows();
        let mut out = Vec::new();
        while rows > EXACT_UP_TO.min(max) {
            let p = (1 << (usize::BITS - 1 - rows.leading_zeros())).min(max);
            out.push(p);
            rows -= p;
        }
        if rows > 0 {
            out.push(rows);
        }
        out
    }
}

/// One write a reducer asks for: its shape and its parameters.
pub struct Write {
    pub shape: &'static Shape,
    pub params: Vec<Param>,
}

impl Write {
    pub fn new(shape: &'static Shape, params: Vec<Param>) -> Write {
        debug_assert_eq!(params.len(), shape.params(), "{}", shape.table);
        Write { shape, params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    static RESERVE: Shape = Shape::insert("unique_usernames", &[("username_key", Param), ("user_id", Param)]);
    static WORKSPACE: Shape = Shape::insert(
        "workspaces",
        &[("id", Param), ("name", Param), ("enabled", Literal("true")), ("created", Param)],
    );
    static PASSWORD: Shape = Shape::update(
        "users",
        "id",
        &[
            ("password_hash", Param),
            ("must_change_password", Literal("false")),
            ("account_version", Increment),
        ],
    );
    static CHANGE: Shape = Shape::update("users", "id", &[("username", ParamOrKeep), ("name", ParamOrKeep)]);
    static REVOKE: Shape = Shape::delete("api_keys", "id");

    #[test]
    fn one_row_is_the_plain_statement() {
        assert_eq!(RESERVE.sql(), "INSERT INTO unique_usernames (username_key, user_id) VALUES ($1, $2)");
        assert_eq!(
            WORKSPACE.sql(),
            "INSERT INTO workspaces (id, name, enabled, created) VALUES ($1, $2, true, $3)"
        );
        assert_eq!(
            PASSWORD.sql(),
            "UPDATE users SET password_hash = $2, must_change_password = false, \
             account_version = account_version + 1 WHERE id = $1"
        );
        assert_eq!(
            CHANGE.sql(),
            "UPDATE users SET username = COALESCE($2, username), name = COALESCE($3, name) WHERE id = $1"
        );
        assert_eq!(REVOKE.sql(), "DELETE FROM api_keys WHERE id = $1");
        assert_eq!((RESERVE.params(), WORKSPACE.params(), PASSWORD.params(), CHANGE.params()), (2, 3, 2, 3));
        assert_eq!(REVOKE.params(), 1);
    }

    #[test]
    fn inserts_become_multi_row_values() {
        assert_eq!(
            RESERVE.batched(3),
            "INSERT INTO unique_usernames (username_key, user_id) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
        assert_eq!(
            WORKSPACE.batched(2),
            "INSERT INTO workspaces (id, name, enabled, created) VALUES ($1, $2, true, $3), ($4, $5, true, $6)"
        );
    }

    #[test]
    fn updates_and_deletes_join_a_values_list() {
        assert_eq!(
            PASSWORD.batched(2),
            "UPDATE users SET password_hash = iamd_batch.iamd_p2, must_change_password = false, \
             account_version = account_version + 1 FROM (VALUES ($1, $2), ($3, $4)) \
             AS iamd_batch(iamd_p1, iamd_p2) WHERE id = iamd_batch.iamd_p1"
        );
        assert_eq!(
            CHANGE.batched(2),
            "UPDATE users SET username = COALESCE(iamd_batch.iamd_p2, username), \
             name = COALESCE(iamd_batch.iamd_p3, name) FROM (VALUES ($1, $2, $3), ($4, $5, $6)) \
             AS iamd_batch(iamd_p1, iamd_p2, iamd_p3) WHERE id = iamd_batch.iamd_p1"
        );
        assert_eq!(
            REVOKE.batched(3),
            "DELETE FROM api_keys USING (VALUES ($1), ($2), ($3)) AS iamd_batch(iamd_p1) \
             WHERE id = iamd_batch.iamd_p1"
        );
    }

    #[test]
    fn rows_are_found_by_the_key_only() {
        assert!(PASSWORD.finds_rows_by("id") && REVOKE.finds_rows_by("id"));
        assert!(!PASSWORD.finds_rows_by("password_hash") && !RESERVE.finds_rows_by("user_id"));
        assert!(RESERVE.runs() && REVOKE.runs() && !PASSWORD.runs());
    }

    #[test]
    fn big_batches_are_cut_into_few_sizes() {
        assert_eq!(REVOKE.pieces(5), vec![5]);
        assert_eq!(REVOKE.pieces(16), vec![16]);
        assert_eq!(REVOKE.pieces(17), vec![16, 1]);
        assert_eq!(REVOKE.pieces(37), vec![32, 5]);
        assert_eq!(REVOKE.pieces(3000), vec![1024, 1024, 512, 256, 128, 32, 16, 8]);
        // 65,535 parameters at most.
        static WIDE_COLUMNS: [(&str, Value); 100] = [("c", Param); 100];
        static WIDE: Shape = Shape::insert("t", &WIDE_COLUMNS);
        assert_eq!(WIDE.pieces(1000), vec![512, 256, 128, 64, 32, 8]);
    }
}
