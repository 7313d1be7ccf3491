//! The consumer context: commits on revoke and feeds the lag metric.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use crate::metrics::Metrics;
use crate::offsets::{OffsetTracker, Partition};

/// Shared with the lane: the tracker to clear on revoke, the metrics to feed.
pub(crate) struct LaneContext {
    pub(crate) tracker: Arc<Mutex<OffsetTracker>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) revocations: Arc<Revocations>,
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
            self.tracker
                .lock()
                .expect("tracker poisoned")
                .forget(partitions);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            tracing::info!(count = assigned.count(), "partitions assigned");
        }
    }
}
