//! [`OffsetTracker`]: which offset of each partition may be stored.
//!
//! Records are registered in consumption order and completed in any order; the offset to
//! store for a partition is the lowest offset still pending (every record before it is
//! settled) or, when nothing is pending, the last registered offset + 1. It never passes
//! an unconfirmed record.

use std::collections::{BTreeSet, HashMap};

/// A topic partition.
pub type Partition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    pending: BTreeSet<i64>,
    next: i64,
    stored: i64,
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

    /// A record was consumed and is now in flight.
    pub fn register(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.partitions.contains_key(topic) {
            self.partitions.insert(topic.to_owned(), HashMap::new());
        }
        let state = self
            .partitions
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_insert_with(|| PartitionState {
                stored: offset,
                ..Default::default()
            });
        state.pending.insert(offset);
        state.next = state.next.max(offset + 1);
    }

    /// The record is settled. Returns the offset to store when it moved forward.
    pub fn complete(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(topic)?.get_mut(&partition)?;
        if !state.pending.remove(&offset) {
            return None;
        }
        let watermark = state.pending.first().copied().unwrap_or(state.next);
        (watermark > state.stored).then(|| {
            state.stored = watermark;
            watermark
        })
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
            .map(|s| s.pending.len())
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
    fn gaps_in_offsets_are_fine() {
        let mut t = OffsetTracker::new();
        t.register("a", 0, 3);
        t.register("a", 0, 7);
        assert_eq!(t.complete("a", 0, 7), None);
        assert_eq!(t.complete("a", 0, 3), Some(8));
    }
}
