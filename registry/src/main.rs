//! `anineplus-registry`: the schema registry server. Parses its config (flags or `REGISTRY_*`
//! variables, see `--help`), logs JSON lines (shipped to the `logs` topic too unless
//! `--log-shipping false`), serves until SIGINT or SIGTERM, then drains.

use anineplus_args::{KafkaArgs, LogShippingArgs, RegistryArgs};
use anineplus_registry::Config;
use anineplus_telemetry::ship::ShipConfig;
use clap::Parser;

/// The registry's configuration and where its own log records go.
#[derive(Debug, Parser)]
#[command(
    name = "anineplus-registry",
    version,
    about = "The schema registry (Confluent REST API)."
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    /// Kafka, for the `logs` topic its log records are shipped to.
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The registry as its log shipping reaches it for the `logs` schema: itself, as a
    /// user allowed to read subjects (`make up` gives it the admin's URL).
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    logs: LogShippingArgs,
    /// Prefix of the `logs` topic (`<prefix>logs`).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Its own records reach the topic once it serves the `logs` schema (the first lookup
    // is retried every 5 s; records logged before that are counted as dropped).
    let shipping = cli.logs.log_shipping.then(|| ShipConfig {
        delivery_timeout: cli.logs.delivery_timeout(),
        ..ShipConfig::new(
            "registry",
            &cli.kafka.brokers,
            &cli.registry.registry_url,
            &cli.topic_prefix,
        )
    });
    let logging = anineplus_telemetry::init_service_logging_with(&cli.config.log_filter, shipping)?;
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    let ran = anineplus_registry::run(cli.config, shutdown).await;
    if let Err(e) = &ran {
        tracing::error!(error = %e, "registry stopped");
    }
    logging.finish().await;
    Ok(ran?)
}
