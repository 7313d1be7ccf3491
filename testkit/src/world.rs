//! [`KafkaWorld`]: one test's own Kafka world for the pipelines' integration tests: topics
//! under a unique prefix (every aggregate topic created with [`PARTITIONS`] partitions), a
//! unique consumer group, the registry codec, helpers to produce, read records and
//! committed offsets, and to delete the topics again.

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::{Codec, Topic, TopicValue};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::{Stack, unique};

/// Partitions of every aggregate topic a [`KafkaWorld`] creates.
pub const PARTITIONS: i32 = 3;

/// One test's topics, group and codec.
pub struct KafkaWorld {
    /// The services.
    pub stack: Stack,
    /// Prefix of every topic of this test (`<unique>.`).
    pub topic_prefix: String,
    /// The consumer group of the pipeline under test.
    pub group: String,
    /// The registry codec.
    pub codec: Codec,
    producer: kafka::Producer,
}

impl KafkaWorld {
    /// Starts test logging (`RUST_LOG`, default `warn`), checks Kafka and the registry and
    /// creates every aggregate topic under a new prefix; the group is `<group_prefix>-<uuid>`.
    pub async fn new(group_prefix: &str) -> Self {
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
        KafkaWorld {
            codec: Codec::new(&stack.registry_url),
            producer: kafka::Producer::new(&stack.kafka_brokers).unwrap(),
            topic_prefix,
            group: unique(group_prefix),
            stack,
        }
    }

    /// This test's name of `topic`.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
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
        self.committed_by(&self.group, topic)
    }

    /// [`KafkaWorld::committed`] of another consumer group (a second pipeline's).
    pub fn committed_by(&self, group: &str, topic: &str) -> (i64, i64) {
        let consumer: BaseConsumer = kafka::consumer_config(&self.stack.kafka_brokers, group)
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
        self.wait_committed_by(&self.group, topic, limit).await
    }

    /// Polls until `group` committed every record of `topic`, for up to `limit`.
    pub async fn wait_committed_by(&self, group: &str, topic: &str, limit: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (committed, end) = self.committed_by(group, topic);
            if committed == end {
                return committed;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{topic}: {group} committed {committed} of {end}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Deletes every topic under this test's prefix: sources, retry, dead-letter,
    /// repartition.
    pub async fn delete_topics(&self) {
        let admin: AdminClient<DefaultClientContext> =
            kafka::producer_config(&self.stack.kafka_brokers)
                .create()
                .unwrap();
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
