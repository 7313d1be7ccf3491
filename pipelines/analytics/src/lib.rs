//! The analytics pipeline (the Analytics consumer): stateful counts over the platform's
//! events, exactly once, into the `anime-stats` topic and index; binary
//! `anineplus-analytics`. Built on the runtime's stateful steps
//! (`anineplus_streams::state`), four of them plus one stateless sink, each its own
//! consumer group:
//!
//! ```text
//! comment ──► analytics-comments (per comment: does it count?) ──► analytics-comment-deltas
//!   (keyed by anime) ──► analytics-comment-counts (1 h windows, grace 5 min) ──┐
//! subscription ──► analytics-subscriptions (per subscription: active?) ──►     ├─► anime-stats
//!   analytics-plan-deltas (keyed by plan) ──► analytics-plan-counts ───────────┘      │
//!                               analytics-index (read_committed, versioned) ◄──────────┘
//!                                                  └─► <index prefix>-anime-stats (the API)
//! ```
//!
//! Layout: [`comments`] and [`subscriptions`] (the first steps: per-entity state, deltas
//! keyed by the key to count by, which repartitions them), [`counts`] (the sums, windowed
//! for comments), [`index`] (the sink of the stats index), here the configuration, the
//! topic names and [`run`]. `docs/state.md` explains the model, the guarantees and how
//! they are tested.

pub mod comments;
pub mod counts;
pub mod index;
pub mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::search::{self, CallError};
use anineplus_connectors::search_sink::{BulkLimits, BulkService, SearchSink};
use anineplus_schemas::events::AnimeStat;
use anineplus_schemas::{Codec, EncodeError, Topic};
use anineplus_streams::metrics::{self, Metrics};
use anineplus_streams::state::{Guarantee, Processor, StatefulConfig, StatefulPipeline};
use anineplus_streams::{Pipeline, PipelineConfig, Stream};
use tokio_util::sync::CancellationToken;

/// Why the pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime failed.
    #[error(transparent)]
    Streams(#[from] anineplus_streams::Error),
    /// The search engine refused the index or could not be reached.
    #[error("stats index: {0}")]
    Search(#[from] CallError),
    /// The search client could not be built.
    #[error("search client: {0}")]
    Client(String),
    /// The `anime-stats` schema could not be registered.
    #[error(transparent)]
    Registry(#[from] EncodeError),
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint on {listen}: {source}")]
    Metrics {
        /// The address.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of the analytics pipeline.
pub type Result<T> = std::result::Result<T, Error>;

/// The first comment step.
pub const COMMENTS: &str = "analytics-comments";
/// The comment counts.
pub const COMMENT_COUNTS: &str = "analytics-comment-counts";
/// The first subscription step.
pub const SUBSCRIPTIONS: &str = "analytics-subscriptions";
/// The plan counts.
pub const PLAN_COUNTS: &str = "analytics-plan-counts";
/// The stats index's sink.
pub const INDEX: &str = "analytics-index";

/// The topics, under a prefix (empty in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `comment`.
    pub comment: String,
    /// `subscription`.
    pub subscription: String,
    /// `analytics-comment-deltas` (internal: JSON deltas keyed by anime id).
    pub comment_deltas: String,
    /// `analytics-plan-deltas` (internal: JSON deltas keyed by plan).
    pub plan_deltas: String,
    /// `analytics-late-comments`: comment deltas that came after their window closed.
    pub late_comments: String,
    /// `anime-stats`.
    pub stats: String,
}

impl Topics {
    /// The topics under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Topics {
            comment: format!("{prefix}{}", Topic::Comment.name()),
            subscription: format!("{prefix}{}", Topic::Subscription.name()),
            comment_deltas: format!("{prefix}analytics-comment-deltas"),
            plan_deltas: format!("{prefix}analytics-plan-deltas"),
            late_comments: format!("{prefix}analytics-late-comments"),
            stats: format!("{prefix}{}", Topic::AnimeStats.name()),
        }
    }
}

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The schema registry.
    pub schema_registry_url: String,
    /// The search engine.
    pub elasticsearch_url: String,
    /// Prefix of the stats index: `<prefix>-anime-stats`.
    pub index_prefix: String,
    /// Prefix of every topic (empty in production; tests use a unique one).
    pub topic_prefix: String,
    /// Prefix of the consumer groups: `<group_prefix><pipeline>`.
    pub group_prefix: String,
    /// Replication factor of the topics it creates (-1: the broker's default).
    pub topic_replication: i32,
    /// At least once or exactly once (the default).
    pub guarantee: Guarantee,
    /// How often the stateful steps commit.
    pub commit_interval: Duration,
    /// Most records a stateful step's commit holds.
    pub commit_records: usize,
    /// This instance's id, unique among the instances and stable across restarts.
    pub instance: String,
    /// Where `/metrics` and `/health` listen (every step's, on one endpoint).
    pub metrics_listen: SocketAddr,
}

