//! [`OffsetTracker`]: which offset of each partition may be stored.
//!
//! Records are registered in consumption order and completed in any order; the offset to
//! store for a partition is the lowest offset still pending (every record before it is
//! settled) or, when nothing is pending, the last registered offset + 1. It never passes
//! an unconfirmed record.

use std::collections::{HashMap, VecDeque};

/// A topic partition.
pub type Partition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    /// Registered offsets not yet popped, ascending, with whether each is settled. The
    /// front is always unsettled (settled ones are popped from the front), so it is the
    /// lowest pending offset. Consumption registers ascending offsets: a push at the back.
    window: VecDeque<(i64, bool)>,
    /// Unsettled entries in `window`.
    pending: usize,
    next: i64,
    stored: i64,
}

impl PartitionState {
    fn register(&mut self, offset: i64) {
        match self.window.back() {
            Some(&(last, _)) if last >= offset => {
                // Out of order (a re-registration): keep the window sorted, no duplicates.
                match self.window.binary_search_by_key(&offset, |e| e.0) {
                    Ok(i) => {
                        if self.window[i].1 {
                            self.window[i].1 = false;
                            self.pending += 1;
                        }
                    }
                    Err(i) => {
                        self.window.insert(i, (offset, false));
                        self.pending += 1;
                    }
                }
            }
            _ => {
                self.window.push_back((offset, false));
                self.pending += 1;
            }
        }
        self.next = self.next.max(offset + 1);
    }

    fn complete(&mut self, offset: i64) -> Option<i64> {
        let i = self.window.binary_search_by_key(&offset, |e| e.0).ok()?;
        if self.window[i].1 {
            return None;
        }
        self.window[i].1 = true;
        self.pending -= 1;
        while self.window.front().is_some_and(|e| e.1) {
            self.window.pop_front();
        }
        let watermark = self.window.front().map_or(self.next, |e| e.0);
        (watermark > self.stored).then(|| {
            self.stored = watermark;
            watermark
        })
    }
}

/// Offsets a partition skipped between two registrations: `expected` was next, `got` came.
/// Transaction markers and compaction skip offsets harmlessly; records deleted or expired
/// (retention) before they were read skip them too, and those were never processed (the
/// consumer checks which it was against the partition's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset that was due next.
    pub expected: i64,
    /// The offset that came instead.
    pub got: i64,
}

