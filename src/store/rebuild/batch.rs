//! Coalescing a page of the reducers' statements into multi-row statements, mechanically.
//!
//! A rebuild replays hundreds of thousands of statements; sent one by one, PostgreSQL spends
//! most of its time per request (bind, executor start and end, one reply flushed per
//! statement), not per row. This module regroups the statements of one page of events into
//! batches of the SAME reducer SQL and rewrites each batch into one statement, from the SQL
//! text alone — it knows nothing of what a reducer means, so the reducers stay the only
//! definition of the read tables:
//!
//! - `INSERT INTO t (…) VALUES (<row>)` → `INSERT INTO t (…) VALUES (<row 1>), (<row 2>), …`
//!   (each row's `$n` renumbered);
//! - `UPDATE t SET <set> WHERE <cond>` → `UPDATE t SET <set'> FROM (VALUES ($1, …), …) AS
//!   iamd_batch(iamd_p1, …) WHERE <cond'>`, where `<set'>` and `<cond'>` read
//!   `iamd_batch.iamd_pN` instead of `$N`;
//! - `DELETE FROM t WHERE <cond>` → `DELETE FROM t USING (VALUES …) AS iamd_batch(…) WHERE
//!   <cond'>`.
//!
//! A statement of any other shape (or with quotes, comments, subqueries, `RETURNING`, …) is
//! not rewritten: it runs alone, and every statement before it in the page runs before it and
//! every one after it after it (a barrier).
//!
//! **Which statements may share a batch.** Replay order may change only where the end state
//! cannot tell, on the grounds the rebuild already stands on (see `Plan` in the parent module
//! and docs/projections.md, *Order*): every row of a read table belongs to exactly one stream,
//! and the unique constraints are built after the replay, so statements of different streams
//! commute. A rewritable statement writes only the table it names and reads nothing but the
//! rows it changes, so statements of one stream on different tables commute too. What stays
//! ordered is each (stream, table) sequence, and a batch takes from each such sequence:
//!
//! - for `UPDATE`, at most ONE statement (an `UPDATE … FROM` whose source holds two rows for
//!   the same target row applies only one of them; statements of different streams never
//!   target the same row);
//! - for `INSERT` and `DELETE`, a run of consecutive statements (a multi-row `INSERT` inserts
//!   its rows in order; deleting the rows matching any of several conditions at once leaves
//!   what deleting them one after another leaves).
//!
//! The batches are scheduled greedily: each time, the SQL at the head of the most sequences.

use crate::projections::{Param, Statement};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;

/// Rows of one multi-row statement at most (also bounded by PostgreSQL's 65,535 parameters).
pub const MAX_ROWS: usize = 1_024;
/// Batches of up to this many rows get a statement of their exact size; bigger ones are
/// split into power-of-two pieces, so that a connection prepares few distinct statements.
const EXACT_UP_TO: usize = 16;

/// The kinds of statement that can be coalesced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    /// Whether consecutive statements of one (stream, table) sequence may share a batch.
    fn runs(self) -> bool {
        matches!(self, Kind::Insert | Kind::Delete)
    }
}

/// A reducer statement taken apart for rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub kind: Kind,
    /// The table it writes (unqualified, as the reducers name it).
    pub table: String,
    /// Its parameters: `$1` to `$params`, every one used.
    pub params: usize,
    /// INSERT: up to and including `VALUES `; UPDATE: up to ` WHERE `; DELETE: `DELETE FROM t`.
    head: String,
    /// INSERT: the row, `(…)`; UPDATE and DELETE: the condition after `WHERE`.
    tail: String,
}

/// Words that make a statement something other than the three simple shapes.
const NEVER: &[&str] = &[
    "select",
    "returning",
    "with",
    "join",
    "conflict",
    "using",
    "default",
    "only",
    "lateral",
    "table",
    "current",
];

