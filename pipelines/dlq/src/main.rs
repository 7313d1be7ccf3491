//! `anineplus-dlq`: the operators' dead-letter tool. Lists, counts, inspects, replays and
//! purges the records of a pipeline's `<pipeline>.dlq` topic; replays either to the original
//! topic or, for the indexer, straight into its search sink. The work lives in
//! `anineplus_streams::dlq` (the indexer's sink from `anineplus_indexer`); this binary parses flags and prints.

use std::collections::BTreeMap;
use std::io::Write;

use anineplus_args::{KafkaArgs, RegistryArgs, RetryArgs, SearchArgs};
use anineplus_indexer::denormalise::Indexed;
use anineplus_indexer::{self as indexer, IndexerConfig};
use anineplus_schemas::Codec;
use anineplus_streams::dlq::{self, DeadLetterRecord, Filter, SinkReplay, SinkVerdict};
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect and reprocess the dead letters of a pipeline.
///
/// Dead letters keep the original key and value bytes; their headers say where they came
/// from and why they failed (see docs/pipelines.md). Typical use:
///
///   anineplus-dlq count
///   anineplus-dlq list --class permanent
///   anineplus-dlq inspect --partition 0 --offset 12
///   anineplus-dlq replay --original-topic anime --dry-run
///   anineplus-dlq replay --original-topic anime
///   anineplus-dlq replay --to sink --key a1 --dry-run
///   anineplus-dlq replay --to sink --key a1
///   anineplus-dlq job --original-topic anime --rate 50   # prints the job id
///   anineplus-dlq status --job <id>    # the dead letters that came back from it
///   anineplus-dlq purge --yes          # only what a replay covered
#[derive(Debug, Parser)]
#[command(name = "anineplus-dlq", verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The schema registry decodes values in `inspect` and `replay --to sink`.
    #[command(flatten)]
    registry: RegistryArgs,
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
    /// Replay the selected dead letters: to their original topic (default), or straight into
    /// the indexer's search sink. One that fails again returns to the dead-letter topic;
    /// nothing is deleted.
    ///
    /// --to topic: produces each record to its original topic (key, value, headers, plus
    /// `replayed-from`); the running pipeline processes it again.
    ///
    /// --to sink (pipeline `indexer` only): decodes each value through the registry with the
    /// step the indexer binds to its original topic, and writes the resulting documents
    /// through the indexer's search sink (versioned writes: replaying an event older than
    /// what is indexed is "already applied"), without touching the original topic or
    /// needing the indexer to run. Retryable write failures are retried a few times with
    /// backoff; a record that still fails (does not decode, mapping rejection, ...) is
    /// produced back to the dead-letter topic with `attempts` incremented, a new
    /// `last-failure-at`, `error-class` and `error-message`, and `replayed-from`. A search
    /// engine that stays unreachable stops the run with an error.
    ///
    /// Both work on a snapshot of the dead-letter topic taken at the start: records that
    /// fail again land after it and are not replayed twice in one run. Replay, check
    /// (`list`), then `purge`.
    #[command(verbatim_doc_comment)]
    Replay {
        #[command(flatten)]
        select: Select,
        /// Where to replay: `topic` (the original topic) or `sink` (the indexer's search
        /// sink, directly).
        #[arg(long, value_enum, default_value_t = ReplayTo::Topic)]
        to: ReplayTo,
        /// Show what would be replayed, send nothing. With `--to sink`: decode and build
        /// the documents, list them, write nothing (what the engine would refuse, e.g. a
        /// mapping rejection, only shows when writing).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        sink: SinkArgs,
    },
    /// Redrive the selected dead letters to their original topics as one job: the job's
    /// id (printed first) goes in a `redrive-id` header of every record, at most `--rate`
    /// records per second, progress on stderr, stopped cleanly by Ctrl-C (what was sent is
    /// marked). The selection is the snapshot of the start: letters that fail again come
    /// back after it, carrying the id, and `status --job <id>` counts them. The replay loop
    /// is the engine's, the console's too.
    #[command(verbatim_doc_comment)]
    Job {
        #[command(flatten)]
        select: Select,
        /// At most this many records per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Show what would be sent where, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// How a redrive job went: the dead letters that came back carrying its redrive id
    /// (whether a job of this CLI or of the console).
    Status {
        /// The job's id (its `redrive-id`).
        #[arg(long)]
        job: String,
        /// List at most this many of them.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Delete the dead letters a replay covered, and only those. Per partition, purge
    /// deletes the letters below its replay mark: everything below was replayed (to the topic
    /// or the sink). A letter that arrived after the replay's snapshot, or that the replay's
    /// filter skipped, is kept, and so is everything after it in its partition (Kafka
    /// deletes prefixes only: no filters here).
    Purge {
        /// Show how many would be deleted and kept, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
        /// Delete every dead letter present now, replayed or not (to discard them).
        #[arg(long)]
        unreplayed_too: bool,
    },
}

/// Where `replay` sends the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReplayTo {
    /// Back to their original topic, for the running pipeline to process again.
    Topic,
    /// Straight into the pipeline's sink (the indexer's search indices).
    Sink,
}

