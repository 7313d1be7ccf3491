//! Baseline rates of the real stack, the denominators of the project's ratios.
//!
//! - `baseline_search_bulk_docs_per_s`: a raw `_bulk` load of anime-like documents into a
//!   fresh index, 1,000 documents per request, one request at a time (the arm the indexer is
//!   compared with).
//! - `baseline_kafka_produce_per_s`: the idempotent producer (`acks=all`) writing 300-byte
//!   records.
//! - `baseline_kafka_consume_per_s`: a bare consumer loop reading them back (the arm the
//!   decode/transform pipeline is compared with).
//!
//! Run by `make bench` against the stack `make up` started. `BENCH_DOCS` and
//! `BENCH_RECORDS` change the sizes (defaults 50,000 and 200,000).

use std::time::{Duration, Instant};

use anineplus_connectors::kafka;
use anineplus_testkit::{Stack, bench, unique};
use elasticsearch::BulkParts;
use elasticsearch::http::request::JsonBody;
use elasticsearch::indices::{IndicesCreateParts, IndicesDeleteParts};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use serde_json::json;

fn anime(i: usize) -> serde_json::Value {
    json!({
        "id": format!("anime-{i}"),
        "title": format!("Anime number {i}: the journey continues"),
        "synopsis": "A long-running story about travel, friendship and the passage of time, told in episodes.",
        "genres": ["adventure", "fantasy", "drama"],
        "status": "AIRING",
        "releaseYear": 1990 + (i % 35),
        "version": 1,
    })
}

async fn search_bulk(stack: &Stack) -> anyhow::Result<f64> {
    let (client, version) = stack.search().await?;
    let docs = bench::size("BENCH_DOCS", 50_000);
    let index = unique("bench-bulk");
    client
        .indices()
        .create(IndicesCreateParts::Index(&index))
        .body(json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}}))
        .send()
        .await?
        .error_for_status_code()?;
    let started = Instant::now();
    for chunk in (0..docs).collect::<Vec<_>>().chunks(1000) {
        let mut body: Vec<JsonBody<serde_json::Value>> = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            body.push(json!({"index": {"_id": format!("anime-{i}"), "version": 1, "version_type": "external_gte"}}).into());
            body.push(anime(i).into());
        }
        let response: serde_json::Value = client
            .bulk(BulkParts::Index(&index))
            .body(body)
            .send()
            .await?
            .error_for_status_code()?
            .json()
            .await?;
        anyhow::ensure!(
            response["errors"] == json!(false),
            "bulk errors: {response}"
        );
    }
    let rate = docs as f64 / started.elapsed().as_secs_f64();
    eprintln!("{version}: {docs} documents bulk-loaded");
    client
        .indices()
        .delete(IndicesDeleteParts::Index(&[&index]))
        .send()
        .await?;
    Ok(rate)
}

async fn kafka_rates(stack: &Stack) -> anyhow::Result<(f64, f64)> {
    stack.kafka().await?;
    let records = bench::size("BENCH_RECORDS", 200_000);
    let topic = unique("bench-raw");
    let admin: AdminClient<DefaultClientContext> =
        kafka::producer_config(&stack.kafka_brokers).create()?;
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;

    let producer: kafka::Producer = kafka::Producer::create(
        kafka::producer_config(&stack.kafka_brokers)
            .set("linger.ms", "20")
            .set("queue.buffering.max.messages", "500000"),
    )?;
    let payload = vec![b'x'; 300];
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..records {
        let key = (i % 1000).to_string();
        pending.push(
            producer
                .send_result(FutureRecord::to(&topic).key(&key).payload(&payload))
                .map_err(|(e, _)| e)?,
        );
        if pending.len() == 10_000 {
            for delivery in pending.drain(..) {
                delivery.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for delivery in pending.drain(..) {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let produce_rate = records as f64 / started.elapsed().as_secs_f64();

    let consumer: StreamConsumer =
        kafka::consumer_config(&stack.kafka_brokers, &unique("bench-raw")).create()?;
    consumer.subscribe(&[&topic])?;
    let mut seen = 0usize;
    // The clock starts at the first record, so group join time is not counted.
    let first = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
    let started = Instant::now();
    seen += usize::from(first.payload().is_some());
    while seen < records {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        seen += usize::from(message.payload().is_some());
    }
    let consume_rate = records as f64 / started.elapsed().as_secs_f64();
    admin.delete_topics(&[&topic], &AdminOptions::new()).await?;
    Ok((produce_rate, consume_rate))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let bulk = search_bulk(&stack).await?;
    let (produce, consume) = kafka_rates(&stack).await?;
    println!(
        "stack_baseline: raw _bulk of {} documents (1,000 per request): {bulk:.0} docs/s; idempotent producer of {} 300-byte records: {produce:.0}/s, bare consumer: {consume:.0}/s",
        bench::size("BENCH_DOCS", 50_000),
        bench::size("BENCH_RECORDS", 200_000),
    );
    bench::record(&[
        ("baseline_search_bulk_docs_per_s", bulk),
        ("baseline_kafka_produce_per_s", produce),
        ("baseline_kafka_consume_per_s", consume),
    ])?;
    Ok(())
}
