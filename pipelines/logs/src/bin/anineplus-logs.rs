//! `anineplus-logs`: the log pipeline's two services (`index`, `archive`) and the
//! operators' commands on log storage (`trace`, `retention`). See `--help` of each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anineplus_args::{KafkaArgs, LogShippingArgs, RegistryArgs, RetryArgs, SearchArgs};
use anineplus_connectors::log_search::{self, LogHit, LogQuery};
use anineplus_logs::alerts::AlertRules;
use anineplus_logs::archive::Archive;
use anineplus_logs::retention::{self, Expired};
use anineplus_logs::{self as logs, AlertsConfig, ArchiveConfig, Common, IndexConfig};
use anineplus_schemas::indices::DEFAULT_LOG_PREFIX;
use anineplus_streams::dead_letter::parse_duration;
use anineplus_telemetry::ship::ShipConfig;
use clap::{Parser, Subcommand};

// The system allocator, not the indexer's mimalloc: this binary waits on the engine, and
// in `make bench` mimalloc's retained pages doubled its peak RSS (186 MiB against 112 MiB
// with glibc, 100,000 records, 5,000-document bulks) for no throughput.

/// Every service's logs, from the `logs` topic into daily search indices and a gzip
/// archive; and the commands to find them again and to apply retention.
#[derive(Debug, Parser)]
#[command(name = "anineplus-logs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The search side (pipeline `log-index`): `logs` → `<prefix>-<service>-YYYY.MM.DD`,
    /// with retention of old indices every hour. Runs until SIGINT or SIGTERM.
    Index(IndexArgs),
    /// The archive (pipeline `log-archive`, its own consumer group): `logs` → gzip NDJSON
    /// files `<dir>/<service>/<YYYY-MM-DD>/p<partition>-<first>-<last>.ndjson.gz`, with
    /// retention of old folders every hour. Runs until SIGINT or SIGTERM.
    Archive(ArchiveArgs),
    /// Error alerting (pipeline `log-alerts`, its own consumer group): when a service's
    /// ERROR records of one kind pass `--threshold` within `--window`, one alert event to
    /// the `alerts` topic (and `--webhook`), again at most once per `--dedupe` while it
    /// lasts, and a resolved event when it falls back. Runs until SIGINT or SIGTERM.
    Alerts(AlertsArgs),
    /// Prints one request's records from every service in time order (or, without a
    /// correlation id, the latest records of a service and level); `--follow` keeps
    /// printing new ones.
    Trace(TraceArgs),
    /// Deletes the daily indices and archive folders past their retention now; with
    /// `--dry-run`, lists them and deletes nothing.
    Retention(RetentionArgs),
}

/// Shared by both pipelines.
#[derive(Debug, clap::Args)]
struct PipelineArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Prefix of every topic read or written (empty in production; tests use a unique one).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Replication factor of the retry, dead-letter and missing source topics it creates
    /// (-1: the broker's `default.replication.factor`).
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    topic_replication: i32,
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    logs: LogShippingArgs,
}

impl PipelineArgs {
    fn common(&self, group: String, metrics_listen: SocketAddr, retention_days: u32) -> Common {
        Common {
            kafka_brokers: self.kafka.brokers.clone(),
            schema_registry_url: self.registry.registry_url.clone(),
            group,
            topic_prefix: self.topic_prefix.clone(),
            metrics_listen,
            topic_replication: self.topic_replication,
            retry: self.retry.policy(),
            retention_days: (retention_days > 0).then_some(retention_days),
        }
    }

    /// Where this service's own records are shipped (to the topic it reads: it logs
    /// little, never per record), unless turned off.
    fn shipping(&self, service: &str) -> Option<ShipConfig> {
        self.logs.log_shipping.then(|| ShipConfig {
            delivery_timeout: self.logs.delivery_timeout(),
            ..ShipConfig::new(
                service,
                &self.kafka.brokers,
                &self.registry.registry_url,
                &self.topic_prefix,
            )
        })
    }
}

