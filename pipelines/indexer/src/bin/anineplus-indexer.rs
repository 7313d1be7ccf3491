//! `anineplus-indexer`: the search indexer. Reads its config (flags or environment, see
//! `--help`), logs JSON lines, and runs `anineplus_indexer::run` until SIGINT or SIGTERM,
//! then drains, commits and exits.

use anineplus_indexer::{self as indexer, IndexerConfig};
use anineplus_telemetry::Output;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anineplus_telemetry::init_logging("info,rdkafka=warn", Output::Stdout)?;
    let config = IndexerConfig::parse();
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    indexer::run(config, shutdown).await?;
    Ok(())
}