impl Shape {
    /// Takes `sql` apart, or `None` when it is not one of the shapes this module rewrites.
    pub fn of(sql: &str) -> Option<Shape> {
        if sql.contains(['\'', '"', ';', '\\', '[']) || sql.contains("--") || sql.contains("/*") {
            return None;
        }
        let params = params_of(sql)?;
        let words: Vec<String> = sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.'))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if words.iter().any(|w| NEVER.contains(&w.as_str())) {
            return None;
        }
        let count = |word: &str| words.iter().filter(|w| *w == word).count();
        let lower = sql.to_ascii_lowercase();
        let table = |i: usize| words.get(i).filter(|w| plain_identifier(w)).cloned();
        // UPDATE and DELETE: the head up to ` WHERE `, the condition after it.
        let at_where = |kind: Kind, table: String| {
            let at = lower.find(" where ")?;
            let (head, tail) = (sql[..at].to_owned(), sql[at + " where ".len()..].to_owned());
            Some(Shape { kind, table, params, head, tail })
        };
        match words.first().map(String::as_str) {
            Some("insert") if words.get(1).map(String::as_str) == Some("into") => {
                let table = table(2)?;
                if count("values") != 1 || count("from") + count("where") + count("set") > 0 {
                    return None;
                }
                let at = lower.find(" values ")? + " values ".len();
                let row = sql[at..].trim_end();
                if !row.starts_with('(') || closing_paren(row)? != row.len() - 1 {
                    return None;
                }
                Some(Shape {
                    kind: Kind::Insert,
                    table,
                    params,
                    head: sql[..at].to_owned(),
                    tail: row.to_owned(),
                })
            }
            Some("update") => {
                let table = table(1)?;
                if words.get(2).map(String::as_str) != Some("set")
                    || count("where") != 1
                    || count("set") != 1
                    || count("from") + count("values") > 0
                {
                    return None;
                }
                at_where(Kind::Update, table)
            }
            Some("delete") if words.get(1).map(String::as_str) == Some("from") => {
                let table = table(2)?;
                if words.get(3).map(String::as_str) != Some("where")
                    || count("where") != 1
                    || count("from") != 1
                    || count("values") + count("set") > 0
                {
                    return None;
                }
                at_where(Kind::Delete, table)
            }
            _ => None,
        }
    }

    /// The statement that does what `rows` statements of this shape do, one after another,
    /// taking their parameters in order (row 1's `$1..$n`, then row 2's, …). `rows` ≥ 2.
    pub fn batched(&self, rows: usize) -> String {
        let n = self.params;
        match self.kind {
            Kind::Insert => {
                let mut sql = self.head.clone();
                for r in 0..rows {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&renumber(&self.tail, |i| format!("${}", i + r * n)));
                }
                sql
            }
            Kind::Update | Kind::Delete => {
                let column = |i: usize| format!("iamd_batch.iamd_p{i}");
                let mut values = String::new();
                for r in 0..rows {
                    values.push_str(if r == 0 { "(" } else { ", (" });
                    for i in 1..=n {
                        let _ = write!(values, "{}${}", if i == 1 { "" } else { ", " }, i + r * n);
                    }
                    values.push(')');
                }
                let columns = (1..=n).map(|i| format!("iamd_p{i}")).collect::<Vec<_>>().join(", ");
                let source = format!("(VALUES {values}) AS iamd_batch({columns})");
                let join = if self.kind == Kind::Update { "FROM" } else { "USING" };
                format!(
                    "{} {join} {source} WHERE {}",
                    renumber(&self.head, column),
                    renumber(&self.tail, column)
                )
            }
        }
    }

    /// Whether the condition of this `UPDATE` or `DELETE` names `column` (so that an index on
    /// it may find the rows).
    pub fn finds_rows_by(&self, column: &str) -> bool {
        self.kind != Kind::Insert
            && self.tail.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).any(|w| {
                w.eq_ignore_ascii_case(column)
                    || w.rsplit('.').next().is_some_and(|w| w.eq_ignore_ascii_case(column))
            })
    }

    /// The most rows one statement of this shape may carry.
    fn max_rows(&self) -> usize {
        let by_params = (u16::MAX as usize / self.params.max(1)).max(1);
        let cap = by_params.min(MAX_ROWS);
        // A power of two, so that the pieces come from a small set of sizes.
        1 << (usize::BITS - 1 - cap.leading_zeros())
    }

    /// How a batch of `rows` is cut into statements: exact sizes up to [`EXACT_UP_TO`], else
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

/// `a`–`z`, `0`–`9` and `_`, not starting with a digit: a table named without a schema.
fn plain_identifier(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The byte index of the parenthesis that closes the one `s` starts with.
fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The number of parameters of `sql` when they are exactly `$1..$n` (each used at least once)
/// and every `$` starts one; else `None`.
fn params_of(sql: &str) -> Option<usize> {
    let mut used = Vec::<bool>::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            let n: usize = sql[start..end].parse().ok()?;
            if n == 0 || n > u16::MAX as usize {
                return None;
            }
            if used.len() < n {
                used.resize(n, false);
            }
            used[n - 1] = true;
            i = end;
        } else {
            i += 1;
        }
    }
    (!used.is_empty() && used.iter().all(|u| *u)).then_some(used.len())
}