impl AnalyticsConfig {
    fn pipeline(&self, name: &str) -> PipelineConfig {
        let mut config = PipelineConfig::new(
            name,
            &self.kafka_brokers,
            &format!("{}{name}", self.group_prefix),
        );
        config.topic_prefix = self.topic_prefix.clone();
        config.topic_replication = self.topic_replication;
        config
    }

    fn stateful(&self, name: &str) -> StatefulConfig {
        let mut config = StatefulConfig::new(self.pipeline(name), self.guarantee);
        config.commit_interval = self.commit_interval;
        config.commit_records = self.commit_records;
        config.instance = self.instance.clone();
        config
    }
}

/// The pipeline's parts, built and ready to run.
pub struct Analytics {
    config: AnalyticsConfig,
    codec: Codec,
    schema_id: u32,
    client: elasticsearch::Elasticsearch,
}

impl Analytics {
    /// Registers the `anime-stats` schema and creates the stats index.
    pub async fn prepare(config: AnalyticsConfig) -> Result<Self> {
        let codec = Codec::new(&config.schema_registry_url);
        let schema_id = codec.register(Topic::AnimeStats).await?;
        let client = search::client(&config.elasticsearch_url, Duration::from_secs(30))
            .map_err(|e| Error::Client(e.to_string()))?;
        let index = anineplus_schemas::indices::stats_index(&config.index_prefix);
        index::ensure_index(&client, &index).await?;
        Ok(Analytics {
            config,
            codec,
            schema_id,
            client,
        })
    }

    /// Runs every step until `shutdown`; each commits what it processed and stops. The
    /// first to fail stops the others.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let c = &self.config;
        let topics = Topics::new(&c.topic_prefix);
        let stop = shutdown.child_token();
        let comments = self.stateful(
            COMMENTS,
            comments::CommentDeltas::new(&topics.comment, &topics.comment_deltas),
        );
        let comment_counts = self.stateful(
            COMMENT_COUNTS,
            counts::comments_per_hour(
                &topics.comment_deltas,
                &topics.stats,
                &topics.late_comments,
                self.schema_id,
            ),
        );
        let subscriptions = self.stateful(
            SUBSCRIPTIONS,
            subscriptions::PlanDeltas::new(&topics.subscription, &topics.plan_deltas),
        );
        let plan_counts = self.stateful(
            PLAN_COUNTS,
            counts::subscriptions_per_plan(&topics.plan_deltas, &topics.stats, self.schema_id),
        );
        let index_name = anineplus_schemas::indices::stats_index(&c.index_prefix);
        let sink = index::StatsSink::new(SearchSink::new(
            BulkService::new(self.client.clone()),
            BulkLimits::default(),
        ));
        let topology = Stream::<AnimeStat>::topic_located(&topics.stats)
            .map(move |record| index::document(&index_name, &record))
            .to(sink);
        let mut index_config = c.pipeline(INDEX);
        // Only what the counting steps' transactions committed.
        index_config
            .consumer_overrides
            .push(("isolation.level".to_owned(), "read_committed".to_owned()));
        // Static membership, like the stateful steps': an instance restarted after a crash
        // takes its partitions back at once instead of after the dead member's session
        // timeout (10 s of an index left behind the counts; every lane's group is its own,
        // so one id serves them all).
        index_config.consumer_overrides.push((
            "group.instance.id".to_owned(),
            format!("{}{INDEX}-{}", c.group_prefix, c.instance),
        ));
        let index = Pipeline::new(index_config, topology, self.codec.clone());
        let all: Vec<Arc<Metrics>> = vec![
            comments.metrics(),
            comment_counts.metrics(),
            subscriptions.metrics(),
            plan_counts.metrics(),
            index.metrics(),
        ];
        let addr = metrics::serve_all(all, c.metrics_listen, shutdown.clone())
            .await
            .map_err(|source| Error::Metrics {
                listen: c.metrics_listen,
                source,
            })?;
        tracing::info!(
            metrics = %addr, guarantee = %c.guarantee, index_prefix = %c.index_prefix,
            "analytics pipeline started"
        );
        let guard = |s: CancellationToken| {
            move |r: anineplus_streams::Result<()>| {
                if r.is_err() {
                    s.cancel();
                }
                r
            }
        };
        let (a, b, d, e, f) = tokio::join!(
            async { guard(stop.clone())(comments.run(stop.clone()).await) },
            async { guard(stop.clone())(comment_counts.run(stop.clone()).await) },
            async { guard(stop.clone())(subscriptions.run(stop.clone()).await) },
            async { guard(stop.clone())(plan_counts.run(stop.clone()).await) },
            async { guard(stop.clone())(index.run(stop.clone()).await) },
        );
        a?;
        b?;
        d?;
        e?;
        f?;
        Ok(())
    }

    fn stateful<P: Processor>(&self, name: &str, processor: P) -> StatefulPipeline<P> {
        StatefulPipeline::new(self.config.stateful(name), processor, self.codec.clone())
    }
}
