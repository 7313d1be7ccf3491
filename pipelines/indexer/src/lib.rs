//! The search indexer: keeps the search indices in step with the aggregate topics. A
//! pipeline on the `anineplus-streams` runtime; binary `anineplus-indexer`.
//!
//! Layout:
//! - [`IndexerConfig`]: its configuration (the binary maps its flags and environment into it).
//! - [`indices`]: the indices, aliases and mappings.
//! - [`documents`]: events → versioned documents.
//! - [`denormalise`]: the fields one entity's document carries of another's, and
//!   [`IndexerSink`], the search sink followed by their follow-up writes.
//! - [`sink`]: [`sink::SearchWriter`], the plain search sink (no follow-up writes);
//! - [`topology`]: the topology below with its sink, no consumer started (also used by
//!   `anineplus-dlq replay --to sink`);
//! - [`run`]: puts the index templates, then runs the topology
//!   `user|organization|anime|episode|comment|subscription → documents → IndexerSink` as the
//!   pipeline `indexer` (retry topics `indexer.retry.{1,2,3}`, dead letters `indexer.dlq`,
//!   all behind `TOPIC_PREFIX`), serving `/metrics` and `/health` on `METRICS_LISTEN`.

pub mod denormalise;
pub mod documents;
pub mod indices;
pub mod sink;

use std::net::SocketAddr;
use std::time::Duration;

use anineplus_connectors::search;
use anineplus_connectors::search_sink::{BulkLimits, BulkService, SearchSink};
use anineplus_schemas::Codec;
use anineplus_schemas::Topic;
use anineplus_schemas::events::{
    AnimeData, CommentData, Envelope, EpisodeData, OrganizationData, SubscriptionData, UserData,
};
use tokio_util::sync::CancellationToken;

use anineplus_streams::dead_letter::RetryPolicy;
use anineplus_streams::metrics::{self, Metrics};
use anineplus_streams::{BatchConfig, Pipeline, PipelineConfig, Stream, Topology};
use denormalise::{FollowUp, Indexed, IndexerSink};
use documents::Documents;

/// The pipeline's name: its retry and dead-letter topics are `indexer.retry.<n>`, `indexer.dlq`.
pub const PIPELINE: &str = "indexer";

