//! `anineplus-indexer`: the search indexer. Reads its config (flags or environment, see
//! `--help`), starts tracing, and runs `anineplus_indexer::run` until Ctrl-C or
//! SIGTERM, then drains, commits and exits.

use anineplus_indexer::{self as indexer, IndexerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let config = IndexerConfig::parse();
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down: draining and committing");
            shutdown.cancel();
        });
    }
    indexer::run(config, shutdown).await?;
    Ok(())
}
