//! The cluster mode's benchmarks: `make bench-cluster` (`scripts/bench-cluster.sh`) starts
//! the cluster (three Kafka nodes, two search nodes) and runs this with `BENCH_CLUSTER=1`
//! and the cluster's addresses. Under `make bench` (the single-node stack) it says so and
//! measures nothing: neither figure means anything on one broker.
//!
//! - `rf3_vs_rf1_produce_ratio`: records/s of the project's idempotent producer (`acks=all`,
//!   20 ms linger) into a topic of replication 3 (`min.insync.replicas` 2, the cluster's
//!   setting) ÷ into one of replication 1, the same `BENCH_CLUSTER_RECORDS` records
//!   (default 200,000, 512-byte values) on 6 partitions each; the order rf1, rf3, rf3, rf1
//!   (drift on the shared machine hits both alike), mean rates compared. What replication
//!   costs a producer that waits for every in-sync replica.
//! - `indexer_scaling_ratio`: documents/s of two `anineplus-indexer` binaries in one
//!   consumer group ÷ one binary, over `BENCH_EVENTS` `anime.updated` events (default
//!   100,000) on a topic of 6 partitions (replication 3), so that two instances get three
//!   partitions each; after a 10,000-document warm-up load into a throwaway index, the
//!   order one, two, two, one, each arm a fresh group and fresh indices; the clock runs from the first record any instance consumed to their settled
//!   records adding up to the events. Beside it, the engine's own rate for the same
//!   documents: `cluster_engine_bulk_docs_per_s` (raw `_bulk`, 1,000 per request, one in
//!   flight, as one indexer sends them) and `cluster_engine_bulk_2x_docs_per_s` (two such
//!   loaders at once, as two indexers send them). On two cores the processes share the
//!   cores with three brokers and two search nodes, so the engine caps the ratio: compare
//!   the two-instance rate with the two-loader rate.
//!
//! Every topic and index the bench made is deleted at the end.

mod common;

use std::time::{Duration, Instant};

use anineplus_connectors::search;
use anineplus_connectors::search_sink::BulkService;
use anineplus_indexer::indices;
use anineplus_schemas::Codec;
use anineplus_testkit::{Stack, bench, topics, unique};
use common::{IndexerProcess, documents, fill, group, raw_bulk};
use elasticsearch::Elasticsearch;

/// Partitions of every topic of the bench.
const PARTITIONS: i32 = 6;
/// Documents of the warm-up load before the indexer arms.
const WARM_UP_DOCS: usize = 10_000;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var("BENCH_CLUSTER").as_deref() != Ok("1") {
        eprintln!("cluster: not measured here: `make bench-cluster` runs it on the cluster mode");
        return Ok(());
    }
    let stack = Stack::from_env();
    let brokers = stack.kafka().await?;
    anyhow::ensure!(
        brokers >= 3,
        "{}: {brokers} broker(s); the cluster mode has 3 (make up CLUSTER=1)",
        stack.kafka_brokers
    );
    stack.registry().await?;
    stack.search().await?;
    let prefix = format!("{}.", unique("bench"));
    let client = search::client(&stack.search_url, Duration::from_secs(30))?;
    let mut index_prefixes = Vec::new();
    let result = run(&stack, &client, &prefix, &mut index_prefixes).await;
    common::clean_up(&stack, &client, &prefix, &index_prefixes).await;
    result
}

