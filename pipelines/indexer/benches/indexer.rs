//! Pipeline benchmarks, each a ratio of two arms on the same data in one run.
//!
//! `BENCH_EVENTS` `anime.updated` events (default 100,000) are produced once to a topic of
//! 3 partitions; every arm reads that topic or writes the documents made of those events.
//!
//! - `indexer_vs_bulk_ratio`: the `anineplus-indexer` **binary** (spawned, as production
//!   runs it: consume, decode, map to documents, bulk, settle offsets), documents/s with the
//!   clock from its first consumed record to the last settled one (read from its `/metrics`)
//!   ÷ a raw `_bulk` load of the same documents: the same `Document`s (made by the indexer's
//!   own `Documents` from the same events), encoded by the sink's own request encoder
//!   (`search_sink::request::build`), so both arms send identical bodies, through the same
//!   client settings, 1,000 per request, one request in flight. Both arms write into fresh
//!   indices made from the same templates (`IndexSpec::ensure`); one warm-up load into a
//!   throwaway index runs first, then the arms run in the order raw, indexer, indexer, raw
//!   (drift on the shared machine hits both alike) and the ratio compares the arms' mean
//!   rates. Goal ≥ 0.8.
//! - `pipeline_search_sink_docs_per_s` (context): the runtime in-process with the plain
//!   `SearchSink` (the same documents, without the indexer sink's follow-up writes: the
//!   anime title copied onto comments, a comments refresh and `_update_by_query` per batch).
//! - `indexer_raw_plain_index_docs_per_s` (context): the same documents' sources as plain
//!   `index` operations (no versions, no scripts) in the same way: what the engine does with
//!   the cheapest write.
//! - `indexer_vs_plain_ratio`: the binary's documents/s (as above) ÷ those plain `index`
//!   operations': how close the indexer comes to the engine's cheapest write of the same
//!   documents. Goal ≥ 0.8.
//! - `indexer_peak_rss_mb`: the binary's peak resident memory (`VmHWM` of
//!   `/proc/<pid>/status`, read just before it is stopped), the higher of its two runs.
//! - `decode_vs_consumer_ratio`: the runtime with a null sink (consume + decode +
//!   event → document) ÷ a bare `StreamConsumer::recv` loop over the same topic, each on a
//!   fresh group; three rounds of (bare, null), medians compared. Goal ≥ 0.5.
//! - `pipeline_decode_only_records_per_s` (context): the runtime decoding only.
//!
//! The bench process runs on the indexer binary's allocator (mimalloc), as its arms are
//! the binary's code.
//!
//! `BENCH_ARMS` (comma-separated, default `consumer,bulk`) runs a subset, e.g. `null` alone
//! (the null-sink runtime arm, for profiling). Every index, template and topic the bench
//! made is deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use anineplus_connectors::search_sink::request::{BulkLimits, BulkRequest};
use anineplus_connectors::search_sink::{Action, BulkService, Document, SearchSink};
use anineplus_connectors::{kafka, search};
use anineplus_indexer::documents::Documents;
use anineplus_indexer::indices;
use anineplus_indexer::sink::SearchWriter;
use anineplus_schemas::Codec;
use anineplus_schemas::events::{AnimeData, Envelope};
use anineplus_streams::metrics::Metrics;
use anineplus_streams::sink::{Outcome, Sink};
use anineplus_streams::{Pipeline, PipelineConfig, Stream};
use anineplus_testkit::{Stack, bench, unique};
use common::{BULK, IndexerProcess, documents, fill, group, raw_bulk};
use elasticsearch::Elasticsearch;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The indexer binary's allocator, so the in-process arms (the null-sink runtime above all)
/// measure the runtime as production runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONSUMER_ROUNDS: usize = 3;
const WARM_UP_DOCS: usize = 10_000;

