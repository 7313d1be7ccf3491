//! `anineplus-analytics`: the analytics pipeline (see the crate docs and `--help`).

use std::net::SocketAddr;
use std::time::Duration;

use anineplus_analytics::{Analytics, AnalyticsConfig};
use anineplus_args::{KafkaArgs, LogShippingArgs, RegistryArgs, SearchArgs};
use anineplus_schemas::indices::DEFAULT_PREFIX;
use anineplus_streams::dead_letter::parse_duration;
use anineplus_streams::state::Guarantee;
use anineplus_telemetry::ship::ShipConfig;
use clap::Parser;

/// Counts over the platform's events, kept as state in Kafka: comments per anime per hour
/// (one-hour windows of the comments' creation time, grace 5 minutes; hidden and deleted
/// comments leave their window's count) and active subscriptions per plan. Results go to
/// the `anime-stats` topic (Avro) and the `<prefix>-anime-stats` index, which the API's
/// `trendingAnime` and `subscriptionCounts` read. Runs until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "anineplus-analytics", version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    logs: LogShippingArgs,
    /// Prefix of the stats index: `<prefix>-anime-stats`.
    #[arg(long, env = "INDEX_PREFIX", default_value = DEFAULT_PREFIX)]
    index_prefix: String,
    /// Prefix of every topic read or written (empty in production; tests use a unique one).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Prefix of the consumer groups: `<prefix><step>` (e.g. `anineplus-analytics-comments`).
    #[arg(long, env = "ANALYTICS_GROUP_PREFIX", default_value = "anineplus-")]
    group_prefix: String,
    /// Replication factor of the topics it creates (-1: the broker's default).
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    topic_replication: i32,
    /// `exactly_once`: each step commits its outputs, its state (changelog) and its input
    /// offsets in one Kafka transaction; `at_least_once`: a crash may count the records of
    /// one commit interval twice.
    #[arg(long, env = "ANALYTICS_GUARANTEE", default_value = "exactly_once")]
    guarantee: Guarantee,
    /// How often each step commits (e.g. `100ms`, `1s`): the latency of a count and the
    /// most work a crash redoes.
    #[arg(long, env = "ANALYTICS_COMMIT_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    commit_interval: Duration,
    /// Most records a step's commit holds, whatever the interval: a step catching up on a
    /// backlog commits every this many records (at least once: the most a crash applies
    /// twice per step).
    #[arg(long, env = "ANALYTICS_COMMIT_RECORDS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    commit_records: u32,
    /// This instance's id: unique among running instances and stable across restarts
    /// (exactly once: a restarted instance with the same id fences the one it replaces).
    #[arg(long, env = "ANALYTICS_INSTANCE", default_value = "0")]
    instance: String,
    /// Where `/metrics` and `/health` listen.
    #[arg(
        long,
        env = "ANALYTICS_METRICS_LISTEN",
        default_value = "127.0.0.1:9468"
    )]
    metrics_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shipping = cli.logs.log_shipping.then(|| ShipConfig {
        delivery_timeout: cli.logs.delivery_timeout(),
        ..ShipConfig::new(
            "analytics",
            &cli.kafka.brokers,
            &cli.registry.registry_url,
            &cli.topic_prefix,
        )
    });
    let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", shipping)?;
    let config = AnalyticsConfig {
        kafka_brokers: cli.kafka.brokers,
        schema_registry_url: cli.registry.registry_url,
        elasticsearch_url: cli.search.search_url,
        index_prefix: cli.index_prefix,
        topic_prefix: cli.topic_prefix,
        group_prefix: cli.group_prefix,
        topic_replication: cli.topic_replication,
        guarantee: cli.guarantee,
        commit_interval: cli.commit_interval,
        commit_records: cli.commit_records as usize,
        instance: cli.instance,
        metrics_listen: cli.metrics_listen,
    };
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    let ran = match Analytics::prepare(config).await {
        Ok(analytics) => analytics.run(shutdown).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &ran {
        tracing::error!(error = %e, "analytics pipeline stopped");
    }
    logging.finish().await;
    Ok(ran?)
}