async fn run(
    stack: &Stack,
    client: &Elasticsearch,
    prefix: &str,
    index_prefixes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut figures: Vec<(&str, f64)> = Vec::new();

    // Replication: rf1, rf3, rf3, rf1, each into a topic of its own.
    let records = bench::size("BENCH_CLUSTER_RECORDS", 200_000);
    let (mut rf1, mut rf3) = (Vec::new(), Vec::new());
    for (round, replication) in [1, 3, 3, 1].into_iter().enumerate() {
        let topic = format!("{prefix}rf{replication}-{round}");
        let rate = produce_rate(stack, &topic, replication, records).await?;
        eprintln!("bench: replication {replication}: {rate:.0} records/s");
        if replication == 1 { &mut rf1 } else { &mut rf3 }.push(rate);
    }
    figures.push(("rf3_vs_rf1_produce_ratio", mean(&rf3) / mean(&rf1)));
    figures.push(("cluster_produce_rf1_records_per_s", mean(&rf1)));
    figures.push(("cluster_produce_rf3_records_per_s", mean(&rf3)));

    // Indexer instances: one, two, two, one, over one topic of events.
    let n = bench::size("BENCH_EVENTS", 100_000);
    let codec = Codec::new(&stack.registry_url);
    fill(stack, &codec, &format!("{prefix}anime"), n, PARTITIONS, 3).await?;
    eprintln!("bench: {n} events on {prefix}anime ({PARTITIONS} partitions, replication 3)");
    let service = BulkService::new(client.clone());
    let http = reqwest::Client::builder().no_proxy().build()?;
    // A warm-up load first (the engine's first writes into fresh indices are slow).
    let warm = unique("bench-warm");
    index_prefixes.push(warm.clone());
    indices::create_all(client, &warm).await?;
    raw_bulk(&service, &documents(&warm, n.min(WARM_UP_DOCS))).await?;
    indices::drop_all(client, &warm).await;
    let (mut ones, mut twos) = (Vec::new(), Vec::new());
    for instances in [1, 2, 2, 1] {
        let p = unique("bench-ix");
        index_prefixes.push(p.clone());
        let rate = indexers(stack, &http, prefix, &p, instances, n).await?;
        eprintln!("bench: {instances} indexer instance(s): {rate:.0} docs/s");
        if instances == 1 { &mut ones } else { &mut twos }.push(rate);
    }
    figures.push(("indexer_scaling_ratio", mean(&twos) / mean(&ones)));
    figures.push(("cluster_indexer_one_docs_per_s", mean(&ones)));
    figures.push(("cluster_indexer_two_docs_per_s", mean(&twos)));

    // The engine's own rate for the same documents: one loader, then two at once.
    let p = unique("bench-raw");
    index_prefixes.push(p.clone());
    indices::create_all(client, &p).await?;
    let one = raw_bulk(&service, &documents(&p, n)).await?;
    let p = unique("bench-raw2");
    index_prefixes.push(p.clone());
    indices::create_all(client, &p).await?;
    let docs = documents(&p, n);
    let (first, second) = docs.split_at(docs.len() / 2);
    let started = Instant::now();
    let (a, b) = tokio::join!(raw_bulk(&service, first), raw_bulk(&service, second));
    a?;
    b?;
    let two = docs.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("bench: raw _bulk, one loader {one:.0} docs/s, two loaders {two:.0} docs/s");
    figures.push(("cluster_engine_bulk_docs_per_s", one));
    figures.push(("cluster_engine_bulk_2x_docs_per_s", two));

    let line: Vec<String> = figures.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    println!(
        "cluster: {records} records per produce arm, {n} events per indexer arm: {}",
        line.join(", ")
    );
    bench::record(&figures)?;
    Ok(())
}

/// Records/s of [`topics::produce`] (the project's idempotent producer) of `n` records of
/// 512 bytes into a new `topic` of `replication` replicas.
async fn produce_rate(
    stack: &Stack,
    topic: &str,
    replication: i32,
    n: usize,
) -> anyhow::Result<f64> {
    // One replica cannot satisfy the cluster's min.insync.replicas of 2: its topic says 1.
    let min_isr = replication.min(2).to_string();
    topics::create_replicated(
        &stack.kafka_brokers,
        topic,
        PARTITIONS,
        replication,
        &[("min.insync.replicas", &min_isr)],
    )
    .await?;
    let value = vec![b'x'; 512];
    let records = (0..n).map(|i| (format!("key-{i}"), value.clone()));
    let started = Instant::now();
    topics::produce(&stack.kafka_brokers, topic, records).await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Documents/s of `instances` indexer binaries in one fresh group, over the topics under
/// `topic_prefix`, into fresh indices under `index_prefix`.
async fn indexers(
    stack: &Stack,
    http: &reqwest::Client,
    topic_prefix: &str,
    index_prefix: &str,
    instances: usize,
    n: usize,
) -> anyhow::Result<f64> {
    let group = group("cluster-indexer");
    let mut processes = Vec::new();
    for _ in 0..instances {
        processes.push(IndexerProcess::spawn(
            stack,
            topic_prefix,
            index_prefix,
            &group,
        )?);
    }
    let urls: Vec<&str> = processes.iter().map(|p| p.metrics_url.as_str()).collect();
    let elapsed = bench::time_to_settle_all(
        http,
        &urls,
        n as u64,
        Duration::from_secs(120),
        Duration::from_secs(420),
    )
    .await?;
    for process in processes {
        process.stop().await?;
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}
