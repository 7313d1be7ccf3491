//! The [`Sink`] trait: where a topology's items end up; and [`TopicSink`], the sink of a
//! keyed step (a repartition through a Kafka topic).

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

pub use anineplus_connectors::Outcome;
use anineplus_connectors::kafka;
use anineplus_schemas::{Codec, TopicValue};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

/// A destination that writes batches and answers per item.
///
/// `write` must return exactly one [`Outcome`] per item, in order. The runtime retries the
/// `Retry` items alone, so writes must be idempotent (versioned, upserts, ...).
pub trait Sink: Send + Sync + 'static {
    /// What the sink writes.
    type Item: Clone + Send + Sync + 'static;

    /// Writes `items`; the outcome of `items[i]` is at `i`.
    fn write(&self, items: &[Self::Item]) -> impl Future<Output = Vec<Outcome>> + Send;

    /// Kafka topics the sink writes to, created with the pipeline's own when missing.
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// How many batches the runtime may write at once. 1 (the default) keeps the order of
    /// writes across batches, which a sink that appends (a topic) needs for per-key order;
    /// a sink whose writes are versioned (the newest version wins whatever the order they
    /// arrive in) may allow more, and keeps the destination busy while a batch is in flight.
    /// Offsets are committed in order either way.
    fn concurrent_writes(&self) -> usize {
        1
    }

    /// Partitions were taken from this instance (a rebalance), after the offsets its sink
    /// settled were committed: their next records go to another instance. A sink that keeps
    /// state per partition drops it here. Called on the consumer's thread: return quickly.
    fn revoked(&self, _partitions: &[crate::offsets::Partition]) {}
}

/// A value and the key it is partitioned by (see [`crate::Stream::key_by`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    /// The Kafka key: every record of one key goes to one partition.
    pub key: String,
    /// The value.
    pub value: T,
}

/// Produces keyed values to one Kafka topic, Avro-encoded through the registry with their
/// type's schema (the subject of `T`'s own topic, e.g. `episode-value`, so a repartition
/// topic carries the same schema as its source), with the project's idempotent producer.
///
/// With [`crate::Stream::key_by`] it makes a keyed step: a pipeline reading the topic sees
/// every record of a key on one partition, in the order they were written, on one consumer:
/// where per-key processing (and later keyed state) belongs. Records are enqueued in batch
/// order and the producer is idempotent, so each key's order survives the producer's own
/// retries; a record whose delivery still fails is retried by the runtime after the rest
/// of its batch (a key's order holds unless delivery fails for 30 s).
pub struct TopicSink<T> {
    producer: kafka::Producer,
    topic: String,
    codec: Codec,
    value: PhantomData<fn(T)>,
}

impl<T> TopicSink<T> {
    /// A sink producing to `topic` on `brokers`, encoding with `codec`'s registry.
    pub fn new(brokers: &str, topic: impl Into<String>, codec: Codec) -> crate::Result<Self> {
        Ok(TopicSink {
            producer: kafka::Producer::new(brokers)?,
            topic: topic.into(),
            codec,
            value: PhantomData,
        })
    }
}

impl<T: TopicValue + Clone + Send + Sync + 'static> Sink for TopicSink<T> {
    type Item = Keyed<T>;

    async fn write(&self, items: &[Keyed<T>]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; items.len()];
        let mut deliveries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let bytes = match self.codec.encode(&item.value).await {
                Ok(bytes) => bytes,
                Err(e) if e.is_retryable() => {
                    outcomes[i] = Outcome::Unavailable(format!("registry: {e}"));
                    continue;
                }
                Err(e) => {
                    outcomes[i] = Outcome::Permanent(format!("encoding: {e}"));
                    continue;
                }
            };
            // Enqueued one by one, in order: the partition's order is the batch's.
            let mut record = FutureRecord::to(&self.topic).key(&item.key).payload(&bytes);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push((i, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        outcomes[i] = Outcome::Retry(format!("producing to {}: {e}", self.topic));
                        break;
                    }
                }
            }
        }
        for (i, delivery) in deliveries {
            outcomes[i] = match delivery.await {
                Ok(Ok(_)) => Outcome::Done,
                Ok(Err((e, _))) => Outcome::Retry(format!("producing to {}: {e}", self.topic)),
                Err(_) => Outcome::Retry(format!("producing to {}: delivery lost", self.topic)),
            };
        }
        outcomes
    }

    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }
}
