//! `anineplus-registry`: the schema registry server. Parses its config (flags or `REGISTRY_*`
//! variables, see `--help`), logs JSON lines, serves until SIGINT or SIGTERM, then drains.

use anineplus_registry::Config;
use anineplus_telemetry::Output;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    anineplus_telemetry::init_logging_with(&config.log_filter, Output::Stdout)?;
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    anineplus_registry::run(config, shutdown).await?;
    Ok(())
}
