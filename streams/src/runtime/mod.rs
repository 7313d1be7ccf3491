//! The runtime: runs a [`Topology`] as a consumer group, at least once.
//!
//! - [`PipelineConfig`]: brokers, group, batching, retry policy.
//! - [`Pipeline::run`]: creates missing topics (retry, dead-letter, sources), then runs one *lane* per
//!   consumer: the main lane reads the source topics (group `<group>`), and retry lane `n`
//!   reads `<pipeline>.retry.<n>` (group `<group>.retry.<n>`), waiting for each record's
//!   `not-before` header. All lanes share the topology, sink, codec and metrics.
//! - `source`: the two kinds of source a lane reads (the topology's topics; one retry
//!   topic) and all that differs between them (group, topics, due times, batching).
//! - `lane`: one consumer: a `reader` task (consume, batch by count, bytes and linger, or
//!   at once when the writer has room), a `transform` task (decode and transform, large
//!   batches split over threads, order kept) and a `writer` task (sink, in-place retries,
//!   routing of failures, settling; several batches at once when the sink allows it),
//!   joined by channels of one batch, so a slow sink slows consumption.
//! - `commit`: the commit strategy a lane settles its records with: `AtLeastOnce`
//!   (contiguous watermarks stored for librdkafka's commits) today; the seam for a
//!   transactional, exactly-once one.
//! - `context`: commit on revoke, lag from librdkafka statistics, and offset gaps: a
//!   partition assigned with a committed offset below its start (records expired by
//!   retention or deleted before the group processed them) is reported loudly (an error
//!   log line, `pipeline_offset_gap_records`, a `/health` warning) before consumption
//!   resumes from the partition's start.
//! - `gauges`: the dead-letter topic's size and the age of its oldest record, sampled.
//!
//! Topics it creates get their own retention: the dead-letter topic keeps its records
//! until purged ([`PipelineConfig::dlq_retention`]), retry topics 7 days
//! ([`PipelineConfig::retry_retention`]); an existing dead-letter or retry topic with
//! another retention is altered to it at start.
//!
//! Offsets: each consumed record is registered in an [`OffsetTracker`] (a batch at a time,
//! before it leaves the reader) and completed once settled (sunk, already applied, or produced to a retry/dead-letter topic); only the
//! tracker's contiguous watermark is stored, and librdkafka commits stored offsets every
//! second, on revoke and once more on shutdown.
//!
//! [`OffsetTracker`]: crate::offsets::OffsetTracker

mod commit;
mod context;
mod gauges;
mod lane;
mod reader;
mod source;
mod transform;
mod writer;

pub(crate) use commit::{AtLeastOnce, Commit, MemoryOffsets};
pub(crate) use context::Revocations;
pub(crate) use lane::{Flow, Lane};
pub(crate) use source::Source;
pub(crate) use transform::Pending;
pub(crate) use writer::MemoryProducer;
pub use writer::Produced;

