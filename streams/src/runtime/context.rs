//! The consumer context: commits on revoke, feeds the lag metric, and reports offset gaps
//! on assignment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::Metrics;
use crate::offsets::{OffsetTracker, Partition, Skip};

/// Told which partitions a revoke took (the sink's [`crate::sink::Sink::revoked`]).
pub(crate) type OnRevoke = Box<dyn Fn(&[Partition]) + Send + Sync>;

/// Shared with the lane: the tracker to clear on revoke, the metrics to feed, the sink to
/// tell.
pub(crate) struct LaneContext {
    pub(crate) tracker: Arc<Mutex<OffsetTracker>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) on_revoke: OnRevoke,
}

/// Partitions revoked since the reader last looked.
///
/// The reader registers a batch's offsets in the tracker once per batch, so when a revoke
/// arrives (it is served inside the reader's own poll of the consumer) some consumed records
/// may not be registered yet. The reader checks [`Revocations::take`] after every poll and
/// registers what it holds, then forgets the revoked partitions again, exactly as if each
/// record had been registered when consumed.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    any: AtomicBool,
    partitions: Mutex<Vec<Partition>>,
}

impl Revocations {
    fn push(&self, revoked: &[Partition]) {
        self.partitions
            .lock()
            .expect("revocations poisoned")
            .extend_from_slice(revoked);
        self.any.store(true, Ordering::Release);
    }

    /// Whether a revoke was served since the last [`Revocations::take`].
    pub(crate) fn pending(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// The partitions revoked since the last call, if any (one atomic load when none).
    pub(crate) fn take(&self) -> Option<Vec<Partition>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.any.store(false, Ordering::Release);
        Some(std::mem::take(
            &mut *self.partitions.lock().expect("revocations poisoned"),
        ))
    }
}

impl ClientContext for LaneContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.set_lag(name, *partition, p.consumer_lag);
                }
            }
        }
    }
}

/// What operators are told to do about an offset gap.
pub(crate) const GAP_ADVICE: &str = "the records in between were never processed: check the \
     sink against its source of truth (for the search indexer: `anineplus-search verify`, \
     then `anineplus-search repair`)";

impl LaneContext {
    /// Compares the group's committed offset of each assigned partition with the
    /// partition's start: a committed offset below it means records expired (retention) or
    /// were deleted before this group processed them. librdkafka then resets to the start
    /// (`auto.offset.reset=earliest`) without a word; this says it loudly instead (an error
    /// log line, the `pipeline_offset_gap_records` metric, a `/health` warning).
    fn report_gaps(&self, consumer: &BaseConsumer<Self>, assigned: &TopicPartitionList) {
        let timeout = Duration::from_secs(5);
        let committed = match consumer.committed_offsets(assigned.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not read committed offsets to check for gaps");
                return;
            }
        };
        for element in committed.elements() {
            let Offset::Offset(at) = element.offset() else {
                continue; // nothing committed yet: a new group starts at the beginning
            };
            let (topic, partition) = (element.topic(), element.partition());
            let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, timeout) else {
                continue;
            };
            if at < low {
                tracing::error!(
                    %topic, partition, committed = at, earliest = low, lost = low - at,
                    "OFFSET GAP: the committed offset fell out of the topic's retention; \
                     resuming at the earliest record; {GAP_ADVICE}"
                );
                self.metrics
                    .offset_gap(topic, partition, low - at, GAP_ADVICE);
            } else if at > high {
                tracing::error!(
                    %topic, partition, committed = at, end = high,
                    "OFFSET GAP: the committed offset is beyond the partition's end (topic \
                     recreated?); resuming at the earliest record; {GAP_ADVICE}"
                );
                self.metrics.offset_gap(topic, partition, 0, GAP_ADVICE);
            }
        }
    }
}

impl LaneContext {
    /// Checks offsets a partition skipped while running against the partition's start: a
    /// start beyond the offset that was due means the records in between expired
    /// (retention) or were deleted before this consumer read them (librdkafka then resets
    /// to the start, `auto.offset.reset=earliest`, without a word): reported like a gap
    /// found at assignment. Skips the start does not explain are transaction markers or
    /// compaction, and harmless.
    pub(crate) fn check_skips<C: Consumer<LaneContext>>(&self, consumer: &C, skips: &[Skip]) {
        for skip in skips {
            let low = match consumer.fetch_watermarks(
                &skip.topic,
                skip.partition,
                Duration::from_secs(5),
            ) {
                Ok((low, _)) => low,
                Err(e) => {
                    tracing::warn!(
                        error = %e, topic = %skip.topic, partition = skip.partition,
                        expected = skip.expected, got = skip.got,
                        "offsets skipped; could not read the partition's start to check for a gap"
                    );
                    continue;
                }
            };
            if low > skip.expected {
                let lost = low.min(skip.got) - skip.expected;
                tracing::error!(
                    topic = %skip.topic, partition = skip.partition, expected = skip.expected,
                    resumed_at = skip.got, earliest = low, lost,
                    "OFFSET GAP while running: records expired or were deleted before they \
                     were read; {GAP_ADVICE}"
                );
                self.metrics
                    .offset_gap(&skip.topic, skip.partition, lost, GAP_ADVICE);
            } else {
                tracing::debug!(
                    topic = %skip.topic, partition = skip.partition, expected = skip.expected,
                    got = skip.got, "offsets skipped (transaction markers or compaction)"
                );
            }
        }
    }
}

impl ConsumerContext for LaneContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            // Commit what the sink confirmed before the partitions go; records still in
            // flight are redelivered to the next owner (the versioned sink makes that
            // harmless) and must not be stored by us any more.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing stored yet?)");
            }
            let partitions = revoked
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect::<Vec<_>>();
            tracing::info!(?partitions, "partitions revoked");
            self.revocations.push(&partitions);
            (self.on_revoke)(&partitions);
            self.tracker
                .lock()
                .expect("tracker poisoned")
                .forget(partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            tracing::info!(count = assigned.count(), "partitions assigned");
            if assigned.count() > 0 {
                self.report_gaps(consumer, assigned);
            }
        }
    }
}