/// Per-partition contiguous completion.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    // topic → partition → state: looked up by `&str`, no allocation per record.
    partitions: HashMap<String, HashMap<i32, PartitionState>>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&mut self, topic: &str, partition: i32, first: i64) -> &mut PartitionState {
        if !self.partitions.contains_key(topic) {
            self.partitions.insert(topic.to_owned(), HashMap::new());
        }
        self.partitions
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_insert_with(|| PartitionState {
                stored: first,
                ..Default::default()
            })
    }

    /// A record was consumed and is now in flight.
    pub fn register(&mut self, topic: &str, partition: i32, offset: i64) {
        self.state(topic, partition, offset).register(offset);
    }

    /// Registers records in consumption order, as [`OffsetTracker::register`] one by one
    /// (one lookup per run of records of the same partition); returns where a partition
    /// already tracked skipped offsets (none, and no allocation, in the common case).
    pub fn register_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) -> Vec<Skip> {
        let mut skips = Vec::new();
        let mut records = records.into_iter().peekable();
        while let Some((topic, partition, offset)) = records.next() {
            let state = self.state(topic, partition, offset);
            let mut seen = state.next > 0 || !state.window.is_empty();
            let mut offset = offset;
            loop {
                if seen && offset > state.next {
                    skips.push(Skip {
                        topic: topic.to_owned(),
                        partition,
                        expected: state.next,
                        got: offset,
                    });
                }
                state.register(offset);
                seen = true;
                match records.next_if(|(t, p, _)| *p == partition && *t == topic) {
                    Some((_, _, next)) => offset = next,
                    None => break,
                }
            }
        }
        skips
    }

    /// The record is settled. Returns the offset to store when it moved forward.
    pub fn complete(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        self.partitions
            .get_mut(topic)?
            .get_mut(&partition)?
            .complete(offset)
    }

    /// Settles records, as [`OffsetTracker::complete`] one by one; returns, per partition
    /// that moved forward, the furthest offset to store.
    pub fn complete_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) -> Vec<(&'a str, i32, i64)> {
        let mut stores: Vec<(&'a str, i32, i64)> = Vec::new();
        for (topic, partition, offset) in records {
            if let Some(next) = self.complete(topic, partition, offset) {
                match stores
                    .iter_mut()
                    .find(|(t, p, _)| *p == partition && *t == topic)
                {
                    Some(entry) => entry.2 = next,
                    None => stores.push((topic, partition, next)),
                }
            }
        }
        stores
    }

    /// Forgets revoked partitions: their in-flight records will be redelivered elsewhere,
    /// and a late completion must not store anything for them.
    pub fn forget(&mut self, revoked: impl IntoIterator<Item = Partition>) {
        for (topic, partition) in revoked {
            if let Some(partitions) = self.partitions.get_mut(&topic) {
                partitions.remove(&partition);
            }
        }
    }

    /// Records in flight, all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .flat_map(HashMap::values)
            .map(|s| s.pending)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_passes_an_unconfirmed_record() {
        let mut t = OffsetTracker::new();
        for o in 10..15 {
            t.register("a", 0, o);
        }
        assert_eq!(t.complete("a", 0, 12), None, "10 and 11 still pending");
        assert_eq!(t.complete("a", 0, 11), None);
        assert_eq!(t.complete("a", 0, 10), Some(13), "10..=12 done, 13 pending");
        assert_eq!(t.complete("a", 0, 14), None);
        assert_eq!(t.complete("a", 0, 13), Some(15));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_forgotten_on_revoke() {
        let mut t = OffsetTracker::new();
        t.register("a", 0, 0);
        t.register("a", 1, 5);
        assert_eq!(t.complete("a", 1, 5), Some(6));
        t.forget([("a".to_owned(), 0)]);
        assert_eq!(t.complete("a", 0, 0), None, "revoked: nothing to store");
        assert_eq!(t.complete("a", 1, 5), None, "twice: nothing new");
    }

    #[test]
    fn batches_match_one_by_one() {
        let mut t = OffsetTracker::new();
        t.register_all([
            ("a", 0, 1),
            ("a", 0, 2),
            ("a", 1, 7),
            ("b", 0, 3),
            ("a", 0, 3),
        ]);
        assert_eq!(t.in_flight(), 5);
        let stores = t.complete_all([("a", 0, 2), ("a", 1, 7), ("a", 0, 1), ("b", 0, 3)]);
        assert_eq!(stores, vec![("a", 1, 8), ("a", 0, 3), ("b", 0, 4)]);
        assert_eq!(
            t.complete_all([("a", 0, 3), ("a", 0, 3)]),
            vec![("a", 0, 4)]
        );
        assert_eq!(t.in_flight(), 0);
        // Re-registered and out-of-order offsets stay pending until settled.
        t.register("a", 0, 9);
        t.register("a", 0, 5);
        t.register("a", 0, 9);
        assert_eq!(t.in_flight(), 2);
        assert_eq!(t.complete("a", 0, 9), Some(5), "5 still pending, 4 settled");
        assert_eq!(t.complete("a", 0, 5), Some(10));
    }

    #[test]
    fn skipped_offsets_of_a_tracked_partition_are_reported() {
        let mut t = OffsetTracker::new();
        assert_eq!(
            t.register_all([("a", 0, 5), ("a", 0, 6)]),
            vec![],
            "a first sight"
        );
        let skips = t.register_all([("a", 0, 7), ("b", 1, 40), ("a", 0, 20)]);
        assert_eq!(
            skips,
            vec![Skip {
                topic: "a".into(),
                partition: 0,
                expected: 8,
                got: 20
            }]
        );
        assert_eq!(t.register_all([("a", 0, 21), ("b", 1, 41)]), vec![]);
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        let mut t = OffsetTracker::new();
        t.register("a", 0, 3);
        t.register("a", 0, 7);
        assert_eq!(t.complete("a", 0, 7), None);
        assert_eq!(t.complete("a", 0, 3), Some(8));
    }
}
