//! Shared harness of the indexer's integration tests (and of the sync and dead-letter
//! tools' tests, which include this module by path): the Kafka world of
//! [`anineplus_testkit::world`] plus unique indices per test, an in-process indexer and
//! helpers to search.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod api;

use std::ops::Deref;
use std::time::Duration;

use anineplus_indexer::{self as indexer, IndexerConfig, Running};
use anineplus_schemas::events::{AnimeData, AnimeDeleted, Envelope, samples};
use anineplus_streams::dead_letter::RetryPolicy;
use anineplus_testkit::unique;
use anineplus_testkit::world::KafkaWorld;
pub use anineplus_testkit::world::{PARTITIONS, header};
use elasticsearch::Elasticsearch;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `anime.updated` of `id` at `version`, titled `title`.
pub fn anime(id: &str, version: i64, title: &str) -> Envelope<AnimeData> {
    let mut e = samples::anime_updated(0);
    e.aggregate_id = id.into();
    e.aggregate_version = version;
    if let AnimeData::AnimeUpdated(s) = &mut e.data {
        s.anime_id = id.into();
        s.title = title.into();
    }
    e
}

/// `anime.deleted` of `id` at `version`.
pub fn anime_deleted(id: &str, version: i64) -> Envelope<AnimeData> {
    let data = AnimeData::AnimeDeleted(AnimeDeleted {
        anime_id: id.into(),
    });
    samples::envelope("anime.deleted", id, version, data)
}

/// One test's world: its topics, group and codec (through `Deref`) and its indices.
pub struct Harness {
    pub kafka: KafkaWorld,
    pub index_prefix: String,
    pub search: Elasticsearch,
}

impl Deref for Harness {
    type Target = KafkaWorld;

    fn deref(&self) -> &KafkaWorld {
        &self.kafka
    }
}

/// An indexer running in this process.
pub struct Indexer {
    pub shutdown: CancellationToken,
    pub running: Running,
    task: JoinHandle<anineplus_streams::Result<()>>,
}

impl Indexer {
    /// Cancels it and waits for the drain and final commit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("indexer stops within 60 s")
            .expect("indexer task")
            .expect("indexer ran without error");
    }
}

impl Harness {
    pub async fn new() -> Self {
        let kafka = KafkaWorld::new("indexer").await;
        let (search, _) = kafka.stack.search().await.unwrap_or_else(|e| panic!("{e}"));
        Harness {
            kafka,
            index_prefix: unique("ix"),
            search,
        }
    }

    pub fn dlq(&self) -> String {
        format!("{}indexer.dlq", self.topic_prefix)
    }

    pub fn alias(&self, name: &str) -> String {
        format!("{}-{name}", self.index_prefix)
    }

    pub fn config(&self) -> IndexerConfig {
        IndexerConfig {
            kafka_brokers: self.stack.kafka_brokers.clone(),
            elasticsearch_url: self.stack.search_url.clone(),
            schema_registry_url: self.stack.registry_url.clone(),
            group: self.group.clone(),
            index_prefix: self.index_prefix.clone(),
            topic_prefix: self.topic_prefix.clone(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            bulk_docs: 500,
            bulk_bytes: 5 * 1024 * 1024,
            topic_replication: -1,
            retry: RetryPolicy {
                in_place_attempts: 2,
                in_place_min_delay: Duration::from_millis(50),
                in_place_max_delay: Duration::from_millis(200),
                delays: vec![Duration::from_secs(1)],
            },
        }
    }

    /// Starts an indexer; returns once its metrics endpoint is up.
    pub async fn start_indexer(&self) -> Indexer {
        let shutdown = CancellationToken::new();
        let (pipeline, running) = indexer::prepare(&self.config(), &shutdown)
            .await
            .expect("indexer set-up");
        let task = tokio::spawn(pipeline.run(shutdown.clone()));
        Indexer {
            shutdown,
            running,
            task,
        }
    }

    /// `GET <alias>/_doc/<id>`: `(aggregateVersion, _source)` or `None`. The field, not
    /// `_version`: documents with denormalised fields are written without external versions.
    pub async fn doc(&self, index: &str, id: &str) -> Option<(i64, Value)> {
        let response = self
            .search
            .get(elasticsearch::GetParts::IndexId(&self.alias(index), id))
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        (body["found"] == json!(true)).then(|| {
            let source = body["_source"].clone();
            (source["aggregateVersion"].as_i64().unwrap_or(-1), source)
        })
    }

    /// Polls until `doc(index, id)` satisfies `ok`, for up to 60 s.
    pub async fn wait_doc(
        &self,
        index: &str,
        id: &str,
        ok: impl Fn(i64, &Value) -> bool,
    ) -> (i64, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            last = self.doc(index, id).await;
            if let Some((v, s)) = &last
                && ok(*v, s)
            {
                return (*v, s.clone());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{index}/{id} never matched; last: {last:?}");
    }

    /// Refreshes `index`'s alias (so searches see every write); returns the alias.
    async fn refreshed(&self, index: &str) -> String {
        let alias = self.alias(index);
        self.search
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[
                &alias,
            ]))
            .send()
            .await
            .unwrap();
        alias
    }

    /// Live (not deleted) documents matching `query` in `index`, after a refresh.
    pub async fn search_live(&self, index: &str, query: Value) -> Vec<Value> {
        let alias = self.refreshed(index).await;
        let body: Value = self
            .search
            .search(elasticsearch::SearchParts::Index(&[&alias]))
            .body(json!({ "query": anineplus_connectors::search_sink::live(query) }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["hits"]["hits"].as_array().cloned().unwrap_or_default()
    }

    /// Documents (live and tombstones) of `index` matching `query`, after a refresh.
    pub async fn count(&self, index: &str, query: Value) -> usize {
        let alias = self.refreshed(index).await;
        let body: Value = self
            .search
            .count(elasticsearch::CountParts::Index(&[&alias]))
            .body(json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["count"].as_u64().unwrap_or(0) as usize
    }
}

impl Harness {
    /// Deletes this test's indices, index templates and topics (called at the end of a
    /// passing test; a failing one leaves them for inspection).
    pub async fn cleanup(&self) {
        indexer::indices::drop_all(&self.search, &self.index_prefix).await;
        self.kafka.delete_topics().await;
    }
}