fn arm(name: &str) -> bool {
    let arms = std::env::var("BENCH_ARMS").unwrap_or_else(|_| "consumer,bulk".into());
    arms.split(',').any(|a| {
        let a = a.trim();
        a == name
            || (a == "consumer" && matches!(name, "bare" | "null" | "decode"))
            || (a == "bulk" && matches!(name, "raw" | "indexer" | "plain" | "runtime"))
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Null sink: counts what it is given.
#[derive(Clone, Default)]
struct NullSink(Arc<AtomicU64>);

impl Sink for NullSink {
    type Item = Document;
    async fn write(&self, items: &[Document]) -> Vec<Outcome> {
        self.0.fetch_add(items.len() as u64, Ordering::Relaxed);
        vec![Outcome::Done; items.len()]
    }
}

/// Runs until `done()` holds; the clock starts at the first consumed record.
async fn clock(metrics: &Metrics, done: impl Fn() -> bool) -> Duration {
    while Metrics::get(&metrics.consumed) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    while !done() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

/// Records/s of a bare `recv` loop over `topic` on a fresh group, clock from the first record.
async fn bare_consumer(stack: &Stack, topic: &str, n: usize) -> anyhow::Result<f64> {
    let consumer: StreamConsumer =
        kafka::consumer_config(&stack.kafka_brokers, &unique("bench-bare")).create()?;
    consumer.subscribe(&[topic])?;
    consumer.recv().await?;
    let started = Instant::now();
    for _ in 1..n {
        consumer.recv().await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Records/s of the runtime over `topic` on a fresh group, into a null sink; with
/// `documents`, each event becomes its search document, else it is only decoded.
async fn null_pipeline(
    stack: &Stack,
    codec: &Codec,
    prefix: &str,
    topic: &str,
    n: usize,
    documents: bool,
) -> anyhow::Result<f64> {
    let sink = NullSink::default();
    let docs = Documents::new("unused");
    let stream = Stream::<Envelope<AnimeData>>::topic(topic);
    let topology = if documents {
        stream.flat_map(move |e| docs.anime(e)).to(sink.clone())
    } else {
        stream.flat_map(|_| None::<Document>).to(sink.clone())
    };
    let mut config = PipelineConfig::new("bench", &stack.kafka_brokers, &unique("bench-null"));
    config.topic_prefix = prefix.to_owned();
    let pipeline = Pipeline::new(config, topology, codec.clone());
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    let m = metrics.clone();
    let elapsed = clock(&metrics, || Metrics::get(&m.sunk) >= n as u64).await;
    shutdown.cancel();
    task.await??;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// The whole source a document writes, when it has one (whole-document writes and
/// replacing upserts).
fn plain_source(doc: &Document) -> Option<Value> {
    match &doc.action {
        Action::Index(source) => Some(source.value()),
        Action::Update { params, .. } => params
            .value()
            .get_mut("source")
            .filter(|s| s.is_object())
            .map(Value::take),
        Action::Script { .. } => None,
    }
}

/// Documents/s of the same sources as plain `index` operations (no version, no script).
async fn raw_plain(service: &BulkService, docs: &[Document]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut written = 0usize;
    for chunk in docs.chunks(BULK) {
        let mut body = Vec::new();
        let mut count = 0;
        for doc in chunk {
            let Some(source) = plain_source(doc) else {
                continue;
            };
            let action = serde_json::json!({"index": {"_index": doc.index, "_id": doc.id}});
            serde_json::to_writer(&mut body, &action)?;
            body.push(b'\n');
            serde_json::to_writer(&mut body, &source)?;
            body.push(b'\n');
            count += 1;
        }
        if count == 0 {
            continue;
        }
        let outcomes = service
            .send(&BulkRequest {
                body: body.into(),
                docs: 0..count,
            })
            .await;
        anyhow::ensure!(
            outcomes.iter().all(Outcome::is_success),
            "plain bulk failed"
        );
        written += count;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// Runs the `anineplus-indexer` binary over the topics under `topic_prefix` into fresh
/// indices under `index_prefix` until it settled `n` records. Returns documents/s (clock
/// from its first consumed record to the scrape that saw `n` settled) and its peak RSS.
async fn indexer_binary(
    stack: &Stack,
    http: &reqwest::Client,
    topic_prefix: &str,
    index_prefix: &str,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let process = IndexerProcess::spawn(stack, topic_prefix, index_prefix, &group("indexer"))?;
    let elapsed = bench::time_to_settle(
        http,
        &process.metrics_url,
        n as u64,
        Duration::from_secs(120),
        Duration::from_secs(420),
    )
    .await?;
    let rate = n as f64 / elapsed.as_secs_f64();
    let rss = process.peak_rss_mb();
    process.stop().await?;
    Ok((rate, rss))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    if arm("raw") || arm("indexer") || arm("plain") || arm("runtime") {
        stack.search().await?;
    }
    let n = bench::size("BENCH_EVENTS", 100_000);
    let codec = Codec::new(&stack.registry_url);
    let prefix = format!("{}.", unique("bench"));
    let topic = format!("{prefix}anime");
    fill(&stack, &codec, &topic, n, 3, 1).await?;
    eprintln!("bench: {n} events on {topic}");
    // The same client settings as the indexer's.
    let client = search::client(&stack.search_url, Duration::from_secs(30))?;
    let mut index_prefixes = Vec::new();
    let result = run(
        &stack,
        &codec,
        &client,
        &prefix,
        &topic,
        n,
        &mut index_prefixes,
    )
    .await;
    common::clean_up(&stack, &client, &prefix, &index_prefixes).await;
    result
}

async fn run(
    stack: &Stack,
    codec: &Codec,
    client: &Elasticsearch,
    prefix: &str,
    topic: &str,
    n: usize,
    index_prefixes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut figures: Vec<(&str, f64)> = Vec::new();

    // Consumer arms: rounds of (bare, null sink), each on a fresh group.
    let (mut bares, mut nulls) = (Vec::new(), Vec::new());
    for round in 0..CONSUMER_ROUNDS {
        if arm("bare") {
            bares.push(bare_consumer(stack, topic, n).await?);
        }
        if arm("null") {
            nulls.push(null_pipeline(stack, codec, prefix, topic, n, true).await?);
        }
        if arm("bare") || arm("null") {
            eprintln!(
                "bench: round {round}: bare consumer {:.0}/s, null-sink runtime {:.0}/s",
                bares.last().copied().unwrap_or(f64::NAN),
                nulls.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    let (bare, null) = (bench::median(bares), bench::median(nulls));
    if arm("bare") && arm("null") {
        figures.push(("decode_vs_consumer_ratio", null / bare));
    }
    if arm("null") {
        figures.push(("pipeline_null_sink_records_per_s", null));
    }
    if arm("bare") {
        figures.push(("pipeline_bare_consumer_records_per_s", bare));
    }
    if arm("decode") {
        let decode_only = null_pipeline(stack, codec, prefix, topic, n, false).await?;
        figures.push(("pipeline_decode_only_records_per_s", decode_only));
    }

    // Bulk arms: fresh indices from the same templates each time; warm-up first; then
    // raw, indexer, indexer, raw.
    if arm("raw") || arm("indexer") || arm("plain") || arm("runtime") {
        let service = BulkService::new(client.clone());
        let warm = unique("bench-warm");
        index_prefixes.push(warm.clone());
        indices::create_all(client, &warm).await?;
        raw_bulk(&service, &documents(&warm, n.min(WARM_UP_DOCS))).await?;
        indices::drop_all(client, &warm).await;

        let http = reqwest::Client::builder().no_proxy().build()?;
        let (mut raws, mut indexed, mut rss) = (Vec::new(), Vec::new(), Vec::<f64>::new());
        for step in ["raw", "indexer", "indexer", "raw"] {
            if !arm(step) {
                continue;
            }
            if step == "raw" {
                let p = unique("bench-raw");
                index_prefixes.push(p.clone());
                indices::create_all(client, &p).await?;
                let docs = documents(&p, n);
                let rate = raw_bulk(&service, &docs).await?;
                eprintln!("bench: raw _bulk {rate:.0} docs/s");
                raws.push(rate);
            } else {
                let p = unique("bench-ix");
                index_prefixes.push(p.clone());
                let (rate, peak) = indexer_binary(stack, &http, prefix, &p, n).await?;
                eprintln!("bench: indexer binary {rate:.0} docs/s, peak RSS {peak:.1} MiB");
                indexed.push(rate);
                rss.push(peak);
            }
        }
        if arm("raw") && arm("indexer") {
            figures.push(("indexer_vs_bulk_ratio", mean(&indexed) / mean(&raws)));
        }
        if arm("indexer") {
            figures.push(("indexer_docs_per_s", mean(&indexed)));
            figures.push((
                "indexer_peak_rss_mb",
                rss.iter().copied().fold(0.0, f64::max),
            ));
        }
        if arm("raw") {
            figures.push(("indexer_raw_bulk_docs_per_s", mean(&raws)));
        }
        if arm("runtime") {
            // Context: the runtime in-process with the plain search sink (no follow-up writes
            // of the indexer's sink), into fresh indices.
            let p = unique("bench-rt");
            index_prefixes.push(p.clone());
            indices::create_all(client, &p).await?;
            let docs = Documents::new(&p);
            let sink = SearchSink::new(
                BulkService::new(client.clone()),
                BulkLimits {
                    max_docs: BULK,
                    max_bytes: 5 * 1024 * 1024,
                },
            );
            let topology = Stream::<Envelope<AnimeData>>::topic(topic)
                .flat_map(move |e| docs.anime(e))
                .to(SearchWriter(sink));
            let mut config =
                PipelineConfig::new("bench", &stack.kafka_brokers, &unique("bench-rt"));
            config.topic_prefix = prefix.to_owned();
            config.batch.max_records = BULK;
            let pipeline = Pipeline::new(config, topology, codec.clone());
            let metrics = pipeline.metrics();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(pipeline.run(shutdown.clone()));
            let m = metrics.clone();
            let elapsed = clock(&metrics, || Metrics::get(&m.sunk) >= n as u64).await;
            shutdown.cancel();
            task.await??;
            figures.push((
                "pipeline_search_sink_docs_per_s",
                n as f64 / elapsed.as_secs_f64(),
            ));
        }
        if arm("plain") {
            let p = unique("bench-plain");
            index_prefixes.push(p.clone());
            indices::create_all(client, &p).await?;
            let rate = raw_plain(&service, &documents(&p, n)).await?;
            figures.push(("indexer_raw_plain_index_docs_per_s", rate));
            if arm("indexer") {
                figures.push(("indexer_vs_plain_ratio", mean(&indexed) / rate));
            }
        }
    }

    let line: Vec<String> = figures.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    println!("indexer: {n} anime.updated events: {}", line.join(", "));
    bench::record(&figures)?;
    Ok(())
}