/// The indexer's sink, for `replay --to sink` (same variables as `anineplus-indexer`).
#[derive(Debug, Args)]
struct SinkArgs {
    /// The search engine (`--to sink`).
    #[command(flatten)]
    search: SearchArgs,
    /// In-place retries of `--to sink` writes (and of the registry).
    #[command(flatten)]
    retry: RetryArgs,
    /// Prefix of the index aliases, as the indexer's (`--to sink`).
    #[arg(long, env = "INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_PREFIX)]
    index_prefix: String,
    /// Dead letters per bulk write (`--to sink`).
    #[arg(long, default_value_t = 500)]
    batch: usize,
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
            redrive_id: None,
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
    let (brokers, topic) = (cli.kafka.brokers.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || dlq::scan(&brokers, &topic, &filter, progress))
        .await?
        .with_context(|| "scanning the dead-letter topic")
}

fn describe(item: &Indexed) -> String {
    let doc = &item.doc;
    format!("{}/{}@{}", doc.index, doc.id, doc.version)
}

/// `replay --to sink`: the indexer's topology (no consumer) decodes, its sink writes.
async fn replay_to_sink(
    cli: &Cli,
    args: &SinkArgs,
    letters: &[DeadLetterRecord],
    dry_run: bool,
) -> anyhow::Result<()> {
    let config = IndexerConfig {
        kafka_brokers: cli.kafka.brokers.clone(),
        elasticsearch_url: args.search.search_url.clone(),
        schema_registry_url: cli.registry.registry_url.clone(),
        group: String::new(),
        index_prefix: args.index_prefix.clone(),
        topic_prefix: cli.topic_prefix.clone(),
        metrics_listen: ([127, 0, 0, 1], 0).into(),
        bulk_docs: args.batch.max(1),
        bulk_bytes: 5 * 1024 * 1024,
        topic_replication: -1,
        retry: args.retry.policy(),
    };
    // A dry run sends nothing to the engine; a real one puts the templates first, as the
    // indexer does at start (idempotent).
    let topology = indexer::topology(&config, !dry_run)
        .await
        .context("building the indexer's topology")?;
    let codec = Codec::new(&cli.registry.registry_url);
    let replay = SinkReplay {
        topology: &topology,
        codec: &codec,
        brokers: &cli.kafka.brokers,
        pipeline: indexer::PIPELINE,
        policy: args.retry.policy(),
        batch: args.batch,
        dry_run,
        describe,
    };
    let report = replay
        .run(
            letters,
            |letter, verdict| match verdict {
                SinkVerdict::WouldWrite(docs) => println!(
                    "would write {}: {}",
                    if docs.is_empty() {
                        "nothing".to_owned()
                    } else {
                        docs.join(" ")
                    },
                    letter.summary()
                ),
                SinkVerdict::Replayed(_) => {}
                SinkVerdict::Returned(failure) => println!(
                    "{} to the dead-letter topic ({}: {}): {}",
                    if dry_run { "would return" } else { "returned" },
                    failure.class.as_str(),
                    failure.message,
                    letter.summary()
                ),
            },
            |done, total| {
                let verb = if dry_run { "decoded" } else { "replayed" };
                eprint!("\r{verb} {done}/{total}");
                let _ = std::io::stderr().flush();
                if done == total {
                    eprintln!();
                }
            },
        )
        .await?;
    if dry_run {
        println!(
            "dry run: {} dead letter(s) would be replayed into the sink ({} document(s)), {} \
             do not decode and would return to the dead-letter topic",
            report.replayed, report.items, report.returned
        );
    } else {
        println!(
            "replayed {} dead letter(s) into the sink ({} document(s) written or already \
             applied); {} failed again and returned to the dead-letter topic",
            report.replayed, report.items, report.returned
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Log lines (the runtime's warnings, say) go to stderr; stdout is the command's result.
    if let Err(e) = anineplus_telemetry::init_logging("warn", anineplus_telemetry::Output::Stderr) {
        eprintln!("error: {e}");
    }
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
                    .inspect(&Codec::new(&cli.registry.registry_url), &cli.topic_prefix)
                    .await
            );
        }
        Command::Replay {
            select,
            to: ReplayTo::Sink,
            dry_run,
            sink,
        } => {
            anyhow::ensure!(
                cli.pipeline == indexer::PIPELINE,
                "replay --to sink is built for the `{}` pipeline only, not `{}`",
                indexer::PIPELINE,
                cli.pipeline
            );
            let letters = scan(&cli, &topic, select.filter(&cli.topic_prefix)).await?;
            replay_to_sink(&cli, sink, &letters, *dry_run).await?;
        }
        Command::Replay {
            select,
            to: ReplayTo::Topic,
            dry_run,
            sink: _,
        } => {
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
                let sent = dlq::replay(&cli.kafka.brokers, &letters, |done, total| {
                    eprint!("\rreplayed {done}/{total}");
                    if done == total {
                        eprintln!();
                    }
                })
                .await?;
                println!("replayed {sent} dead letter(s) to their original topics");
            }
        }
        Command::Job {
            select,
            rate,
            dry_run,
        } => {
            anyhow::ensure!(*rate > 0, "--rate must be at least 1 record per second");
            let letters = scan(&cli, &topic, select.filter(&cli.topic_prefix)).await?;
            if *dry_run {
                let mut to: BTreeMap<&str, u64> = BTreeMap::new();
                for l in &letters {
                    *to.entry(l.original_topic()).or_default() += 1;
                }
                for (original, n) in &to {
                    println!("would redrive {n} to {original}");
                }
                println!(
                    "dry run: {} dead letter(s) would be redriven",
                    letters.len()
                );
                return Ok(());
            }
            let id = uuid::Uuid::new_v4().to_string();
            println!(
                "redrive job {id}: {} dead letter(s), at most {rate}/s",
                letters.len()
            );
            let options = dlq::ReplayOptions {
                redrive_id: Some(id.clone()),
                max_per_second: Some(*rate),
                stop: Some(anineplus_telemetry::shutdown_on_signal()),
            };
            let report = dlq::replay_with(&cli.kafka.brokers, &letters, &options, |done, total| {
                eprint!("\rredriven {done}/{total}");
                let _ = std::io::stderr().flush();
                if done == total {
                    eprintln!();
                }
            })
            .await?;
            println!(
                "sent {} of {}; `anineplus-dlq status --job {id}` counts those that come back",
                report.sent,
                letters.len()
            );
        }
        Command::Status { job, limit } => {
            let filter = Filter {
                redrive_id: Some(job.clone()),
                ..Filter::default()
            };
            let back = scan(&cli, &topic, filter).await?;
            println!(
                "redrive job {job}: returned {} dead letter(s) to {topic}",
                back.len()
            );
            for l in back.iter().take(*limit) {
                println!("{}", l.summary());
            }
        }
        Command::Purge {
            dry_run,
            yes,
            unreplayed_too,
        } => {
            let plan = if *unreplayed_too {
                let ends = dlq::end_offsets(&cli.kafka.brokers, &topic)?;
                dlq::Purge {
                    deleted: ends.iter().map(|(_, l, h)| (h - l) as u64).sum(),
                    kept: 0,
                }
            } else {
                dlq::purge_dry_run(&cli.kafka.brokers, &topic)?
            };
            if *dry_run || !*yes {
                println!(
                    "{topic}: {} dead letter(s) would be deleted, {} kept (not replayed, or \
                     behind one that was not){}",
                    plan.deleted,
                    plan.kept,
                    if *dry_run {
                        ""
                    } else {
                        " (add --yes to delete)"
                    }
                );
            } else if *unreplayed_too {
                let deleted = dlq::purge_all(&cli.kafka.brokers, &topic).await?;
                println!("{topic}: deleted {deleted} dead letter(s), replayed or not");
            } else {
                let done = dlq::purge(&cli.kafka.brokers, &topic).await?;
                println!(
                    "{topic}: deleted {} replayed dead letter(s), kept {} (not replayed, or \
                     behind one that was not)",
                    done.deleted, done.kept
                );
            }
        }
    }
    Ok(())
}
