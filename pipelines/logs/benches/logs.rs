//! The log pipeline against a raw bulk load, each a side of one ratio in one run.
//!
//! `BENCH_LOG_RECORDS` log records (default 100,000: 5 services, 4 context fields each,
//! one in ten with a correlation id, about 300 bytes of JSON) are produced once to a topic
//! of 3 partitions.
//!
//! - `logs_vs_bulk_ratio`: the `anineplus-logs index` **binary** (spawned as production
//!   runs it: consume, decode, daily index by timestamp, document, bulk, settle offsets),
//!   documents/s with the clock from its first consumed record to the last settled one
//!   (its `/metrics`, scraped every 20 ms) ÷ a raw `_bulk` load of the same documents (made
//!   by the pipeline's own `documents::index_entry`, encoded by the sink's own encoder,
//!   5,000 per request, two requests in flight as the pipeline's sink allows), into fresh
//!   indices of the same template. A warm-up load runs first, then raw, pipeline,
//!   pipeline, raw; the means are compared. Goal ≥ 0.8.
//! - `logs_pipeline_docs_per_s`, `logs_raw_bulk_docs_per_s` (context): the two rates.
//! - `logs_pipeline_peak_rss_mb`: the binary's peak resident memory (`VmHWM`), the higher
//!   of its two runs.
//!
//! Every index, template and topic the bench made is deleted at the end.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_connectors::search;
use anineplus_connectors::search_sink::BulkService;
use anineplus_connectors::search_sink::request::{self, BulkLimits};
use anineplus_logs::{documents, index};
use anineplus_schemas::events::{LogLevel, LogRecord};
use anineplus_schemas::{Codec, Topic};
use anineplus_streams::Located;
use anineplus_streams::sink::Outcome;
use anineplus_testkit::{Stack, bench, topics, unique};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;

const BULK: usize = 5000;
const WARM_UP: usize = 20_000;
const SERVICES: [&str; 5] = ["api", "indexer", "registry", "log-index", "console"];

fn record(i: usize, now: i64) -> LogRecord {
    let service = SERVICES[i % SERVICES.len()];
    LogRecord {
        level: if i.is_multiple_of(50) {
            LogLevel::Warn
        } else {
            LogLevel::Info
        },
        timestamp: now + i as i64,
        service: service.to_owned(),
        trace_id: None,
        correlation_id: i.is_multiple_of(10).then(|| format!("req-{}", i / 10)),
        message: format!("graphql operation served in {} ms", i % 97),
        context: BTreeMap::from([
            ("target".to_owned(), format!("anineplus_{service}::http")),
            ("operation".to_owned(), "searchAnime".to_owned()),
            ("elapsed_ms".to_owned(), (i % 97).to_string()),
            ("path".to_owned(), "/graphql".to_owned()),
        ]),
    }
}

/// Documents/s of a raw load of the documents of `records` (as if at partition `i % 3`):
/// the sink's encoder, `BULK` per request, two in flight.
async fn raw_bulk(
    service: &BulkService,
    prefix: &str,
    records: &[LogRecord],
) -> anyhow::Result<f64> {
    let topic: Arc<str> = Arc::from("logs");
    let docs: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let located = Located {
                topic: topic.clone(),
                partition: (i % 3) as i32,
                offset: (i / 3) as i64,
                value: r.clone(),
            };
            documents::index_entry(prefix, &located).expect("a valid record")
        })
        .collect();
    let limits = BulkLimits {
        max_docs: BULK,
        max_bytes: usize::MAX,
    };
    let requests = request::build(&docs, limits);
    let started = Instant::now();
    for pair in requests.chunks(2) {
        let answers = futures::future::join_all(pair.iter().map(|r| service.send(r))).await;
        for outcomes in answers {
            anyhow::ensure!(
                outcomes.iter().all(Outcome::is_success),
                "raw bulk failed: {:?}",
                outcomes.iter().find(|o| !o.is_success())
            );
        }
    }
    Ok(docs.len() as f64 / started.elapsed().as_secs_f64())
}

