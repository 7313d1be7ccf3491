//! `anineplus-api`: loads the configuration, starts JSON logging (shipped to the `logs`
//! topic too unless `--log-shipping false`) and runs the API until SIGINT or SIGTERM.

use anineplus_api::Config;
use anineplus_telemetry::ship::ShipConfig;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::parse().validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let shipping = config.logs.log_shipping.then(|| ShipConfig {
        delivery_timeout: config.logs.delivery_timeout(),
        ..ShipConfig::new(
            "api",
            &config.kafka.brokers,
            &config.registry.registry_url,
            &config.kafka_topic_prefix,
        )
    });
    let logging = anineplus_telemetry::init_service_logging("info", shipping)?;
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    let ran = anineplus_api::run(config, shutdown).await;
    if let Err(e) = &ran {
        tracing::error!(error = %e, "api stopped");
    }
    logging.finish().await;
    Ok(ran?)
}
