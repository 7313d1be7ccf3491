//! The consumer context: commits on revoke and feeds the lag metric.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;

/// Shared with the lane: the tracker to clear on revoke, the metrics to feed.
pub(crate) struct LaneContext {
    pub(crate) tracker: Arc<Mutex<OffsetTracker>>,
    pub(crate) metrics: Arc<Metrics>,
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