/// `text` with every `$n` replaced by `to(n)`.
fn renumber(text: &str, to: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => out.push_str(&to(n)),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// One reducer statement of a page, with the event it came from (an index into the page) and
/// that event's stream.
pub struct Item<'a> {
    pub event: usize,
    pub stream: &'a str,
    pub statement: Statement,
}

/// Statements of one SQL text to run as one (or, past the row limits, a few) statements.
pub struct Batch {
    pub sql: &'static str,
    /// `None`: a statement that is not rewritten (it runs alone).
    pub shape: Option<std::sync::Arc<Shape>>,
    /// (event index in the page, the statement's parameters), in the order they are applied.
    pub rows: Vec<(usize, Vec<Param>)>,
}

/// Parsed shapes by SQL text (the reducers' SQL is `'static`).
#[derive(Default)]
pub struct Shapes(HashMap<&'static str, Option<std::sync::Arc<Shape>>>);

impl Shapes {
    fn get(&mut self, sql: &'static str) -> Option<std::sync::Arc<Shape>> {
        self.0.entry(sql).or_insert_with(|| Shape::of(sql).map(std::sync::Arc::new)).clone()
    }
}

/// The batches that apply `items` (in page order) with the same end state, in the order to
/// run them. Without `coalesce`, one batch per statement in page order.
pub fn schedule(items: Vec<Item<'_>>, shapes: &mut Shapes, coalesce: bool) -> Vec<Batch> {
    let mut out = Vec::new();
    if !coalesce {
        for item in items {
            let Statement { sql, params } = item.statement;
            out.push(Batch { sql, shape: shapes.get(sql), rows: vec![(item.event, params)] });
        }
        return out;
    }
    let mut segment = Vec::new();
    for item in items {
        match shapes.get(item.statement.sql) {
            Some(shape) => segment.push((item, shape)),
            None => {
                // A barrier: everything before it first, then it alone.
                coalesce_segment(std::mem::take(&mut segment), &mut out);
                let Statement { sql, params } = item.statement;
                out.push(Batch { sql, shape: None, rows: vec![(item.event, params)] });
            }
        }
    }
    coalesce_segment(segment, &mut out);
    out
}

/// Greedy scheduling of rewritable statements (see the module documentation).
fn coalesce_segment(segment: Vec<(Item<'_>, std::sync::Arc<Shape>)>, out: &mut Vec<Batch>) {
    if segment.is_empty() {
        return;
    }
    // SQL texts interned as small numbers; the statements' slots; one queue per
    // (stream, table) sequence, in order of first appearance.
    let mut sql_ids: HashMap<&'static str, usize> = HashMap::new();
    let mut sqls: Vec<(&'static str, std::sync::Arc<Shape>)> = Vec::new();
    let mut sequence_ids: HashMap<(&str, &str), usize> = HashMap::new();
    let mut queues: Vec<VecDeque<usize>> = Vec::new();
    let mut slots: Vec<Option<(usize, Vec<Param>)>> = Vec::with_capacity(segment.len());
    let mut sql_of: Vec<usize> = Vec::with_capacity(segment.len());
    for (n, (item, shape)) in segment.iter().enumerate() {
        let sql = *sql_ids.entry(item.statement.sql).or_insert_with(|| {
            sqls.push((item.statement.sql, shape.clone()));
            sqls.len() - 1
        });
        let next = queues.len();
        let q = *sequence_ids.entry((item.stream, shape.table.as_str())).or_insert(next);
        if q == next {
            queues.push(VecDeque::new());
        }
        queues[q].push_back(n);
        sql_of.push(sql);
    }
    for (item, _) in segment {
        let Statement { params, .. } = item.statement;
        slots.push(Some((item.event, params)));
    }
    let mut active: Vec<usize> = (0..queues.len()).collect();
    let mut heads = vec![(0usize, usize::MAX); sqls.len()];
    while !active.is_empty() {
        heads.iter_mut().for_each(|h| *h = (0, usize::MAX));
        for &q in &active {
            let head = queues[q][0];
            let h = &mut heads[sql_of[head]];
            h.0 += 1;
            h.1 = h.1.min(head);
        }
        // The SQL at the head of the most sequences; the earliest on a tie.
        let chosen = (0..sqls.len())
            .filter(|&s| heads[s].0 > 0)
            .max_by(|&a, &b| heads[a].0.cmp(&heads[b].0).then(heads[b].1.cmp(&heads[a].1)))
            .expect("an active sequence has a head");
        let (sql, shape) = sqls[chosen].clone();
        let mut taken: Vec<usize> = Vec::new();
        for &q in &active {
            while let Some(&head) = queues[q].front() {
                if sql_of[head] != chosen {
                    break;
                }
                taken.push(head);
                queues[q].pop_front();
                if !shape.kind.runs() {
                    break;
                }
            }
        }
        active.retain(|&q| !queues[q].is_empty());
        taken.sort_unstable();
        let rows =
            taken.into_iter().map(|n| slots[n].take().expect("each statement is taken once")).collect();
        out.push(Batch { sql, shape: Some(shape), rows });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_become_multi_row_values() {
        let s = Shape::of("INSERT INTO unique_usernames (username_lower, user_id) VALUES (lower($1), $2)")
            .unwrap();
        assert_eq!((s.kind, s.table.as_str(), s.params), (Kind::Insert, "unique_usernames", 2));
        assert_eq!(
            s.batched(3),
            "INSERT INTO unique_usernames (username_lower, user_id) VALUES (lower($1), $2), \
             (lower($3), $4), (lower($5), $6)"
        );
        let s = Shape::of("INSERT INTO workspaces (id, name, enabled, created) VALUES ($1, $2, true, $3)")
            .unwrap();
        assert_eq!(
            s.batched(2),
            "INSERT INTO workspaces (id, name, enabled, created) VALUES ($1, $2, true, $3), ($4, $5, true, $6)"
        );
    }

    #[test]
    fn updates_and_deletes_join_a_values_list() {
        let s = Shape::of(
            "UPDATE users SET password_hash = $2, must_change_password = false, \
             account_version = account_version + 1 WHERE id = $1",
        )
        .unwrap();
        assert_eq!((s.kind, s.table.as_str(), s.params), (Kind::Update, "users", 2));
        assert_eq!(
            s.batched(2),
            "UPDATE users SET password_hash = iamd_batch.iamd_p2, must_change_password = false, \
             account_version = account_version + 1 FROM (VALUES ($1, $2), ($3, $4)) \
             AS iamd_batch(iamd_p1, iamd_p2) WHERE id = iamd_batch.iamd_p1"
        );
        let s = Shape::of("DELETE FROM api_keys WHERE id = $1").unwrap();
        assert_eq!((s.kind, s.table.as_str(), s.params), (Kind::Delete, "api_keys", 1));
        assert_eq!(
            s.batched(3),
            "DELETE FROM api_keys USING (VALUES ($1), ($2), ($3)) AS iamd_batch(iamd_p1) \
             WHERE id = iamd_batch.iamd_p1"
        );
        // $10 is not $1 followed by 0.
        let s = Shape::of(
            "UPDATE t SET a = $10, b = $1, c = $2, d = $3, e = $4, f = $5, g = $6, h = $7, \
                           i = $8 WHERE id = $9",
        )
        .unwrap();
        assert!(s.batched(2).contains("a = iamd_batch.iamd_p10, b = iamd_batch.iamd_p1,"));
        assert!(s.batched(2).contains("($11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"));
    }

    #[test]
    fn anything_else_is_left_alone() {
        for sql in [
            "INSERT INTO t (a) SELECT $1",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO NOTHING",
            "INSERT INTO t (a) VALUES ($1) RETURNING a",
            "INSERT INTO public.t (a) VALUES ($1)",
            "INSERT INTO t (a) VALUES ('$1')",
            "INSERT INTO \"T\" (a) VALUES ($1)",
            "INSERT INTO t (a) VALUES ($1), ($2)",
            "INSERT INTO t DEFAULT VALUES",
            "UPDATE t SET a = $1",
            "UPDATE t SET a = $1 FROM u WHERE t.id = u.id",
            "UPDATE t SET a = (SELECT max(b) FROM u) WHERE id = $1",
            "UPDATE t SET a = $2 WHERE id = $1 RETURNING a",
            "UPDATE t SET a = true WHERE id = 1",
            "UPDATE t SET a = $1 WHERE id = $3",
            "UPDATE t SET a = $1 WHERE id = $1; DROP TABLE t",
            "DELETE FROM t WHERE id = $1 -- x",
            "DELETE FROM t USING u WHERE t.id = u.id AND u.x = $1",
            "DELETE FROM t WHERE id IN (SELECT id FROM u WHERE x = $1)",
            "DELETE FROM ONLY t WHERE id = $1",
            "WITH x AS (DELETE FROM t WHERE id = $1) SELECT 1",
            "TRUNCATE t",
            "SELECT $1",
            "",
        ] {
            assert_eq!(Shape::of(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_condition_names_the_columns_rows_are_found_by() {
        let s = Shape::of("UPDATE users SET name = $2, id_hint = $3 WHERE id = $1").unwrap();
        assert!(s.finds_rows_by("id"));
        assert!(!s.finds_rows_by("name") && !s.finds_rows_by("id_hint") && !s.finds_rows_by("user_id"));
        let s = Shape::of("DELETE FROM unique_usernames WHERE unique_usernames.user_id = $1").unwrap();
        assert!(s.finds_rows_by("user_id"));
        let s = Shape::of("INSERT INTO users (id) VALUES ($1)").unwrap();
        assert!(!s.finds_rows_by("id"));
    }

    #[test]
    fn big_batches_are_cut_into_few_sizes() {
        let s = Shape::of("DELETE FROM t WHERE id = $1").unwrap();
        assert_eq!(s.pieces(5), vec![5]);
        assert_eq!(s.pieces(16), vec![16]);
        assert_eq!(s.pieces(17), vec![16, 1]);
        assert_eq!(s.pieces(37), vec![32, 5]);
        assert_eq!(s.pieces(3000), vec![1024, 1024, 512, 256, 128, 32, 16, 8]);
        // 65,535 parameters at most.
        let wide = format!(
            "INSERT INTO t VALUES ({})",
            (1..=100).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        );
        let s = Shape::of(&wide).unwrap();
        assert_eq!(s.pieces(1000), vec![512, 256, 128, 64, 32, 8]);
    }

    fn item(event: usize, stream: &'static str, sql: &'static str) -> Item<'static> {
        Item { event, stream, statement: Statement::new(sql, vec![Box::new(event as i64)]) }
    }

    const INS_A: &str = "INSERT INTO a (id) VALUES ($1)";
    const DEL_A: &str = "DELETE FROM a WHERE id = $1";
    const UPD_A: &str = "UPDATE a SET n = n + 1 WHERE id = $1";
    const INS_B: &str = "INSERT INTO b (id) VALUES ($1)";
    const ODD: &str = "UPDATE a SET n = 0";

    fn plan(items: Vec<Item<'static>>, coalesce: bool) -> Vec<(&'static str, Vec<usize>)> {
        schedule(items, &mut Shapes::default(), coalesce)
            .into_iter()
            .map(|b| (b.sql, b.rows.iter().map(|(e, _)| *e).collect()))
            .collect()
    }

    #[test]
    fn each_stream_and_table_keeps_its_order_and_updates_go_one_per_sequence() {
        let items = vec![
            item(0, "s1", INS_A),
            item(1, "s1", INS_B),
            item(2, "s2", INS_A),
            item(3, "s1", UPD_A),
            item(4, "s1", UPD_A),
            item(5, "s2", DEL_A),
            item(6, "s1", INS_A),
            item(7, "s1", INS_A),
            item(8, "s2", INS_B),
        ];
        assert_eq!(
            plan(items, true),
            vec![
                // a: s1's INSERT, s2's INSERT run first (the head of both a-sequences).
                (INS_A, vec![0, 2]),
                // b: s1 and s2 each have their INSERT at the head.
                (INS_B, vec![1, 8]),
                // The two UPDATEs of s1 on a go one after the other, each alone.
                (UPD_A, vec![3]),
                (UPD_A, vec![4]),
                (DEL_A, vec![5]),
                // A run of INSERTs of one sequence shares a batch, in order.
                (INS_A, vec![6, 7]),
            ]
        );
    }

    #[test]
    fn a_statement_that_is_not_rewritten_is_a_barrier() {
        let items =
            vec![item(0, "s1", INS_A), item(1, "s2", ODD), item(2, "s3", INS_A), item(3, "s1", INS_A)];
        assert_eq!(plan(items, true), vec![(INS_A, vec![0]), (ODD, vec![1]), (INS_A, vec![2, 3])]);
    }

    #[test]
    fn without_coalescing_the_order_is_the_page_order() {
        let items = vec![item(0, "s1", INS_A), item(1, "s2", INS_A), item(2, "s1", DEL_A)];
        assert_eq!(plan(items, false), vec![(INS_A, vec![0]), (INS_A, vec![1]), (DEL_A, vec![2])]);
    }
}
