//! `anineplus-dlq`: the operators' dead-letter tool. Lists, counts, inspects, replays and
//! purges the records of a pipeline's `<pipeline>.dlq` topic. The work lives in
//! `anineplus_pipelines::dlq`; this binary parses flags and prints.

use std::collections::BTreeMap;
use std::io::Write;

use anineplus_pipelines::dlq::{self, DeadLetterRecord, Filter};
use anineplus_schemas::Codec;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Inspect and reprocess the dead letters of a pipeline.
///
/// Dead letters keep the original key and value bytes; their headers say where they came
/// from and why they failed (see docs/pipelines.md). Typical session:
///
///   anineplus-dlq count
///   anineplus-dlq list --class permanent
///   anineplus-dlq inspect --partition 0 --offset 12
///   anineplus-dlq replay --original-topic anime --dry-run
///   anineplus-dlq replay --original-topic anime
///   anineplus-dlq purge --yes
#[derive(Debug, Parser)]
#[command(name = "anineplus-dlq", verbatim_doc_comment)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    /// The schema registry, to decode values in `inspect`.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    registry: String,
    /// The pipeline whose dead letters to work on (its topic is `<prefix><pipeline>.dlq`).
    #[arg(long, default_value = "indexer", global = true)]
    pipeline: String,
    /// Topic prefix of the deployment (empty in production).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "", global = true)]
    topic_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Count dead letters per error class and original topic.
    Count(Select),
    /// One line per dead letter: partition/offset, key, class, attempts, origin, time, reason.
    List {
        #[command(flatten)]
        select: Select,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter: every header and the decoded value (or why it does not decode).
    Inspect {
        /// Its partition in the dead-letter topic.
        #[arg(long)]
        partition: i32,
        /// Its offset in the dead-letter topic.
        #[arg(long)]
        offset: i64,
    },
    /// Produce the selected dead letters to their original topic, to be processed again.
    /// One that fails again returns to the dead-letter topic; nothing is deleted.
    Replay {
        #[command(flatten)]
        select: Select,
        /// Show what would be replayed, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete every dead letter present now (Kafka deletes whole prefixes: no filters).
    Purge {
        /// Show how many would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters.
#[derive(Debug, Args)]
struct Select {
    /// `retryable` or `permanent`.
    #[arg(long)]
    class: Option<String>,
    /// Exact record key.
    #[arg(long)]
    key: Option<String>,
    /// Original topic, without the topic prefix (e.g. `anime`).
    #[arg(long)]
    original_topic: Option<String>,
    /// Failed at or after this time (ms since the epoch).
    #[arg(long)]
    since: Option<i64>,
    /// Failed before this time (ms since the epoch).
    #[arg(long)]
    until: Option<i64>,
}

impl Select {
    fn filter(&self, prefix: &str) -> Filter {
        Filter {
            class: self.class.clone(),
            key: self.key.clone(),
            original_topic: self.original_topic.as_ref().map(|t| format!("{prefix}{t}")),
            since_ms: self.since,
            until_ms: self.until,
            at: None,
        }
    }
}

fn progress(scanned: u64, total: u64) {
    eprint!("\rscanned {scanned}/{total}");
    let _ = std::io::stderr().flush();
    if scanned == total {
        eprintln!();
    }
}

async fn scan(cli: &Cli, topic: &str, filter: Filter) -> anyhow::Result<Vec<DeadLetterRecord>> {
    let (brokers, topic) = (cli.brokers.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || dlq::scan(&brokers, &topic, &filter, progress))
        .await?
        .with_context(|| "scanning the dead-letter topic")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let topic = format!("{}{}.dlq", cli.topic_prefix, cli.pipeline);
    match &cli.command {
        Command::Count(select) => {
            let letters = scan(&cli, &topic, select.filter(&cli.topic_prefix)).await?;
            let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
            for l in &letters {
                *counts
                    .entry((l.class().to_owned(), l.original_topic().to_owned()))
                    .or_default() += 1;
            }
            println!("{topic}: {} dead letter(s)", letters.len());
            for ((class, original), n) in counts {
                println!("  {class:<10} {original:<30} {n}");
            }
        }
        Command::List { select, limit } => {
            let letters = scan(&cli, &topic, select.filter(&cli.topic_prefix)).await?;
            for l in letters.iter().take(*limit) {
                println!("{}", l.summary());
            }
            if letters.len() > *limit {
                println!("... {} more (use --limit)", letters.len() - limit);
            }
        }
        Command::Inspect { partition, offset } => {
            let filter = Filter {
                at: Some((*partition, *offset)),
                ..Filter::default()
            };
            let letters = scan(&cli, &topic, filter).await?;
            let letter = letters
                .first()
                .with_context(|| format!("no dead letter at {topic}/{partition}/{offset}"))?;
            print!(
                "{}",
                letter
                    .inspect(&Codec::new(&cli.registry), &cli.topic_prefix)
                    .await
            );
        }
        Command::Replay { select, dry_run } => {
            let letters = scan(&cli, &topic, select.filter(&cli.topic_prefix)).await?;
            if *dry_run {
                for l in &letters {
                    println!("would replay to {}: {}", l.original_topic(), l.summary());
                }
                println!(
                    "dry run: {} dead letter(s) would be replayed",
                    letters.len()
                );
            } else {
                let sent = dlq::replay(&cli.brokers, &letters, |done, total| {
                    eprint!("\rreplayed {done}/{total}");
                    if done == total {
                        eprintln!();
                    }
                })
                .await?;
                println!("replayed {sent} dead letter(s) to their original topics");
            }
        }
        Command::Purge { dry_run, yes } => {
            let ends = dlq::end_offsets(&cli.brokers, &topic)?;
            let n: i64 = ends.iter().map(|(_, l, h)| h - l).sum();
            if *dry_run || !*yes {
                println!(
                    "{topic}: {n} dead letter(s) would be deleted{}",
                    if *dry_run {
                        ""
                    } else {
                        " (add --yes to delete)"
                    }
                );
            } else {
                let deleted = dlq::purge(&cli.brokers, &topic).await?;
                println!("{topic}: deleted {deleted} dead letter(s)");
            }
        }
    }
    Ok(())
}
