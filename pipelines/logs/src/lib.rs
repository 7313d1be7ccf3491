//! The log pipeline (the Logger service): every service's records of the `logs` topic into
//! log storage. Two pipelines on the `anineplus-streams` runtime, each with its own
//! consumer group, retry and dead-letter topics, so that a full archive disk pauses the
//! archive and never the search side (and the other way round); binary `anineplus-logs`.
//!
//! Layout:
//! - [`documents`]: a record → its day (its own timestamp, UTC), its daily index
//!   `<prefix>-<service>-YYYY.MM.DD`, its id (`<topic>:<partition>:<offset>`, the original
//!   coordinates of a retried record) and its document;
//! - [`index`]: the index template and [`index::IndexSink`] (pipeline `log-index`);
//! - [`archive`]: the gzip NDJSON archive and [`archive::ArchiveSink`] (pipeline
//!   `log-archive`), one file per batch, service, day and partition;
//! - [`retention`]: what is old enough to delete, and deleting it (scheduled in both
//!   pipelines, and `anineplus-logs retention [--dry-run]`);
//! - [`alerts`]: error-rate alerting (pipeline `log-alerts`, a third group): the sliding
//!   windows per service and kind, the `alerts` topic, the webhook;
//! - here: the configurations, the two topologies and their runs.
//!
//! Finding records again is `anineplus_connectors::log_search` (shared with the API).

pub mod alerts;
pub mod archive;
pub mod documents;
pub mod index;
pub mod retention;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::search;
use anineplus_connectors::search_sink::{BulkLimits, BulkService, SearchSink};
use anineplus_schemas::events::LogRecord;
use anineplus_schemas::{Codec, Topic};
use anineplus_streams::dead_letter::RetryPolicy;
use anineplus_streams::metrics::{self, Metrics};
use anineplus_streams::sink::Sink;
use anineplus_streams::{BatchConfig, Pipeline, PipelineConfig, Stream, Topology};
use elasticsearch::Elasticsearch;
use tokio_util::sync::CancellationToken;

use alerts::{AlertRules, AlertSink, Notifier};
use archive::{Archive, ArchiveSink};
use index::IndexSink;

/// The search side's pipeline: retry topics `log-index.retry.<n>`, dead letters `log-index.dlq`.
pub const INDEX_PIPELINE: &str = "log-index";
/// The archive's pipeline: `log-archive.retry.<n>`, `log-archive.dlq`.
pub const ARCHIVE_PIPELINE: &str = "log-archive";
/// The alerting pipeline: `log-alerts.retry.<n>`, `log-alerts.dlq`.
pub const ALERTS_PIPELINE: &str = "log-alerts";

/// What both pipelines share.
#[derive(Debug, Clone)]
pub struct Common {
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The schema registry URL.
    pub schema_registry_url: String,
    /// The consumer group (retry lanes use `<group>.retry.<n>`).
    pub group: String,
    /// Prefix of every topic read or written (empty in production; tests use a unique one).
    pub topic_prefix: String,
    /// Where `/metrics` and `/health` listen.
    pub metrics_listen: SocketAddr,
    /// Replication factor of the topics it creates (-1: the broker's default).
    pub topic_replication: i32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Days of records kept (0: today only); `None` keeps everything.
    pub retention_days: Option<u32>,
}

/// The search side.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Shared settings.
    pub common: Common,
    /// The Elasticsearch/OpenSearch URL.
    pub elasticsearch_url: String,
    /// Prefix of the daily indices: `<prefix>-<service>-YYYY.MM.DD`.
    pub index_prefix: String,
    /// Most documents per bulk request (and per batch).
    pub bulk_docs: usize,
    /// Most bytes per bulk request.
    pub bulk_bytes: usize,
}

/// The archive side.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Shared settings.
    pub common: Common,
    /// The archive's root folder.
    pub dir: PathBuf,
    /// A file closes at this many records …
    pub max_records: usize,
    /// … or this many bytes of records (before compression) …
    pub max_bytes: usize,
    /// … or this long after its first record.
    pub interval: Duration,
}

/// The alerting side.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Shared settings (its retention is unused).
    pub common: Common,
    /// When to alert.
    pub rules: AlertRules,
    /// Where each alert event is also POSTed as JSON, if anywhere.
    pub webhook: Option<String>,
}