use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::Codec;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
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
    /// Whether the main source cuts a batch as soon as the consumer has nothing more and
    /// the sink has room (true, the default: a lone record waits for nobody), or only at
    /// its count, bytes or linger (false: fewer, fuller batches at low rates, for a sink
    /// whose writes are files, such as the log archive).
    pub cut_when_idle: bool,
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
            cut_when_idle: true,
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
    /// How long the dead-letter topic keeps its records (`retention.ms`): `None` (the
    /// default) keeps them until `anineplus-dlq purge` deletes them, whatever the broker's
    /// `log.retention.*`.
    pub dlq_retention: Option<Duration>,
    /// How long retry topics keep their records (`retention.ms`); 7 days by default, to
    /// stay far above the longest retry delay while a retry lane is down.
    pub retry_retention: Duration,
    /// librdkafka settings for every lane's consumer, applied after the runtime's own
    /// (e.g. `max.partition.fetch.bytes`); empty by default.
    pub consumer_overrides: Vec<(String, String)>,
    /// Whether each record that carries a `correlation-id` header logs one `info` line
    /// (target `anineplus_streams::trace`, "record written", with its correlation id,
    /// topic, partition and offset) once the sink has it: how a request is followed
    /// through the pipelines (`anineplus-logs trace`). On by default; records without the
    /// header cost nothing. The log pipelines turn it off (their records are log lines).
    pub trace_records: bool,
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
            dlq_retention: None,
            retry_retention: Duration::from_secs(7 * 24 * 3600),
            consumer_overrides: Vec::new(),
            trace_records: true,
        }
    }

    /// The `retention.ms` of each retry and dead-letter topic, by name.
    fn retention(&self) -> Vec<(String, String)> {
        let topics = self.topics();
        let retry = self.retry_retention.as_millis().to_string();
        let mut out: Vec<(String, String)> = (1..=self.retry.delays.len())
            .map(|l| (topics.retry(l), retry.clone()))
            .collect();
        let dlq = self
            .dlq_retention
            .map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string());
        out.push((topics.dlq(), dlq));
        out
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
        // One producer for the failed records of every lane (a client and its threads per
        // process, not per lane). Every lane's consumer is created before any runs, so a
        // failure leaves nothing behind.
        let producer = kafka::Producer::new(&self.config.brokers)?;
        let lanes = Source::all(&self.config)
            .into_iter()
            .map(|source| {
                lane::KafkaLane::start(
                    source,
                    self.config.clone(),
                    self.topology.clone(),
                    self.codec.clone(),
                    self.metrics.clone(),
                    producer.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tasks = TaskTracker::new();
        for lane in lanes {
            tasks.spawn(self.keep_running(lane, producer.clone(), shutdown.clone()));
        }
        tasks.spawn(gauges::sample_dead_letters(
            self.config.brokers.clone(),
            self.config.topics().dlq(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
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

    /// Runs `lane` until `shutdown`; a lane whose consumer failed for good (a fatal error:
    /// librdkafka's consumer never reads again) is started afresh with a new consumer, which
    /// rejoins the group and resumes at the committed offsets.
    fn keep_running(
        &self,
        mut lane: lane::KafkaLane<S>,
        producer: kafka::Producer,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (config, topology, codec, metrics) = (
            self.config.clone(),
            self.topology.clone(),
            self.codec.clone(),
            self.metrics.clone(),
        );
        async move {
            loop {
                let source = lane.source();
                let Some(reason) = lane.run(shutdown.clone()).await else {
                    return;
                };
                tracing::error!(
                    pipeline = %config.name, lane = %source.name(), %reason,
                    "consumer failed for good: the lane starts again with a new consumer"
                );
                Metrics::add(&metrics.consumer_restarts, 1);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match lane::KafkaLane::start(
                    source,
                    config.clone(),
                    topology.clone(),
                    codec.clone(),
                    metrics.clone(),
                    producer.clone(),
                ) {
                    Ok(fresh) => lane = fresh,
                    Err(e) => {
                        let reason = format!("a new consumer: {e}");
                        tracing::error!(pipeline = %config.name, lane = %source.name(), %reason, "lane failed and stopped");
                        metrics.fail_lane(&source.name(), &reason);
                        return;
                    }
                }
            }
        }
    }

    async fn create_topics(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            kafka::producer_config(&self.config.brokers).create()?;
        let retention = self.config.retention();
        let mut names: Vec<String> = retention.iter().map(|(n, _)| n.clone()).collect();
        names.extend(self.topology.topics());
        names.extend(self.topology.sink.topics());
        let new: Vec<_> = names
            .iter()
            .map(|n| {
                let topic = NewTopic::new(
                    n,
                    self.config.topic_partitions,
                    TopicReplication::Fixed(self.config.topic_replication),
                );
                match retention.iter().find(|(t, _)| t == n) {
                    Some((_, ms)) => topic
                        .set("retention.ms", ms)
                        .set("retention.bytes", "-1")
                        .set("cleanup.policy", "delete"),
                    None => topic,
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::Topic {
                        topic,
                        reason: format!("creating it: {code}"),
                    });
                }
            }
        }
        ensure_retention(&admin, &retention).await
    }
}

/// Alters the retry and dead-letter topics that exist with another `retention.ms` (created
/// before, or by hand) to theirs, keeping their other settings.
async fn ensure_retention(
    admin: &AdminClient<DefaultClientContext>,
    retention: &[(String, String)],
) -> Result<()> {
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let resources: Vec<ResourceSpecifier<'_>> = retention
        .iter()
        .map(|(t, _)| ResourceSpecifier::Topic(t))
        .collect();
    let described = admin.describe_configs(&resources, &options).await?;
    for ((topic, ms), described) in retention.iter().zip(described) {
        let resource = described.map_err(|code| Error::Topic {
            topic: topic.clone(),
            reason: format!("describing its configuration: {code}"),
        })?;
        let current = resource.get("retention.ms").and_then(|e| e.value.clone());
        if current.as_deref() == Some(ms.as_str()) {
            continue;
        }
        // AlterConfigs replaces a topic's overrides: keep the others.
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for entry in &resource.entries {
            if matches!(entry.source, ConfigSource::DynamicTopic)
                && entry.name != "retention.ms"
                && let Some(value) = &entry.value
            {
                alter = alter.set(&entry.name, value);
            }
        }
        alter = alter.set("retention.ms", ms);
        tracing::warn!(
            %topic, from = ?current, to = %ms,
            "retention of an existing retry or dead-letter topic altered"
        );
        for result in admin.alter_configs(&[alter], &options).await? {
            result.map_err(|(_, code)| Error::Topic {
                topic: topic.clone(),
                reason: format!("setting retention.ms={ms}: {code}"),
            })?;
        }
    }
    Ok(())
}

impl<S: Sink> Pipeline<S> {
    /// The configuration it runs with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }
}
