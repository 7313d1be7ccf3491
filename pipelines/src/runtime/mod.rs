//! The runtime: runs a [`Topology`] as a consumer group, at least once.
//!
//! - [`PipelineConfig`]: brokers, group, batching, retry policy.
//! - [`Pipeline::run`]: creates missing topics (retry, dead-letter, sources), then runs one *lane* per
//!   consumer: the main lane reads the source topics (group `<group>`), and retry lane `n`
//!   reads `<pipeline>.retry.<n>` (group `<group>.retry.<n>`), waiting for each record's
//!   `not-before` header. All lanes share the topology, sink, codec and metrics.
//! - `lane`: one consumer: a reader task (consume, batch by count, bytes and linger, or at
//!   once when idle), a transformer task (decode and transform, large batches split over
//!   threads, order kept) and a writer task (sink, retries, routing of failures, offsets),
//!   joined by channels of one batch, so a slow sink slows consumption.
//! - `context`: commit on revoke, lag from librdkafka statistics.
//!
//! Offsets: each consumed record is registered in an [`OffsetTracker`] (a batch at a time,
//! before it leaves the reader) and completed once settled (sunk, already applied, or produced to a retry/dead-letter topic); only the
//! tracker's contiguous watermark is stored, and librdkafka commits stored offsets every
//! second, on revoke and once more on shutdown.
//!
//! [`OffsetTracker`]: crate::offsets::OffsetTracker

mod context;
mod lane;

use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::Codec;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dead_letter::{PipelineTopics, RetryPolicy};
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::topology::Topology;
use crate::{Error, Result};

/// Batches are cut at whichever limit comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most records per batch.
    pub max_records: usize,
    /// Most value bytes per batch.
    pub max_bytes: usize,
    /// Longest wait after the first record of a batch. A batch is cut sooner when the
    /// consumer has nothing more to give and no earlier batch is still unsettled.
    pub linger: Duration,
    /// Threads a large batch is decoded and transformed on (contiguous chunks of at least
    /// 128 records, put back in order). Defaults to the available parallelism, at most 4.
    pub workers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: 1000,
            max_bytes: 4 * 1024 * 1024,
            linger: Duration::from_millis(50),
            workers: std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(4),
        }
    }
}

/// How a pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The pipeline's name: its retry and dead-letter topics are `<topic_prefix><name>.*`.
    pub name: String,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group of the main lane; retry lanes use `<group>.retry.<n>`.
    pub group: String,
    /// Prefix of the retry and dead-letter topics (empty in production).
    pub topic_prefix: String,
    /// Batching.
    pub batch: BatchConfig,
    /// Retries.
    pub retry: RetryPolicy,
    /// Partitions of the topics the pipeline creates when missing: its retry and
    /// dead-letter topics, and source topics nobody created yet (so a pipeline started
    /// before its producers does not wait for librdkafka's 5-minute metadata refresh).
    /// Matches the broker's `num.partitions` (3) by default.
    pub topic_partitions: i32,
    /// Replication factor of the topics the pipeline creates; -1 (the default) takes the
    /// broker's `default.replication.factor` (1 on the local stack, 3 on a real cluster).
    pub topic_replication: i32,
}

impl PipelineConfig {
    /// A configuration with the default batching and retry policy.
    pub fn new(name: &str, brokers: &str, group: &str) -> Self {
        PipelineConfig {
            name: name.to_owned(),
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            topic_prefix: String::new(),
            batch: BatchConfig::default(),
            retry: RetryPolicy::default(),
            topic_partitions: 3,
            topic_replication: -1,
        }
    }

    /// The retry and dead-letter topics.
    pub fn topics(&self) -> PipelineTopics {
        PipelineTopics::new(&self.topic_prefix, &self.name)
    }
}

/// A topology bound to its configuration, ready to run.
pub struct Pipeline<S: Sink> {
    config: Arc<PipelineConfig>,
    topology: Arc<Topology<S>>,
    codec: Codec,
    metrics: Arc<Metrics>,
}

impl<S: Sink> Pipeline<S> {
    /// A pipeline running `topology`, decoding through `codec`.
    pub fn new(config: PipelineConfig, topology: Topology<S>, codec: Codec) -> Self {
        let metrics = Arc::new(Metrics::new(&config.name));
        Pipeline {
            config: Arc::new(config),
            topology: Arc::new(topology),
            codec,
            metrics,
        }
    }

    /// The metrics, to serve or inspect.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown`, then drains the batches in flight, commits and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        self.create_topics().await?;
        // Every lane's consumer is created before any runs, so a failure leaves nothing behind.
        let lanes = (0..=self.config.retry.delays.len())
            .map(|level| {
                lane::Lane::start(
                    level,
                    self.config.clone(),
                    self.topology.clone(),
                    self.codec.clone(),
                    self.metrics.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tasks = TaskTracker::new();
        for lane in lanes {
            tasks.spawn(lane.run(shutdown.clone()));
        }
        tasks.close();
        self.metrics.set_ready(true);
        tracing::info!(
            pipeline = %self.config.name,
            topics = ?self.topology.topics(),
            group = %self.config.group,
            "pipeline running"
        );
        tasks.wait().await;
        self.metrics.set_ready(false);
        tracing::info!(pipeline = %self.config.name, "pipeline stopped");
        Ok(())
    }

    async fn create_topics(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            kafka::producer_config(&self.config.brokers).create()?;
        let topics = self.config.topics();
        let mut names: Vec<String> = (1..=self.config.retry.delays.len())
            .map(|l| topics.retry(l))
            .collect();
        names.push(topics.dlq());
        names.extend(self.topology.topics());
        names.extend(self.topology.sink.topics());
        let new: Vec<_> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.config.topic_partitions,
                    TopicReplication::Fixed(self.config.topic_replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::Setup(format!("creating topic {topic}: {code}")));
                }
            }
        }
        Ok(())
    }
}
