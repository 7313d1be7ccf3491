//! `anineplus-api`: loads the configuration, starts JSON logging and runs the API until
//! SIGINT or SIGTERM.

use anineplus_api::Config;
use anineplus_telemetry::Output;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anineplus_telemetry::init_logging("info", Output::Stdout)?;
    let config = match Config::parse().validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    anineplus_api::run(config, shutdown).await?;
    Ok(())
}
