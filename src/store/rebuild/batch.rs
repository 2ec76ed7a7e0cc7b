//! Regrouping a page of the reducers' writes into batches of one [`Shape`] each, which the
//! pager sends as multi-row statements ([`Shape::batched`]).
//!
//! A rebuild replays hundreds of thousands of writes; sent one by one, PostgreSQL spends most
//! of its time per request (bind, executor start and end, one reply flushed per statement),
//! not per row. The writes are typed, so this module knows each one's table, kind and key
//! without reading SQL; the reducers stay the only definition of the read tables.
//!
//! **Which writes may share a batch.** Replay order may change only where the end state
//! cannot tell, on the grounds the rebuild already stands on (see `Plan` in the parent module
//! and docs/projections.md, *Order*): every row of a read table belongs to exactly one stream,
//! and the unique constraints are built after the replay, so writes of different streams
//! commute. A write changes only the table it names and reads nothing but the rows it
//! changes, so writes of one stream on different tables commute too. What stays ordered is
//! each (stream, table) sequence, and a batch takes from each such sequence:
//!
//! - for an update, at most ONE write (an `UPDATE … FROM` whose source holds two rows for the
//!   same target row applies only one of them; writes of different streams never target the
//!   same row);
//! - for inserts and deletes, a run of consecutive writes ([`Shape::runs`]).
//!
//! The batches are scheduled greedily: each time, the shape at the head of the most sequences.

use crate::projections::write::{Param, Shape, Write};
use std::collections::{HashMap, VecDeque};

/// One reducer write of a page, with the event it came from (an index into the page) and
/// that event's stream.
pub struct Item<'a> {
    pub event: usize,
    pub stream: &'a str,
    pub write: Write,
}

/// Writes of one shape to run as one (or, past the row limits, a few) statements.
pub struct Batch {
    pub shape: &'static Shape,
    /// (event index in the page, the write's parameters), in the order they are applied.
    pub rows: Vec<(usize, Vec<Param>)>,
}

/// The batches that apply `items` (in page order) with the same end state, in the order to
/// run them. Without `coalesce`, one batch per write in page order.
pub fn schedule(items: Vec<Item<'_>>, coalesce: bool) -> Vec<Batch> {
    if !coalesce {
        return items
            .into_iter()
            .map(|item| Batch { shape: item.write.shape, rows: vec![(item.event, item.write.params)] })
            .collect();
    }
    let mut out = Vec::new();
    if items.is_empty() {
        return out;
    }
    // Shapes interned as small numbers (by their rendered SQL, one per static); one queue per
    // (stream, table) sequence, in order of first appearance.
    let mut shape_ids: HashMap<&'static str, usize> = HashMap::new();
    let mut shapes: Vec<&'static Shape> = Vec::new();
    let mut sequence_ids: HashMap<(&str, &str), usize> = HashMap::new();
    let mut queues: Vec<VecDeque<usize>> = Vec::new();
    let mut shape_of: Vec<usize> = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let shape = item.write.shape;
        let id = *shape_ids.entry(shape.sql()).or_insert_with(|| {
            shapes.push(shape);
            shapes.len() - 1
        });
        let next = queues.len();
        let q = *sequence_ids.entry((item.stream, shape.table)).or_insert(next);
        if q == next {
            queues.push(VecDeque::new());
        }
        queues[q].push_back(n);
        shape_of.push(id);
    }
    let mut slots: Vec<Option<(usize, Vec<Param>)>> =
        items.into_iter().map(|item| Some((item.event, item.write.params))).collect();
    let mut active: Vec<usize> = (0..queues.len()).collect();
    let mut heads = vec![(0usize, usize::MAX); shapes.len()];
    while !active.is_empty() {
        heads.iter_mut().for_each(|h| *h = (0, usize::MAX));
        for &q in &active {
            let head = queues[q][0];
            let h = &mut heads[shape_of[head]];
            h.0 += 1;
            h.1 = h.1.min(head);
        }
        // The shape at the head of the most sequences; the earliest on a tie.
        let chosen = (0..shapes.len())
            .filter(|&s| heads[s].0 > 0)
            .max_by(|&a, &b| heads[a].0.cmp(&heads[b].0).then(heads[b].1.cmp(&heads[a].1)))
            .expect("an active sequence has a head");
        let shape = shapes[chosen];
        let mut taken: Vec<usize> = Vec::new();
        for &q in &active {
            while let Some(&head) = queues[q].front() {
                if shape_of[head] != chosen {
                    break;
                }
                taken.push(head);
                queues[q].pop_front();
                if !shape.runs() {
                    break;
                }
            }
        }
        active.retain(|&q| !queues[q].is_empty());
        taken.sort_unstable();
        let rows = taken.into_iter().map(|n| slots[n].take().expect("each write is taken once")).collect();
        out.push(Batch { shape, rows });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::write::Value::Param as P;

    fn item(event: usize, stream: &'static str, shape: &'static Shape) -> Item<'static> {
        Item { event, stream, write: Write::new(shape, vec![Box::new(event as i64)]) }
    }

    static INS_A: Shape = Shape::insert("a", &[("id", P)]);
    static DEL_A: Shape = Shape::delete("a", "id");
    static UPD_A: Shape = Shape::update("a", "id", &[("n", crate::projections::write::Value::Increment)]);
    static INS_B: Shape = Shape::insert("b", &[("id", P)]);

    fn plan(items: Vec<Item<'static>>, coalesce: bool) -> Vec<(&'static str, Vec<usize>)> {
        schedule(items, coalesce)
            .into_iter()
            .map(|b| (b.shape.sql(), b.rows.iter().map(|(e, _)| *e).collect()))
            .collect()
    }

    #[test]
    fn each_stream_and_table_keeps_its_order_and_updates_go_one_per_sequence() {
        let items = vec![
            item(0, "s1", &INS_A),
            item(1, "s1", &INS_B),
            item(2, "s2", &INS_A),
            item(3, "s1", &UPD_A),
            item(4, "s1", &UPD_A),
            item(5, "s2", &DEL_A),
            item(6, "s1", &INS_A),
            item(7, "s1", &INS_A),
            item(8, "s2", &INS_B),
        ];
        let (ins_a, del_a, upd_a, ins_b) = (INS_A.sql(), DEL_A.sql(), UPD_A.sql(), INS_B.sql());
        assert_eq!(
            plan(items, true),
            vec![
                // a: s1's INSERT, s2's INSERT run first (the head of both a-sequences).
                (ins_a, vec![0, 2]),
                // b: s1 and s2 each have their INSERT at the head.
                (ins_b, vec![1, 8]),
                // The two UPDATEs of s1 on a go one after the other, each alone.
                (upd_a, vec![3]),
                (upd_a, vec![4]),
                (del_a, vec![5]),
                // A run of INSERTs of one sequence shares a batch, in order.
                (ins_a, vec![6, 7]),
            ]
        );
    }

    #[test]
    fn without_coalescing_the_order_is_the_page_order() {
        let items = vec![item(0, "s1", &INS_A), item(1, "s2", &INS_A), item(2, "s1", &DEL_A)];
        let (ins_a, del_a) = (INS_A.sql(), DEL_A.sql());
        assert_eq!(plan(items, false), vec![(ins_a, vec![0]), (ins_a, vec![1]), (del_a, vec![2])]);
    }
}
