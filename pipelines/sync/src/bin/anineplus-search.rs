//! `anineplus-search`: verifies the search indices against PostgreSQL, repairs drift and
//! rebuilds an index with no search downtime. The work lives in
//! `anineplus_sync`; this binary parses flags and prints.

use std::process::ExitCode;

use anineplus_indexer::indices::Index;
use anineplus_sync::{self as sync, Drift, SearchSync};
use clap::{Parser, Subcommand, ValueEnum};

/// Keep the search indices in step with PostgreSQL, the source of truth.
///
/// Compares ids, versions and deleted flags of every row with the index documents
/// (`aggregateVersion`, `deleted`), repairs drift with the indexer's own document mapping
/// (versioned writes: a concurrent indexer never loses), and rebuilds an index into its
/// next generation `<alias>-v<N+1>` before switching the alias atomically. Progress goes to
/// stderr, results to stdout. Supported: `anime`, `episodes`, `comments` (moderation
/// included), `users`, `organizations` (with their `members` from PostgreSQL).
///
///   anineplus-search verify                       # exit 0 in sync, 1 on drift
///   anineplus-search repair --index anime --dry-run
///   anineplus-search repair
///   anineplus-search reindex --index anime --batch 1000 [--keep-old]
///   anineplus-search reindex --index organizations
#[derive(Debug, Parser)]
#[command(name = "anineplus-search", verbatim_doc_comment)]
struct Cli {
    /// PostgreSQL holding the domain tables.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://anineplus:anineplus@127.0.0.1:5432/anineplus",
        global = true
    )]
    database_url: String,
    #[command(flatten)]
    search: anineplus_args::SearchArgs,
    /// Prefix of the index aliases: `<prefix>-anime`, ...
    #[arg(long, env = "INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_PREFIX, global = true)]
    index_prefix: String,
    /// Rows per PostgreSQL page, documents per search page and per bulk request.
    #[arg(long, default_value_t = 1000, global = true)]
    batch: usize,
    /// No progress on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Anime,
    Episodes,
    Comments,
    Users,
    Organizations,
    /// Every supported index.
    All,
}

impl Which {
    fn indices(self) -> Vec<Index> {
        match self {
            Which::Anime => vec![Index::Anime],
            Which::Episodes => vec![Index::Episodes],
            Which::Comments => vec![Index::Comments],
            Which::Users => vec![Index::Users],
            Which::Organizations => vec![Index::Organizations],
            Which::All => sync::SUPPORTED.to_vec(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report drift between PostgreSQL and each index; exit 1 when there is any.
    Verify {
        /// The index to check.
        #[arg(long, value_enum, default_value_t = Which::All)]
        index: Which,
    },
    /// Verify, then write the drifted documents from PostgreSQL; exit 1 if any remains.
    Repair {
        /// The index to repair.
        #[arg(long, value_enum, default_value_t = Which::All)]
        index: Which,
        /// Only report what would be written.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rebuild an index from PostgreSQL into `<alias>-v<N+1>` and switch the alias to it.
    Reindex {
        /// The index to rebuild.
        #[arg(long, value_enum)]
        index: Which,
        /// Keep the previous generation instead of deleting it.
        #[arg(long)]
        keep_old: bool,
    },
}

fn print(drift: &Drift) {
    println!(
        "{}: rows {} documents {} missing {} stale {} orphaned {} ahead {} denormalised {}",
        drift.target,
        drift.rows,
        drift.documents,
        drift.missing.len(),
        drift.stale.len(),
        drift.orphaned.len(),
        drift.ahead.len(),
        drift.denormalised.len()
    );
    for (kind, ids) in [
        ("missing", &drift.missing),
        ("stale", &drift.stale),
        ("orphaned", &drift.orphaned),
        ("ahead", &drift.ahead),
        ("denormalised", &drift.denormalised),
    ] {
        for id in ids {
            println!("  {kind} {id}");
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let mut s =
        SearchSync::connect(&cli.database_url, &cli.search.search_url, &cli.index_prefix).await?;
    s.batch = cli.batch.max(1);
    s.progress = !cli.quiet;
    let mut in_sync = true;
    match cli.command {
        Command::Verify { index } => {
            for index in index.indices() {
                let drift = s.verify(index).await?;
                print(&drift);
                in_sync &= drift.in_sync();
            }
        }
        Command::Repair { index, dry_run } => {
            for index in index.indices() {
                let drift = s.verify(index).await?;
                print(&drift);
                if drift.in_sync() || dry_run {
                    in_sync &= drift.in_sync();
                    continue;
                }
                let repaired = s.repair(index, &drift).await?;
                println!(
                    "{}: written {} failed {}",
                    drift.target,
                    repaired.written,
                    repaired.failed.len()
                );
                for f in &repaired.failed {
                    println!("  failed {f}");
                }
                let after = s.verify(index).await?;
                print(&after);
                in_sync &= after.in_sync();
            }
        }
        Command::Reindex { index, keep_old } => {
            for index in index.indices() {
                let new = s.reindex(index, keep_old).await?;
                println!("{}: now {new}", index.alias(&cli.index_prefix));
            }
        }
    }
    Ok(in_sync)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Log lines (the runtime's warnings, say) go to stderr; stdout is the command's result.
    if let Err(e) = anineplus_telemetry::init_logging("warn", anineplus_telemetry::Output::Stderr) {
        eprintln!("error: {e}");
    }
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