#[derive(Debug, clap::Args)]
struct IndexArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    search: SearchArgs,
    /// The consumer group (retry lanes use `<group>.retry.<n>`).
    #[arg(long, env = "LOG_INDEX_GROUP", default_value = "anineplus-log-index")]
    group: String,
    /// Prefix of the daily indices: `<prefix>-<service>-YYYY.MM.DD`.
    #[arg(long, env = "LOG_INDEX_PREFIX", default_value = DEFAULT_LOG_PREFIX)]
    index_prefix: String,
    /// Where `/metrics` and `/health` listen.
    #[arg(
        long,
        env = "LOG_INDEX_METRICS_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    metrics_listen: SocketAddr,
    /// Most documents per bulk request.
    #[arg(long, env = "LOG_BULK_DOCS", default_value_t = 5000)]
    bulk_docs: usize,
    /// Most bytes per bulk request.
    #[arg(long, env = "LOG_BULK_BYTES", default_value_t = 10 * 1024 * 1024)]
    bulk_bytes: usize,
    /// Days of indices kept besides today (0: keep every index).
    #[arg(long, env = "LOG_RETENTION_DAYS", default_value_t = 30)]
    retention_days: u32,
}

#[derive(Debug, clap::Args)]
struct ArchiveArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The consumer group (retry lanes use `<group>.retry.<n>`).
    #[arg(
        long,
        env = "LOG_ARCHIVE_GROUP",
        default_value = "anineplus-log-archive"
    )]
    group: String,
    /// The archive's root folder.
    #[arg(long, env = "LOG_ARCHIVE_DIR", default_value = "logs-archive")]
    dir: PathBuf,
    /// Where `/metrics` and `/health` listen.
    #[arg(
        long,
        env = "LOG_ARCHIVE_METRICS_LISTEN",
        default_value = "127.0.0.1:9466"
    )]
    metrics_listen: SocketAddr,
    /// A file closes at this many records ...
    #[arg(long, env = "LOG_ARCHIVE_FILE_RECORDS", default_value_t = 100_000)]
    file_records: usize,
    /// ... or this many bytes of records (Avro, before compression) ...
    #[arg(long, env = "LOG_ARCHIVE_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    file_bytes: usize,
    /// ... or this long after its first record (offsets are stored when it closes).
    #[arg(long, env = "LOG_ARCHIVE_FILE_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    file_interval: Duration,
    /// Days of archive folders kept besides today (0: keep every folder).
    #[arg(long, env = "LOG_ARCHIVE_RETENTION_DAYS", default_value_t = 365)]
    retention_days: u32,
}

#[derive(Debug, clap::Args)]
struct AlertsArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The consumer group (one alerter per service: its records are on one partition).
    #[arg(long, env = "LOG_ALERTS_GROUP", default_value = "anineplus-log-alerts")]
    group: String,
    /// Where `/metrics` and `/health` listen.
    #[arg(
        long,
        env = "LOG_ALERTS_METRICS_LISTEN",
        default_value = "127.0.0.1:9467"
    )]
    metrics_listen: SocketAddr,
    /// Errors of one service and kind within the window above which it fires.
    #[arg(long, env = "ALERT_THRESHOLD", default_value_t = 10)]
    threshold: i64,
    /// The sliding window.
    #[arg(long, env = "ALERT_WINDOW", default_value = "1m", value_parser = parse_duration)]
    window: Duration,
    /// While firing, at most one more alert per this long.
    #[arg(long, env = "ALERT_DEDUPE", default_value = "10m", value_parser = parse_duration)]
    dedupe: Duration,
    /// Also POST every alert event as JSON to this URL.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    webhook: Option<String>,
}

