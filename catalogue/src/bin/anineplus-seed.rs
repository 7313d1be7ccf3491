//! `anineplus-seed`: loads the bangumi-data catalogue into a running API. The work lives in
//! `anineplus_catalogue`; this binary parses flags, reads the file and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anineplus_catalogue::{ATTRIBUTION, bangumi, seed};
use anyhow::Context;
use clap::Parser;

/// Load the bangumi-data anime catalogue through the API's `createAnime` (as an admin).
///
/// Anime already in the API (same title and release year) are left alone, so a second run
/// creates nothing. `make seed` downloads the pinned package and runs this.
///
///   anineplus-seed --data .stack/cache/bangumi-data/0.3.208/package/dist/data.json
///   anineplus-seed --data data.json --limit 50 --api-url http://127.0.0.1:3100
#[derive(Debug, Parser)]
#[command(name = "anineplus-seed", verbatim_doc_comment)]
struct Cli {
    /// bangumi-data's `dist/data.json`.
    #[arg(long, env = "SEED_DATA")]
    data: PathBuf,
    /// The API's base URL.
    #[arg(long, env = "SEED_API_URL", default_value = "http://127.0.0.1:3000")]
    api_url: String,
    /// An admin's email: logged in, or signed up when new (the API's `ADMIN_EMAILS`).
    #[arg(
        long,
        env = "SEED_ADMIN_EMAIL",
        default_value = "admin@anineplus.local"
    )]
    admin_email: String,
    /// Its password.
    #[arg(
        long,
        env = "SEED_ADMIN_PASSWORD",
        default_value = "correct horse battery"
    )]
    admin_password: String,
    /// Only the first N items of the catalogue.
    #[arg(long, env = "SEED_LIMIT")]
    limit: Option<usize>,
    /// HTTP requests in flight.
    #[arg(long, env = "SEED_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// `createAnime` fields per document (at most the API's `API_MAX_ALIASES`).
    #[arg(long, default_value_t = 15)]
    per_document: usize,
    /// Documents per request (at most the API's `API_MAX_OPERATIONS`).
    #[arg(long, default_value_t = 5)]
    per_request: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("seed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    println!("{ATTRIBUTION}");
    let bytes =
        std::fs::read(&cli.data).with_context(|| format!("reading {}", cli.data.display()))?;
    let catalogue =
        bangumi::parse(&bytes).with_context(|| format!("parsing {}", cli.data.display()))?;
    let settings = seed::Settings {
        limit: cli.limit,
        concurrency: cli.concurrency,
        per_document: cli.per_document,
        per_request: cli.per_request,
        ..seed::Settings::new(&cli.api_url, &cli.admin_email, &cli.admin_password)
    };
    let report = seed::run(&settings, &catalogue, chrono::Utc::now(), &mut |line| {
        println!("{line}")
    })
    .await?;
    for skipped in &report.skipped {
        println!("seed: skipped: {skipped}");
    }
    for (title, message) in &report.refused {
        println!("seed: refused {title:?}: {message}");
    }
    println!(
        "seed: done in {:.1} s: {} created, {} already there, {} skipped, {} refused ({} requests)",
        report.elapsed.as_secs_f64(),
        report.created,
        report.present,
        report.skipped.len(),
        report.refused.len(),
        report.requests,
    );
    Ok(if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