/// Configuration of the search indexer (the binary's flags, `anineplus-indexer --help`,
/// map into it).
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The Elasticsearch/OpenSearch URL.
    pub elasticsearch_url: String,
    /// The schema registry URL.
    pub schema_registry_url: String,
    /// The consumer group (retry lanes use `<group>.retry.<n>`).
    pub group: String,
    /// Prefix of the index aliases: `<prefix>-anime`, ...
    pub index_prefix: String,
    /// Prefix of every topic read or written (empty in production; tests use a unique one).
    pub topic_prefix: String,
    /// Where `/metrics` and `/health` listen.
    pub metrics_listen: SocketAddr,
    /// Most documents per bulk request.
    pub bulk_docs: usize,
    /// Most bytes per bulk request.
    pub bulk_bytes: usize,
    /// Replication factor of the retry, dead-letter and missing source topics it creates
    /// (-1: the broker's `default.replication.factor`).
    pub topic_replication: i32,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// Why the indexer could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime failed (Kafka, topics, ...).
    #[error(transparent)]
    Streams(#[from] anineplus_streams::Error),
    /// A connector could not be built.
    #[error(transparent)]
    Connector(#[from] anineplus_connectors::Error),
    /// The search indices could not be set up.
    #[error(transparent)]
    SearchSetup(#[from] anineplus_connectors::search_sink::templates::SetupError),
    /// Something else in the set-up failed.
    #[error("setup: {0}")]
    Setup(String),
}

/// Result of the indexer.
pub type Result<T> = std::result::Result<T, Error>;

/// A running indexer's handles.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its metrics.
    pub metrics: std::sync::Arc<Metrics>,
    /// Where `/metrics` and `/health` listen.
    pub metrics_addr: SocketAddr,
}

/// The indexer's topology (`user|organization|anime|episode|comment|subscription →
/// documents → IndexerSink`), built without starting any consumer: the one definition used
/// by [`prepare`] and by `anineplus-dlq replay --to sink`. With `setup`, the index templates
/// and first indices are put first (idempotent, as at start); without, nothing is sent to the
/// engine.
pub async fn topology(config: &IndexerConfig, setup: bool) -> Result<Topology<IndexerSink>> {
    let client = search::client(&config.elasticsearch_url, Duration::from_secs(30))?;
    if setup {
        indices::create_all(&client, &config.index_prefix).await?;
    }
    let docs = Documents::new(&config.index_prefix);
    let t = |topic: Topic| format!("{}{}", config.topic_prefix, topic.name());
    let stream = {
        let d = docs.clone();
        Stream::<Envelope<AnimeData>>::topic(t(Topic::Anime)).flat_map(move |e| {
            let follow_up = FollowUp::of_anime(&e);
            Indexed::all(d.anime(e), follow_up)
        })
    };
    let stream = {
        let d = docs.clone();
        stream.merge(
            Stream::<Envelope<EpisodeData>>::topic(t(Topic::Episode))
                .flat_map(move |e| Indexed::all(d.episode(e), None)),
        )
    };
    let stream = {
        let d = docs.clone();
        stream.merge(
            Stream::<Envelope<CommentData>>::topic(t(Topic::Comment)).flat_map(move |e| {
                let follow_up = FollowUp::of_comment(&e);
                Indexed::all(d.comment(e), follow_up)
            }),
        )
    };
    let stream = {
        let d = docs.clone();
        stream.merge(
            Stream::<Envelope<UserData>>::topic(t(Topic::User))
                .flat_map(move |e| Indexed::all(d.user(e), None)),
        )
    };
    let stream = {
        let d = docs.clone();
        stream.merge(
            Stream::<Envelope<OrganizationData>>::topic(t(Topic::Organization))
                .flat_map(move |e| Indexed::all(d.organization(e), None)),
        )
    };
    let stream = stream.merge(
        Stream::<Envelope<SubscriptionData>>::topic(t(Topic::Subscription))
            .flat_map(move |e| Indexed::all(docs.subscription(e), None)),
    );
    let search = SearchSink::new(
        BulkService::new(client),
        BulkLimits {
            max_docs: config.bulk_docs,
            max_bytes: config.bulk_bytes,
        },
    );
    let sink = IndexerSink::new(search, &config.index_prefix);
    Ok(stream.to(sink))
}

/// Sets up the indices and builds the pipeline; returns it with its metrics address.
pub async fn prepare(
    config: &IndexerConfig,
    shutdown: &CancellationToken,
) -> Result<(Pipeline<IndexerSink>, Running)> {
    let topology = topology(config, true).await?;
    let mut pipeline_config = PipelineConfig::new(PIPELINE, &config.kafka_brokers, &config.group);
    pipeline_config.topic_prefix = config.topic_prefix.clone();
    pipeline_config.retry = config.retry.clone();
    pipeline_config.topic_replication = config.topic_replication;
    pipeline_config.batch = BatchConfig {
        max_records: config.bulk_docs,
        ..BatchConfig::default()
    };
    let pipeline = Pipeline::new(
        pipeline_config,
        topology,
        Codec::new(&config.schema_registry_url),
    );
    let metrics = pipeline.metrics();
    let metrics_addr = metrics::serve(metrics.clone(), config.metrics_listen, shutdown.clone())
        .await
        .map_err(|e| Error::Setup(format!("metrics on {}: {e}", config.metrics_listen)))?;
    Ok((
        pipeline,
        Running {
            metrics,
            metrics_addr,
        },
    ))
}

/// Runs the indexer until `shutdown`, then drains, commits and returns.
pub async fn run(config: IndexerConfig, shutdown: CancellationToken) -> Result<()> {
    let (pipeline, running) = prepare(&config, &shutdown).await?;
    tracing::info!(metrics = %running.metrics_addr, "indexer metrics and health endpoint");
    Ok(pipeline.run(shutdown).await?)
}
