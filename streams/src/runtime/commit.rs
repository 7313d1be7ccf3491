//! The commit strategy: when the progress of settled records becomes durable.
//!
//! A lane tells its [`Commit`] about every record twice: when the reader hands it on
//! ([`Commit::register`], in consumption order, a batch at a time) and when the writer
//! has settled it ([`Commit::settle`]: sunk, already applied, or produced to a retry or
//! dead-letter topic). What the strategy does in between is its own business:
//!
//! - [`AtLeastOnce`] (every pipeline today): an [`OffsetTracker`] per lane keeps each
//!   partition's contiguous completion, and only that watermark is handed to an
//!   [`OffsetStore`] (librdkafka's `store_offsets`, committed every second, on revoke and
//!   on shutdown; an in-memory map in the test driver). An offset therefore never passes
//!   a record still unsettled, whatever order batches settle in; a crash redelivers the
//!   records after the last committed watermark, which the idempotent sinks absorb.
//! - Exactly-once (Kafka-to-Kafka steps) plugs in here as a second strategy: it commits a
//!   settled batch's offsets inside the producer's transaction
//!   (`send_offsets_to_transaction`) together with the batch's output, instead of storing
//!   them for the consumer's auto-commit.
//!
//! Revocations: a revoke is served inside the reader's own poll of the consumer, so some
//! consumed records may not be registered yet. [`Commit::revoked`] says one was served;
//! the reader then registers what it holds at once, and the strategy forgets the revoked
//! partitions after those records, exactly as if each record had been registered when
//! consumed (see `context::Revocations`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::context::{LaneContext, Revocations};
use crate::offsets::{OffsetTracker, Skip};
use crate::record::InFlight;

/// How a lane makes progress durable (see the module header).
pub(crate) trait Commit: Send + Sync + 'static {
    /// Whether partitions were revoked since the last [`Commit::register`] (one atomic
    /// load when none): the reader then registers the records it holds before the next.
    fn revoked(&self) -> bool;

    /// Records handed on by the reader, in consumption order; revocations served since
    /// the last call apply after them. Returns where a partition skipped offsets (the
    /// reader checks whether records expired unread).
    fn register(&self, records: &[InFlight]) -> Vec<Skip>;

    /// Records the writer settled, in any order.
    fn settle(&self, records: &[InFlight]);

    /// The lane stops: make what was settled durable.
    fn close(&self);
}

/// Where [`AtLeastOnce`] puts the watermarks it may store.
pub(crate) trait OffsetStore: Send + Sync + 'static {
    /// Stores, per partition, the next offset to consume.
    fn store(&self, offsets: &[(&str, i32, i64)]);

    /// Commits what was stored (on shutdown).
    fn commit(&self);
}

/// Contiguous-watermark, at-least-once commits (see the module header).
pub(crate) struct AtLeastOnce<O> {
    tracker: Arc<Mutex<OffsetTracker>>,
    revocations: Arc<Revocations>,
    store: O,
}

impl<O: OffsetStore> AtLeastOnce<O> {
    /// A strategy over `tracker` and `revocations` (shared with the consumer's context,
    /// which forgets revoked partitions), storing into `store`.
    pub(crate) fn new(
        tracker: Arc<Mutex<OffsetTracker>>,
        revocations: Arc<Revocations>,
        store: O,
    ) -> Self {
        AtLeastOnce {
            tracker,
            revocations,
            store,
        }
    }

    /// The offset store.
    pub(crate) fn store(&self) -> &O {
        &self.store
    }

    /// Records registered and not settled yet.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn in_flight(&self) -> usize {
        self.tracker.lock().expect("tracker poisoned").in_flight()
    }
}

impl<O: OffsetStore> Commit for AtLeastOnce<O> {
    fn revoked(&self) -> bool {
        self.revocations.pending()
    }

    fn register(&self, records: &[InFlight]) -> Vec<Skip> {
        let revoked = self.revocations.take();
        let mut tracker = self.tracker.lock().expect("tracker poisoned");
        let skips =
            tracker.register_all(records.iter().map(|r| (&*r.topic, r.partition, r.offset)));
        if let Some(revoked) = revoked {
            tracker.forget(revoked);
        }
        skips
    }

    fn settle(&self, records: &[InFlight]) {
        // One lock for the batch; one entry per partition: its furthest watermark.
        let stores = self
            .tracker
            .lock()
            .expect("tracker poisoned")
            .complete_all(records.iter().map(|r| (&*r.topic, r.partition, r.offset)));
        if !stores.is_empty() {
            self.store.store(&stores);
        }
    }

    fn close(&self) {
        self.store.commit();
    }
}

/// The consumer's own offset store: librdkafka commits stored offsets every second and on
/// revoke.
pub(crate) struct ConsumerOffsets(pub(crate) Arc<StreamConsumer<LaneContext>>);

impl OffsetStore for ConsumerOffsets {
    fn store(&self, offsets: &[(&str, i32, i64)]) {
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for (topic, partition, next) in offsets {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        if let Err(e) = self.0.store_offsets(&list) {
            // A partition revoked meanwhile: its records are redelivered elsewhere.
            tracing::debug!(error = %e, "storing offsets failed");
        }
    }

    fn commit(&self) {
        if let Err(e) = self.0.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit (nothing stored?)");
        }
    }
}

/// Offsets kept in memory: the test driver's store.
#[derive(Debug, Default)]
pub(crate) struct MemoryOffsets {
    stored: Mutex<BTreeMap<(String, i32), i64>>,
}

impl MemoryOffsets {
    /// The next offset to consume stored for a partition, if any.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.stored
            .lock()
            .expect("offsets poisoned")
            .get(&(topic.to_owned(), partition))
            .copied()
    }
}

impl OffsetStore for MemoryOffsets {
    fn store(&self, offsets: &[(&str, i32, i64)]) {
        let mut stored = self.stored.lock().expect("offsets poisoned");
        for (topic, partition, next) in offsets {
            stored.insert(((*topic).to_owned(), *partition), *next);
        }
    }

    fn commit(&self) {}
}
