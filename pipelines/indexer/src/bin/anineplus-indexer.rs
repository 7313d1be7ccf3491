//! `anineplus-indexer`: the search indexer. Reads its config (flags or environment, see
//! `--help`), logs JSON lines, and runs `anineplus_indexer::run` until SIGINT or SIGTERM,
//! then drains, commits and exits.

use std::net::SocketAddr;

use anineplus_args::{KafkaArgs, LogShippingArgs, RegistryArgs, RetryArgs, SearchArgs};
use anineplus_indexer::{self as indexer, IndexerConfig};
use anineplus_telemetry::ship::ShipConfig;
use clap::Parser;

/// Documents are built on the transform tasks and freed on the writer's: mimalloc's
/// per-thread free lists take that cross-thread traffic far cheaper than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps the search indices in step with the aggregate topics.
#[derive(Debug, Parser)]
#[command(name = "anineplus-indexer", version)]
struct Args {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The consumer group (retry lanes use `<group>.retry.<n>`).
    #[arg(long, env = "INDEXER_GROUP", default_value = "anineplus-indexer")]
    group: String,
    /// Prefix of the index aliases: `<prefix>-anime`, ...
    #[arg(long, env = "INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_PREFIX)]
    index_prefix: String,
    /// Prefix of every topic read or written (empty in production; tests use a unique one).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Where `/metrics` and `/health` listen.
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    metrics_listen: SocketAddr,
    /// Most documents per bulk request.
    #[arg(long, env = "INDEXER_BULK_DOCS", default_value_t = 1000)]
    bulk_docs: usize,
    /// Most bytes per bulk request.
    #[arg(long, env = "INDEXER_BULK_BYTES", default_value_t = 5 * 1024 * 1024)]
    bulk_bytes: usize,
    /// Replication factor of the retry, dead-letter and missing source topics it creates
    /// (-1: the broker's `default.replication.factor`).
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    topic_replication: i32,
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    logs: LogShippingArgs,
}

impl Args {
    /// Where its log records are shipped, unless turned off.
    fn shipping(&self) -> Option<ShipConfig> {
        self.logs.log_shipping.then(|| ShipConfig {
            delivery_timeout: self.logs.delivery_timeout(),
            ..ShipConfig::new(
                "indexer",
                &self.kafka.brokers,
                &self.registry.registry_url,
                &self.topic_prefix,
            )
        })
    }

    fn config(self) -> IndexerConfig {
        IndexerConfig {
            kafka_brokers: self.kafka.brokers,
            elasticsearch_url: self.search.search_url,
            schema_registry_url: self.registry.registry_url,
            group: self.group,
            index_prefix: self.index_prefix,
            topic_prefix: self.topic_prefix,
            metrics_listen: self.metrics_listen,
            bulk_docs: self.bulk_docs,
            bulk_bytes: self.bulk_bytes,
            topic_replication: self.topic_replication,
            retry: self.retry.policy(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", args.shipping())?;
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    let ran = indexer::run(args.config(), shutdown).await;
    if let Err(e) = &ran {
        tracing::error!(error = %e, "indexer stopped");
    }
    logging.finish().await;
    Ok(ran?)
}
