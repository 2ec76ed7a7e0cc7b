//! Which offsets may be committed. Requests of one partition finish out of order (different
//! workspaces run concurrently); an offset is committable only when every message before it
//! in its partition is finished, so a crash redelivers whatever had not finished. A revoked
//! partition's bookkeeping is dropped and its epoch bumped: completions from before the
//! revocation no longer count.

use std::collections::{BTreeSet, HashMap};

/// A topic partition.
pub type Partition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    epoch: u64,
    /// Received and not yet finished.
    in_flight: BTreeSet<i64>,
    /// The highest offset received in this epoch.
    highest: Option<i64>,
    /// The last offset handed out as committable (the next offset to consume), or where
    /// this epoch started.
    committed: Option<i64>,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<Partition, PartitionState>,
    /// Epochs survive a revocation so stale completions stay recognisable.
    epochs: HashMap<Partition, u64>,
}

impl OffsetTracker {
    /// Records a received message; returns the epoch its completion must carry.
    pub fn received(&mut self, partition: &Partition, offset: i64) -> u64 {
        let epoch = *self.epochs.entry(partition.clone()).or_default();
        // The first offset of an epoch is where consumption resumed: nothing below it is ours.
        let state = self.partitions.entry(partition.clone()).or_insert_with(|| PartitionState {
            epoch,
            committed: Some(offset),
            ..Default::default()
        });
        state.in_flight.insert(offset);
        state.highest = Some(state.highest.map_or(offset, |h| h.max(offset)));
        epoch
    }

    /// Records a finished message. Returns the offset to commit (the next one to consume)
    /// when it moved forward.
    pub fn finished(&mut self, partition: &Partition, offset: i64, epoch: u64) -> Option<i64> {
        let state = self.partitions.get_mut(partition)?;
        if state.epoch != epoch || !state.in_flight.remove(&offset) {
            return None;
        }
        let next = match state.in_flight.first() {
            Some(first) => *first,
            None => state.highest? + 1,
        };
        if state.committed.is_some_and(|c| c >= next) {
            return None;
        }
        state.committed = Some(next);
        Some(next)
    }

    /// Forgets revoked partitions; anything of theirs still running finishes unrecorded.
    pub fn revoked(&mut self, partitions: impl IntoIterator<Item = Partition>) {
        for p in partitions {
            self.partitions.remove(&p);
            *self.epochs.entry(p).or_default() += 1;
        }
    }

    /// Messages received and not finished, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|s| s.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".into(), n)
    }

    #[test]
    fn only_the_contiguous_prefix_is_committable() {
        let mut t = OffsetTracker::default();
        let e = t.received(&p(0), 10);
        t.received(&p(0), 11);
        t.received(&p(0), 12);
        assert_eq!(t.finished(&p(0), 12, e), None, "10 and 11 still run");
        assert_eq!(t.finished(&p(0), 10, e), Some(11));
        assert_eq!(t.finished(&p(0), 11, e), Some(13), "12 was already done");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let e0 = t.received(&p(0), 5);
        let e1 = t.received(&p(1), 7);
        t.received(&p(0), 6);
        assert_eq!(t.finished(&p(1), 7, e1), Some(8));
        assert_eq!(t.finished(&p(0), 6, e0), None);
        assert_eq!(t.finished(&p(0), 5, e0), Some(7));
    }

    #[test]
    fn completions_from_before_a_revocation_do_not_count() {
        let mut t = OffsetTracker::default();
        let old = t.received(&p(0), 3);
        t.received(&p(0), 4);
        t.revoked([p(0)]);
        assert_eq!(t.in_flight(), 0);
        // Re-assigned: the group redelivers from the committed offset.
        let new = t.received(&p(0), 3);
        assert_ne!(old, new);
        assert_eq!(t.finished(&p(0), 4, old), None, "a stale completion is ignored");
        assert_eq!(t.finished(&p(0), 3, old), None);
        assert_eq!(t.finished(&p(0), 3, new), Some(4));
    }

    #[test]
    fn unknown_or_repeated_completions_are_ignored() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.finished(&p(9), 1, 0), None);
        let e = t.received(&p(0), 1);
        assert_eq!(t.finished(&p(0), 1, e), Some(2));
        assert_eq!(t.finished(&p(0), 1, e), None);
    }
}
