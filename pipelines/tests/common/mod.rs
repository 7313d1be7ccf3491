//! Shared harness of the pipelines' integration tests: unique topics, group and indices
//! per test, an in-process indexer, helpers to produce, search, read dead letters and
//! committed offsets.

#![allow(dead_code, unreachable_pub)]

pub mod api;

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_pipelines::dead_letter::RetryPolicy;
use anineplus_pipelines::indexer::{self, IndexerConfig, Running};
use anineplus_schemas::events::{AnimeData, AnimeDeleted, Envelope, samples};
use anineplus_schemas::{Codec, Topic, TopicValue};
use anineplus_testkit::{Stack, unique};
use elasticsearch::Elasticsearch;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PARTITIONS: i32 = 3;

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

/// One test's world: its topics, group and indices.
pub struct Harness {
    pub stack: Stack,
    pub topic_prefix: String,
    pub index_prefix: String,
    pub group: String,
    pub codec: Codec,
    pub search: Elasticsearch,
    producer: FutureProducer,
}

/// An indexer running in this process.
pub struct Indexer {
    pub shutdown: CancellationToken,
    pub running: Running,
    task: JoinHandle<anineplus_pipelines::Result<()>>,
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
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let stack = Stack::from_env();
        stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
        stack.registry().await.unwrap_or_else(|e| panic!("{e}"));
        let (search, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
        let topic_prefix = format!("{}.", unique("t"));
        let admin: AdminClient<DefaultClientContext> = kafka::producer_config(&stack.kafka_brokers)
            .create()
            .unwrap();
        let names: Vec<String> = Topic::ALL
            .iter()
            .map(|t| format!("{topic_prefix}{}", t.name()))
            .collect();
        let new: Vec<_> = names
            .iter()
            .map(|n| NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1)))
            .collect();
        let created = admin
            .create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
        assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
        Harness {
            codec: Codec::new(&stack.registry_url),
            producer: kafka::producer_config(&stack.kafka_brokers)
                .create()
                .unwrap(),
            topic_prefix,
            index_prefix: unique("ix"),
            group: unique("indexer"),
            search,
            stack,
        }
    }

    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
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

    /// Produces an event framed with its topic's registered schema, keyed by `key`.
    pub async fn send<T: TopicValue>(&self, key: &str, value: &T) {
        let bytes = self.codec.encode(value).await.expect("encode");
        self.send_raw(T::TOPIC, key, &bytes).await;
    }

    /// Produces raw bytes to an aggregate topic, with a correlation id header.
    pub async fn send_raw(&self, topic: Topic, key: &str, bytes: &[u8]) {
        let headers = OwnedHeaders::new().insert(Header {
            key: "correlation-id",
            value: Some(&format!("corr-{key}")),
        });
        self.producer
            .send(
                FutureRecord::to(&self.topic(topic))
                    .key(key)
                    .payload(bytes)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
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

    /// Reads `n` records of `topic` from the start: `(key, value, headers)`.
    pub async fn read(
        &self,
        topic: &str,
        n: usize,
    ) -> Vec<(Option<Vec<u8>>, Vec<u8>, Vec<(String, String)>)> {
        let consumer: StreamConsumer =
            kafka::consumer_config(&self.stack.kafka_brokers, &unique("reader"))
                .create()
                .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut out = Vec::new();
        // 60 s for each record, as long as records keep coming.
        let mut deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while out.len() < n {
            let m = match tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} records on {topic}", out.len()))
            {
                Ok(m) => m,
                // A topic the pipeline is still creating: the consumer says so, then finds it.
                Err(e) => {
                    eprintln!("reading {topic}: {e}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
        out
    }

    /// The group's committed offsets on `topic`, summed over partitions, and the end offsets.
    pub fn committed(&self, topic: &str) -> (i64, i64) {
        let consumer: BaseConsumer = kafka::consumer_config(&self.stack.kafka_brokers, &self.group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        let sum = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        let end = (0..PARTITIONS)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum();
        (sum, end)
    }

    /// Polls until the group committed every record of `topic` (30 s at most).
    pub async fn wait_committed(&self, topic: &str) -> i64 {
        self.wait_committed_within(topic, Duration::from_secs(30))
            .await
    }

    /// Polls until the group committed every record of `topic`, for up to `limit`.
    pub async fn wait_committed_within(&self, topic: &str, limit: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (committed, end) = self.committed(topic);
            if committed == end {
                return committed;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{topic}: committed {committed} of {end}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Harness {
    /// Deletes this test's indices, index templates and topics (called at the end of a
    /// passing test; a failing one leaves them for inspection).
    pub async fn cleanup(&self) {
        let names: Vec<String> = indexer::indices::Index::ALL
            .iter()
            .map(|i| i.alias(&self.index_prefix))
            .collect();
        for alias in &names {
            let _ = self
                .search
                .indices()
                .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[
                    &format!("{alias}-v1"),
                ]))
                .send()
                .await;
            let _ = self
                .search
                .indices()
                .delete_index_template(
                    elasticsearch::indices::IndicesDeleteIndexTemplateParts::Name(alias),
                )
                .send()
                .await;
        }
        let admin: AdminClient<DefaultClientContext> =
            kafka::producer_config(&self.stack.kafka_brokers)
                .create()
                .unwrap();
        // Every topic under this test's prefix: sources, retry, dead-letter, repartition.
        let topics: Vec<String> = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|m| {
                m.topics()
                    .iter()
                    .map(|t| t.name().to_owned())
                    .filter(|n| n.starts_with(&self.topic_prefix))
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !names.is_empty() {
            let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
        }
    }
}

/// The value of header `name`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