#[derive(Debug, clap::Args)]
struct TraceArgs {
    /// The request's correlation id (the API's `x-correlation-id`); without it, the
    /// latest records of `--service` and `--level`.
    correlation_id: Option<String>,
    #[command(flatten)]
    search: SearchArgs,
    /// Prefix of the daily indices.
    #[arg(long, env = "LOG_INDEX_PREFIX", default_value = DEFAULT_LOG_PREFIX)]
    index_prefix: String,
    /// Only this service's records.
    #[arg(long)]
    service: Option<String>,
    /// Only records at this level or above (trace, debug, info, warn, error).
    #[arg(long)]
    level: Option<String>,
    /// Only records of the last DURATION (e.g. 15m, 2h); with a correlation id the default
    /// is every record of it, without one the last 15 minutes.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    since: Option<Duration>,
    /// At most this many records (before `--follow` goes on).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Keep printing new records as they are indexed, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// One JSON object per record instead of text lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RetentionArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Prefix of the daily indices.
    #[arg(long, env = "LOG_INDEX_PREFIX", default_value = DEFAULT_LOG_PREFIX)]
    index_prefix: String,
    /// Days of indices kept besides today (0: leave the indices alone).
    #[arg(long, env = "LOG_RETENTION_DAYS", default_value_t = 30)]
    retention_days: u32,
    /// The archive's root folder (not given: leave the archive alone).
    #[arg(long, env = "LOG_ARCHIVE_DIR")]
    dir: Option<PathBuf>,
    /// Days of archive folders kept besides today (0: leave the archive alone).
    #[arg(long, env = "LOG_ARCHIVE_RETENTION_DAYS", default_value_t = 365)]
    archive_retention_days: u32,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Index(args) => {
            let shipping = args.pipeline.shipping("log-index");
            let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", shipping)?;
            let config = IndexConfig {
                common: args
                    .pipeline
                    .common(args.group, args.metrics_listen, args.retention_days),
                elasticsearch_url: args.search.search_url,
                index_prefix: args.index_prefix,
                bulk_docs: args.bulk_docs,
                bulk_bytes: args.bulk_bytes,
            };
            let ran = logs::run_index(config, anineplus_telemetry::shutdown_on_signal()).await;
            if let Err(e) = &ran {
                tracing::error!(error = %e, "log index pipeline stopped");
            }
            logging.finish().await;
            Ok(ran?)
        }
        Command::Archive(args) => {
            let shipping = args.pipeline.shipping("log-archive");
            let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", shipping)?;
            let config = ArchiveConfig {
                common: args
                    .pipeline
                    .common(args.group, args.metrics_listen, args.retention_days),
                dir: args.dir,
                max_records: args.file_records,
                max_bytes: args.file_bytes,
                interval: args.file_interval,
            };
            let ran = logs::run_archive(config, anineplus_telemetry::shutdown_on_signal()).await;
            if let Err(e) = &ran {
                tracing::error!(error = %e, "log archive pipeline stopped");
            }
            logging.finish().await;
            Ok(ran?)
        }
        Command::Alerts(args) => {
            let shipping = args.pipeline.shipping("log-alerts");
            let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", shipping)?;
            let config = AlertsConfig {
                common: args.pipeline.common(args.group, args.metrics_listen, 0),
                rules: AlertRules {
                    threshold: args.threshold,
                    window: args.window,
                    dedupe: args.dedupe,
                },
                webhook: args.webhook,
            };
            let ran = logs::run_alerts(config, anineplus_telemetry::shutdown_on_signal()).await;
            if let Err(e) = &ran {
                tracing::error!(error = %e, "log alerts pipeline stopped");
            }
            logging.finish().await;
            Ok(ran?)
        }
        Command::Trace(args) => {
            cli_logging();
            trace(args).await
        }
        Command::Retention(args) => {
            cli_logging();
            retention_now(args).await
        }
    }
}

/// The commands log to stderr only: stdout is their result.
fn cli_logging() {
    if let Err(e) = anineplus_telemetry::init_logging("warn", anineplus_telemetry::Output::Stderr) {
        eprintln!("error: {e}");
    }
}

