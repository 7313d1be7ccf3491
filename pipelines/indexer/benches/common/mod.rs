//! What the indexer's benchmarks share: the events they fill a topic with, the documents
//! the indexer makes of them, a raw `_bulk` load of those documents, and the
//! `anineplus-indexer` binary spawned as production runs it.

#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anineplus_connectors::search_sink::request::{self, BulkLimits};
use anineplus_connectors::search_sink::{BulkService, Document};
use anineplus_indexer::documents::Documents;
use anineplus_schemas::events::samples;
use anineplus_schemas::{Codec, Topic};
use anineplus_streams::sink::Outcome;
use anineplus_testkit::{Stack, topics, unique};
use elasticsearch::Elasticsearch;

/// Documents per bulk request, in the raw arms and the binary (`--bulk-docs`).
pub const BULK: usize = 1000;

/// Creates `topic` (`partitions` partitions, `replication` replicas) and fills it with `n`
/// `anime.updated` events, keyed by anime id.
pub async fn fill(
    stack: &Stack,
    codec: &Codec,
    topic: &str,
    n: usize,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    topics::create_replicated(&stack.kafka_brokers, topic, partitions, replication, &[]).await?;
    let id = codec.register(Topic::Anime).await?;
    let records = (0..n).map(|i| {
        let e = samples::anime_updated(i as u64);
        let value = anineplus_schemas::codec::encode_with_id(id, &e).expect("sample encodes");
        (e.aggregate_id, value)
    });
    topics::produce(&stack.kafka_brokers, topic, records).await
}

/// The documents the indexer makes of the `n` events, for the indices under `prefix`.
pub fn documents(prefix: &str, n: usize) -> Vec<Document> {
    let docs = Documents::new(prefix);
    (0..n)
        .flat_map(|i| docs.anime(samples::anime_updated(i as u64)))
        .collect()
}

/// Documents/s of a raw load of `docs`: bodies from the sink's own encoder, [`BULK`] per
/// request, one request in flight.
pub async fn raw_bulk(service: &BulkService, docs: &[Document]) -> anyhow::Result<f64> {
    let limits = BulkLimits {
        max_docs: BULK,
        max_bytes: usize::MAX,
    };
    let started = std::time::Instant::now();
    for chunk in docs.chunks(BULK) {
        for r in request::build(chunk, limits) {
            let outcomes = service.send(&r).await;
            anyhow::ensure!(
                outcomes.iter().all(Outcome::is_success),
                "raw bulk failed: {:?}",
                outcomes.iter().find(|o| !o.is_success())
            );
        }
    }
    Ok(docs.len() as f64 / started.elapsed().as_secs_f64())
}

/// A spawned `anineplus-indexer` binary; killed if still running when dropped.
pub struct IndexerProcess {
    pub child: Child,
    pub metrics_url: String,
}

impl IndexerProcess {
    /// Starts the binary over the topics under `topic_prefix`, into the indices under
    /// `index_prefix`, in consumer group `group`, with its metrics on a free port.
    pub fn spawn(
        stack: &Stack,
        topic_prefix: &str,
        index_prefix: &str,
        group: &str,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_anineplus-indexer"))
            .env("RUST_LOG", "warn,rdkafka=error")
            .args([
                "--kafka-brokers",
                &stack.kafka_brokers,
                "--elasticsearch-url",
                &stack.search_url,
                "--schema-registry-url",
                &stack.registry_url,
                "--group",
                group,
                "--index-prefix",
                index_prefix,
                "--topic-prefix",
                topic_prefix,
                "--metrics-listen",
                &format!("127.0.0.1:{port}"),
                "--bulk-docs",
                &BULK.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()?;
        Ok(IndexerProcess {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        })
    }

    /// Its peak resident memory so far, in MiB.
    pub fn peak_rss_mb(&self) -> f64 {
        anineplus_testkit::bench::peak_rss_mb(&self.child.id().to_string())
    }

    /// SIGTERM, then up to 10 s for it to drain and exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// A fresh consumer group name for one arm.
pub fn group(arm: &str) -> String {
    unique(&format!("bench-{arm}"))
}

/// Deletes every index under `index_prefixes` and every topic under `topic_prefix`: what a
/// bench made, on every way out.
pub async fn clean_up(
    stack: &Stack,
    client: &Elasticsearch,
    topic_prefix: &str,
    index_prefixes: &[String],
) {
    for p in index_prefixes {
        anineplus_indexer::indices::drop_all(client, p).await;
    }
    if let Err(e) = topics::delete_prefixed(&stack.kafka_brokers, topic_prefix).await {
        eprintln!("bench: could not delete the topics under {topic_prefix}: {e}");
    }
}