/// Why the log pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime failed (Kafka, topics, ...).
    #[error(transparent)]
    Streams(#[from] anineplus_streams::Error),
    /// A connector could not be built.
    #[error(transparent)]
    Connector(#[from] anineplus_connectors::Error),
    /// The index template could not be put.
    #[error("putting the log index template: {0}")]
    Template(#[from] search::CallError),
    /// The metrics endpoint could not listen.
    #[error("metrics on {listen}: {source}")]
    Metrics {
        /// Where it was to listen.
        listen: SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
}

/// Result of the log pipeline.
pub type Result<T> = std::result::Result<T, Error>;

/// The search client of `url` (30 s per request).
pub fn search_client(url: &str) -> Result<Elasticsearch> {
    Ok(search::client(url, Duration::from_secs(30))?)
}

/// The `logs` topic under `prefix`.
fn logs_topic(prefix: &str) -> String {
    format!("{prefix}{}", Topic::Logs.name())
}

/// The search side's topology: `logs → documents → IndexSink`, no consumer started.
pub fn index_topology(config: &IndexConfig, client: Elasticsearch) -> Topology<IndexSink> {
    let prefix = config.index_prefix.clone();
    let search = SearchSink::new(
        BulkService::new(client),
        BulkLimits {
            max_docs: config.bulk_docs,
            max_bytes: config.bulk_bytes,
        },
    );
    Stream::<LogRecord>::topic_located(logs_topic(&config.common.topic_prefix))
        .map(move |record| documents::index_entry(&prefix, &record))
        .to(IndexSink::new(search))
}

/// The archive's topology: `logs → lines → ArchiveSink`, no consumer started.
pub fn archive_topology(config: &ArchiveConfig) -> Topology<ArchiveSink> {
    Stream::<LogRecord>::topic_located(logs_topic(&config.common.topic_prefix))
        .map(|record| archive::archive_entry(&record))
        .to(ArchiveSink::new(Archive::new(&config.dir)))
}

/// The alerting topology: `logs → ERROR records → AlertSink` (which produces to
/// `<prefix>alerts`), no consumer started; the sink's tasks stop with `stop`.
pub fn alerts_topology(
    config: &AlertsConfig,
    stop: CancellationToken,
) -> Result<Topology<AlertSink>> {
    let prefix = &config.common.topic_prefix;
    let notifier = Notifier::new(
        &config.common.kafka_brokers,
        format!("{prefix}{}", Topic::Alerts.name()),
        Codec::new(&config.common.schema_registry_url),
        config.webhook.clone(),
    )?;
    Ok(Stream::<LogRecord>::topic_located(logs_topic(prefix))
        .filter(|r| r.value.level == anineplus_schemas::events::LogLevel::Error)
        .to(AlertSink::new(config.rules.clone(), notifier, stop)))
}

/// A pipeline and its metrics endpoint.
async fn start<S: Sink>(
    name: &str,
    common: &Common,
    batch: BatchConfig,
    topology: Topology<S>,
    shutdown: &CancellationToken,
) -> Result<(Pipeline<S>, Running)> {
    let mut config = PipelineConfig::new(name, &common.kafka_brokers, &common.group);
    config.topic_prefix = common.topic_prefix.clone();
    config.retry = common.retry.clone();
    config.topic_replication = common.topic_replication;
    config.batch = batch;
    // Its records are log lines: a line per record would log the logs.
    config.trace_records = false;
    let pipeline = Pipeline::new(config, topology, Codec::new(&common.schema_registry_url));
    let metrics = pipeline.metrics();
    let addr = metrics::serve(metrics.clone(), common.metrics_listen, shutdown.clone())
        .await
        .map_err(|source| Error::Metrics {
            listen: common.metrics_listen,
            source,
        })?;
    Ok((
        pipeline,
        Running {
            metrics,
            metrics_addr: addr,
        },
    ))
}

/// A running pipeline's handles.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Where `/metrics` and `/health` listen.
    pub metrics_addr: SocketAddr,
}

/// Puts the index template and builds the search side; returns it with its handles.
pub async fn prepare_index(
    config: &IndexConfig,
    shutdown: &CancellationToken,
) -> Result<(Pipeline<IndexSink>, Running)> {
    let client = search_client(&config.elasticsearch_url)?;
    index::put_template(&client, &config.index_prefix).await?;
    if let Some(days) = config.common.retention_days {
        tokio::spawn(sweep_indices(
            client.clone(),
            config.index_prefix.clone(),
            days,
            shutdown.clone(),
        ));
    }
    let batch = BatchConfig {
        max_records: config.bulk_docs,
        max_bytes: config.bulk_bytes,
        ..BatchConfig::default()
    };
    let topology = index_topology(config, client);
    start(INDEX_PIPELINE, &config.common, batch, topology, shutdown).await
}

/// Builds the archive side; returns it with its handles.
pub async fn prepare_archive(
    config: &ArchiveConfig,
    shutdown: &CancellationToken,
) -> Result<(Pipeline<ArchiveSink>, Running)> {
    if let Some(days) = config.common.retention_days {
        tokio::spawn(sweep_archive(
            Archive::new(&config.dir),
            days,
            shutdown.clone(),
        ));
    }
    let batch = BatchConfig {
        max_records: config.max_records,
        max_bytes: config.max_bytes,
        linger: config.interval,
        cut_when_idle: false,
        ..BatchConfig::default()
    };
    start(
        ARCHIVE_PIPELINE,
        &config.common,
        batch,
        archive_topology(config),
        shutdown,
    )
    .await
}

/// Builds the alerting side; returns it with its handles.
pub async fn prepare_alerts(
    config: &AlertsConfig,
    shutdown: &CancellationToken,
) -> Result<(Pipeline<AlertSink>, Running)> {
    let topology = alerts_topology(config, shutdown.clone())?;
    start(
        ALERTS_PIPELINE,
        &config.common,
        BatchConfig::default(),
        topology,
        shutdown,
    )
    .await
}

/// Runs the alerting side until `shutdown`.
pub async fn run_alerts(config: AlertsConfig, shutdown: CancellationToken) -> Result<()> {
    let (pipeline, running) = prepare_alerts(&config, &shutdown).await?;
    tracing::info!(
        metrics = %running.metrics_addr, threshold = config.rules.threshold,
        window_s = config.rules.window.as_secs(), dedupe_s = config.rules.dedupe.as_secs(),
        webhook = config.webhook.is_some(), "log alerts pipeline started"
    );
    Ok(pipeline.run(shutdown).await?)
}

/// Runs the search side until `shutdown`, then drains, commits and returns.
pub async fn run_index(config: IndexConfig, shutdown: CancellationToken) -> Result<()> {
    let (pipeline, running) = prepare_index(&config, &shutdown).await?;
    tracing::info!(metrics = %running.metrics_addr, prefix = %config.index_prefix, "log index pipeline started");
    Ok(pipeline.run(shutdown).await?)
}

/// Runs the archive until `shutdown`, then writes what it holds, commits and returns.
pub async fn run_archive(config: ArchiveConfig, shutdown: CancellationToken) -> Result<()> {
    let (pipeline, running) = prepare_archive(&config, &shutdown).await?;
    tracing::info!(metrics = %running.metrics_addr, dir = %config.dir.display(), "log archive pipeline started");
    Ok(pipeline.run(shutdown).await?)
}

/// How often retention runs in a pipeline (and once at its start).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Runs `sweep` once now and then every [`SWEEP_EVERY`] until `stop`: each sweep lists
/// what is past `days` and deletes it, logging each deletion (a failure is logged and
/// tried again next time).
async fn every_hour<F, Fut>(what: &'static str, days: u32, stop: CancellationToken, mut sweep: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Vec<Expired>, String>>,
{
    loop {
        match sweep().await {
            Ok(expired) => {
                for e in expired {
                    match e.1 {
                        Ok(()) => {
                            tracing::info!(deleted = %e.0, retention_days = days, "retention")
                        }
                        Err(reason) => {
                            tracing::warn!(expired = %e.0, %reason, "retention could not delete")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "retention could not list {what}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// What one sweep found and what deleting each gave.
type Expired = (retention::Expired, std::result::Result<(), String>);

async fn delete_all(
    client: Option<&Elasticsearch>,
    found: Vec<retention::Expired>,
) -> Vec<Expired> {
    let mut out = Vec::with_capacity(found.len());
    for e in found {
        let deleted = retention::delete(client, &e).await;
        out.push((e, deleted));
    }
    out
}

async fn sweep_indices(client: Elasticsearch, prefix: String, days: u32, stop: CancellationToken) {
    every_hour("the log indices", days, stop, || async {
        let found = retention::expired_indices(&client, &prefix, days, today())
            .await
            .map_err(|e| e.to_string())?;
        Ok(delete_all(Some(&client), found).await)
    })
    .await;
}

async fn sweep_archive(archive: Archive, days: u32, stop: CancellationToken) {
    every_hour("the archive", days, stop, || async {
        let found = retention::expired_folders(&archive, days, today())
            .map_err(|e| format!("{}: {e}", archive.root().display()))?;
        Ok(delete_all(None, found).await)
    })
    .await;
}