fn print(hit: &LogHit, json: bool, with_correlation: bool) {
    if json {
        let mut value = serde_json::json!({
            "@timestamp": hit.timestamp, "level": hit.level, "service": hit.service,
            "message": hit.message, "context": hit.context,
        });
        if let Some(id) = &hit.correlation_id {
            value["correlationId"] = id.clone().into();
        }
        if let Some(id) = &hit.trace_id {
            value["traceId"] = id.clone().into();
        }
        println!("{value}");
        return;
    }
    let mut line = format!(
        "{} {:<5} {:<12} {}",
        hit.timestamp, hit.level, hit.service, hit.message
    );
    if with_correlation && let Some(id) = &hit.correlation_id {
        line.push_str(&format!(" correlationId={id}"));
    }
    for (k, v) in &hit.context {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}

/// Sort key of a hit, as one string (for the follow loop's set of records seen).
fn key_of(hit: &LogHit) -> String {
    serde_json::Value::from(hit.sort.clone()).to_string()
}

async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let client = logs::search_client(&args.search.search_url)?;
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let since = match (args.since, &args.correlation_id) {
        (Some(d), _) => Some(now_ms() - d.as_millis() as i64),
        (None, Some(_)) => None,
        (None, None) => Some(now_ms() - 15 * 60 * 1000),
    };
    let mut query = LogQuery {
        correlation_id: args.correlation_id.clone(),
        service: args.service.clone(),
        min_level: args.level.clone(),
        since,
        after: None,
        size: args.limit.clamp(1, 10_000),
    };
    let with_correlation = args.correlation_id.is_none();
    let hits = log_search::find(&client, &args.index_prefix, &query).await?;
    for hit in &hits {
        print(hit, args.json, with_correlation);
    }
    if !args.follow {
        if hits.is_empty() {
            eprintln!(
                "no records found in {}-* (records reach the index a second or two after they are logged)",
                args.index_prefix
            );
        }
        return Ok(());
    }
    // Follow: ask again every second for the last 30 s (records are indexed a little
    // after they are logged, and not in time order across services), printing each
    // record once.
    const WINDOW_MS: i64 = 30_000;
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut newest = since.unwrap_or_else(now_ms);
    for hit in &hits {
        seen.insert(
            key_of(hit),
            hit.sort.first().and_then(|v| v.as_i64()).unwrap_or(0),
        );
        newest = newest.max(hit.sort.first().and_then(|v| v.as_i64()).unwrap_or(0));
    }
    let stop = anineplus_telemetry::shutdown_on_signal();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        query.since = Some(newest - WINDOW_MS);
        query.size = 10_000;
        let hits = match log_search::find(&client, &args.index_prefix, &query).await {
            Ok(hits) => hits,
            Err(e) => {
                eprintln!("warning: {e} (trying again)");
                continue;
            }
        };
        for hit in hits {
            let at = hit.sort.first().and_then(|v| v.as_i64()).unwrap_or(0);
            if seen.insert(key_of(&hit), at).is_none() {
                print(&hit, args.json, with_correlation);
                newest = newest.max(at);
            }
        }
        seen.retain(|_, at| *at >= newest - 2 * WINDOW_MS);
    }
}

async fn retention_now(args: RetentionArgs) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let client = logs::search_client(&args.search.search_url)?;
    let mut expired: Vec<Expired> = Vec::new();
    if args.retention_days > 0 {
        expired.extend(
            retention::expired_indices(&client, &args.index_prefix, args.retention_days, today)
                .await?,
        );
    }
    if let Some(dir) = &args.dir
        && args.archive_retention_days > 0
    {
        expired.extend(retention::expired_folders(
            &Archive::new(dir),
            args.archive_retention_days,
            today,
        )?);
    }
    if expired.is_empty() {
        eprintln!("nothing is past its retention");
        return Ok(());
    }
    let mut failed = 0;
    for e in &expired {
        if args.dry_run {
            println!("would delete {e}");
            continue;
        }
        match retention::delete(Some(&client), e).await {
            Ok(()) => println!("deleted {e}"),
            Err(reason) => {
                failed += 1;
                eprintln!("could not delete {e}: {reason}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} could not be deleted", expired.len());
    }
    Ok(())
}
