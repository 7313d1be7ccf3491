//! Pipeline benchmarks, each a ratio of two arms on the same data in one run:
//!
//! - `indexer_vs_bulk_ratio`: the indexer's documents/s (consume, decode, map, bulk with
//!   external versions, settle offsets), clock from its first consumed record to the last
//!   settled one ÷ a raw `_bulk` load of the same documents into the same engine, same
//!   bulk size, one request in flight. Goal ≥ 0.8.
//! - `decode_vs_consumer_ratio`: the runtime with a null sink (consume + decode +
//!   event → document) ÷ a bare consumer loop over the same topic. Goal ≥ 0.5.
//!
//! For context, `pipeline_decode_only_records_per_s` runs the runtime with decoding only (no
//! documents built). `BENCH_EVENTS` sets the number of `anime.updated` events (default 100,000).
//!
//! `indexer_bench_process_peak_rss_mb`: peak resident memory (VmHWM) of this bench process,
//! which runs the indexer in-process next to the producer, the raw-bulk arm and the consumer
//! arms: an upper bound of the indexer's own peak, not the `anineplus-indexer` binary's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anineplus_connectors::kafka;
use anineplus_connectors::search_sink::request::{self, BulkLimits};
use anineplus_connectors::search_sink::{BulkService, Document, IndexSpec};
use anineplus_pipelines::indexer::documents::Documents;
use anineplus_pipelines::indexer::indices::Index;
use anineplus_pipelines::indexer::{self, IndexerConfig};
use anineplus_pipelines::metrics::Metrics;
use anineplus_pipelines::sink::{Outcome, Sink};
use anineplus_pipelines::{Pipeline, PipelineConfig, Stream};
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use anineplus_schemas::{Codec, Topic};
use anineplus_testkit::{Stack, bench, unique};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

const BULK: usize = 1000;

/// Peak resident memory of this process, in MiB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn events() -> usize {
    std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
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

async fn fill(stack: &Stack, codec: &Codec, topic: &str, n: usize) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        kafka::producer_config(&stack.kafka_brokers).create()?;
    admin
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    let id = codec.register(Topic::Anime).await?;
    let producer: FutureProducer = kafka::producer_config(&stack.kafka_brokers)
        .set("linger.ms", "20")
        .create()?;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let e = samples::anime_updated(i as u64);
        let bytes = anineplus_schemas::codec::encode_with_id(id, &e)?;
        let key = e.aggregate_id.clone();
        let producer = producer.clone();
        let topic = topic.to_owned();
        pending.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&bytes),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        });
        if pending.len() >= 10_000 {
            use futures::StreamExt;
            while let Some(r) = pending.next().await {
                r?;
            }
        }
    }
    use futures::StreamExt;
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(())
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    let (client, _) = stack.search().await?;
    let n = events();
    let codec = Codec::new(&stack.registry_url);
    let prefix = format!("{}.", unique("bench"));
    let topic = format!("{prefix}anime");
    fill(&stack, &codec, &topic, n).await?;
    eprintln!("bench: {n} events on {topic}");

    // Arm 1: bare consumer loop.
    let consumer: StreamConsumer =
        kafka::consumer_config(&stack.kafka_brokers, &unique("bench-bare")).create()?;
    consumer.subscribe(&[&topic])?;
    consumer.recv().await?;
    let started = Instant::now();
    for _ in 1..n {
        consumer.recv().await?;
    }
    let bare = n as f64 / started.elapsed().as_secs_f64();
    drop(consumer);

    // Arm 2: the runtime with a null sink.
    let sink = NullSink::default();
    let docs = Documents::new("unused");
    let topology = Stream::<Envelope<AnimeData>>::topic(&topic)
        .flat_map(move |e| docs.anime(e))
        .to(sink.clone());
    let mut config = PipelineConfig::new("bench", &stack.kafka_brokers, &unique("bench-null"));
    config.topic_prefix = prefix.clone();
    let pipeline = Pipeline::new(config, topology, codec.clone());
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    let elapsed = clock(&metrics, || sink.0.load(Ordering::Relaxed) >= n as u64).await;
    let decoded = n as f64 / elapsed.as_secs_f64();
    shutdown.cancel();
    task.await??;

    // Context: the runtime decoding only (no documents built), to split the cost.
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let topology = Stream::<Envelope<AnimeData>>::topic(&topic)
        .flat_map(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            None::<Document>
        })
        .to(NullSink::default());
    let mut config = PipelineConfig::new("bench", &stack.kafka_brokers, &unique("bench-decode"));
    config.topic_prefix = prefix.clone();
    let pipeline = Pipeline::new(config, topology, codec.clone());
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    let elapsed = clock(&metrics, || Metrics::get(&metrics.sunk) >= n as u64).await;
    let decode_only = n as f64 / elapsed.as_secs_f64();
    let _ = seen.load(Ordering::Relaxed);
    shutdown.cancel();
    task.await??;

    // Arm 3: raw bulk of the same documents, same bulk size, one request in flight.
    let raw_prefix = unique("bench-raw");
    let spec: IndexSpec = Index::Anime.spec(&raw_prefix);
    spec.ensure(&client).await?;
    let docs = Documents::new(&raw_prefix);
    let documents: Vec<Document> = (0..n)
        .flat_map(|i| docs.anime(samples::anime_updated(i as u64)))
        .collect();
    let service = BulkService::new(client.clone());
    let limits = BulkLimits {
        max_docs: BULK,
        max_bytes: usize::MAX,
    };
    let started = Instant::now();
    for chunk in documents.chunks(BULK) {
        for r in request::build(chunk, limits) {
            let outcomes = service.send(&r).await;
            anyhow::ensure!(outcomes.iter().all(Outcome::is_success), "raw bulk failed");
        }
    }
    let raw = n as f64 / started.elapsed().as_secs_f64();

    // Arm 4: the indexer.
    let shutdown = CancellationToken::new();
    let config = IndexerConfig {
        kafka_brokers: stack.kafka_brokers.clone(),
        elasticsearch_url: stack.search_url.clone(),
        schema_registry_url: stack.registry_url.clone(),
        group: unique("bench-indexer"),
        index_prefix: unique("bench-ix"),
        topic_prefix: prefix.clone(),
        metrics_listen: "127.0.0.1:0".parse()?,
        bulk_docs: BULK,
        bulk_bytes: 5 * 1024 * 1024,
        retry: Default::default(),
    };
    let (pipeline, running) = indexer::prepare(&config, &shutdown).await?;
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    let m = running.metrics.clone();
    let elapsed = clock(&running.metrics, || Metrics::get(&m.sunk) >= n as u64).await;
    let indexed = n as f64 / elapsed.as_secs_f64();
    shutdown.cancel();
    task.await??;

    println!(
        "indexer: {n} anime.updated events: indexer {indexed:.0} docs/s vs raw _bulk {raw:.0} docs/s; null-sink runtime {decoded:.0}/s, decode only {decode_only:.0}/s vs bare consumer {bare:.0}/s"
    );
    bench::record(&[
        ("indexer_vs_bulk_ratio", indexed / raw),
        ("indexer_docs_per_s", indexed),
        ("indexer_raw_bulk_docs_per_s", raw),
        ("decode_vs_consumer_ratio", decoded / bare),
        ("pipeline_null_sink_records_per_s", decoded),
        ("pipeline_decode_only_records_per_s", decode_only),
        ("pipeline_bare_consumer_records_per_s", bare),
        ("indexer_bench_process_peak_rss_mb", peak_rss_mb()),
    ])?;
    Ok(())
}
