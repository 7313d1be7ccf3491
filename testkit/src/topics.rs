//! Topics of a benchmark's or test's own: created, filled and deleted by name.

use std::time::Duration;

use anineplus_connectors::kafka;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;

use crate::unique;

/// Most sends awaited at once while filling a topic.
const IN_FLIGHT: usize = 10_000;

/// Creates `topic` with `partitions` partitions (replication 1).
pub async fn create(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    create_replicated(brokers, topic, partitions, 1, &[]).await
}

/// Creates `topic` with `partitions` partitions of `replication` replicas each and the
/// topic settings `configs` (e.g. `("min.insync.replicas", "1")`).
pub async fn create_replicated(
    brokers: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let admin: AdminClient<DefaultClientContext> = kafka::producer_config(brokers).create()?;
    for result in admin.create_topics(&[new], &AdminOptions::new()).await? {
        result.map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    }
    Ok(())
}

/// Produces every `(key, value)` of `records` to `topic` (the project's idempotent producer,
/// 20 ms linger) and waits until Kafka acknowledged them all.
pub async fn produce(
    brokers: &str,
    topic: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let producer: kafka::Producer =
        kafka::Producer::create(kafka::producer_config(brokers).set("linger.ms", "20"))?;
    let mut pending = FuturesUnordered::new();
    for (key, value) in records {
        let producer = producer.clone();
        pending.push(async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&value),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        });
        if pending.len() >= IN_FLIGHT {
            while let Some(sent) = pending.next().await {
                sent?;
            }
        }
    }
    while let Some(sent) = pending.next().await {
        sent?;
    }
    Ok(())
}

/// Deletes every topic whose name starts with `prefix`.
pub async fn delete_prefixed(brokers: &str, prefix: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer =
        kafka::consumer_config(brokers, &unique("testkit-meta")).create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let names: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| n.starts_with(prefix))
        .collect();
    if !names.is_empty() {
        let admin: AdminClient<DefaultClientContext> = kafka::producer_config(brokers).create()?;
        admin.delete_topics(&names, &AdminOptions::new()).await?;
    }
    Ok(())
}