/// Runs `anineplus-logs index` over the topic under `topic_prefix` into indices under
/// `index_prefix` until it settled `n` records: documents/s and its peak RSS.
async fn pipeline_binary(
    stack: &Stack,
    http: &reqwest::Client,
    topic_prefix: &str,
    index_prefix: &str,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-logs"))
        .arg("index")
        .env("RUST_LOG", "warn,rdkafka=error")
        .env("LOG_SHIPPING", "false")
        .args([
            "--kafka-brokers",
            &stack.kafka_brokers,
            "--elasticsearch-url",
            &stack.search_url,
            "--schema-registry-url",
            &stack.registry_url,
            "--group",
            &unique("bench-logs"),
            "--index-prefix",
            index_prefix,
            "--topic-prefix",
            topic_prefix,
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
            "--retention-days",
            "0",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let timed = bench::time_to_settle(
        http,
        &url,
        n as u64,
        Duration::from_secs(120),
        Duration::from_secs(600),
    )
    .await;
    let rss = bench::peak_rss_mb(&child.id().to_string());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if child.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    Ok((n as f64 / timed?.as_secs_f64(), rss))
}

async fn drop_prefix(client: &Elasticsearch, prefix: &str) {
    let _ = search::call_json(
        client,
        Method::Delete,
        &format!("/{prefix}-*?allow_no_indices=true"),
        None,
    )
    .await;
    let _ = search::call_json(
        client,
        Method::Delete,
        &format!("/_index_template/{prefix}"),
        None,
    )
    .await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    stack.search().await?;
    let n = bench::size("BENCH_LOG_RECORDS", 100_000);
    let codec = Codec::new(&stack.registry_url);
    let topic_prefix = format!("{}.", unique("benchlogs"));
    let topic = format!("{topic_prefix}{}", Topic::Logs.name());
    topics::create(&stack.kafka_brokers, &topic, 3).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let records: Vec<LogRecord> = (0..n).map(|i| record(i, now)).collect();
    let id = codec.register(Topic::Logs).await?;
    topics::produce(
        &stack.kafka_brokers,
        &topic,
        records.iter().map(|r| {
            let value = anineplus_schemas::codec::encode_with_id(id, r).expect("encodes");
            (r.service.clone(), value)
        }),
    )
    .await?;
    eprintln!("bench: {n} log records on {topic}");
    let client = search::client(&stack.search_url, Duration::from_secs(30))?;
    let mut prefixes = Vec::new();
    let result = run(&stack, &client, &topic_prefix, &records, &mut prefixes).await;
    for p in &prefixes {
        drop_prefix(&client, p).await;
    }
    if let Err(e) = topics::delete_prefixed(&stack.kafka_brokers, &topic_prefix).await {
        eprintln!("bench: could not delete the topics under {topic_prefix}: {e}");
    }
    result
}

async fn run(
    stack: &Stack,
    client: &Elasticsearch,
    topic_prefix: &str,
    records: &[LogRecord],
    prefixes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let service = BulkService::new(client.clone());
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut fresh = async |name: &str| -> anyhow::Result<String> {
        let prefix = unique(name);
        index::put_template(client, &prefix).await?;
        prefixes.push(prefix.clone());
        Ok(prefix)
    };
    let warm = fresh("benchlogwarm").await?;
    raw_bulk(&service, &warm, &records[..WARM_UP.min(records.len())]).await?;

    let (mut raws, mut ours, mut rss) = (Vec::new(), Vec::new(), 0.0f64);
    for round in ["raw", "pipeline", "pipeline", "raw"] {
        let prefix = fresh(&format!("benchlog{round}")).await?;
        if round == "raw" {
            let rate = raw_bulk(&service, &prefix, records).await?;
            eprintln!("bench: raw bulk {rate:.0} docs/s");
            raws.push(rate);
        } else {
            let (rate, peak) =
                pipeline_binary(stack, &http, topic_prefix, &prefix, records.len()).await?;
            eprintln!("bench: log pipeline {rate:.0} docs/s, peak RSS {peak:.1} MiB");
            ours.push(rate);
            rss = rss.max(peak);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (raw, pipeline) = (mean(&raws), mean(&ours));
    bench::record(&[
        ("logs_vs_bulk_ratio", pipeline / raw),
        ("logs_pipeline_docs_per_s", pipeline),
        ("logs_raw_bulk_docs_per_s", raw),
        ("logs_pipeline_peak_rss_mb", rss),
    ])?;
    Ok(())
}
