//! The operators' view of a dead-letter topic: scan with filters, count, inspect, replay to
//! the original topic, purge. The `anineplus-dlq` binary is a thin clap front end.
//!
//! - [`DeadLetterRecord`]: one record of a `<pipeline>.dlq` topic with its headers parsed.
//! - [`Filter`]: error class, key, original topic, time window.
//! - [`scan`]: reads every partition from its start to the end offsets taken when the scan
//!   began (a snapshot: records arriving meanwhile wait for the next run), with progress.
//! - [`replay`]: produces the selected records to their original topic with their original
//!   key, value and headers (plus `replayed-from`), so the pipeline processes them again; a
//!   record that fails again goes back to the dead-letter topic. Nothing is deleted.
//! - [`purge`]: deletes the records of the topic up to the snapshot's end offsets (Kafka
//!   can only delete a prefix of a partition, so purge ignores filters).

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::events::LogRecord;
use anineplus_schemas::events::{
    AnimeData, CommentData, Envelope, EpisodeData, OrganizationData, SubscriptionData, UserData,
};
use anineplus_schemas::{Codec, Topic};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::dead_letter::header;
use crate::record::RawRecord;
use crate::{Error, Result};

/// Header added to replayed records: `<dlq topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "replayed-from";

/// One dead letter, its context parsed from the headers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRecord {
    /// The record as stored in the dead-letter topic.
    pub raw: RawRecord,
}

impl DeadLetterRecord {
    /// A header's text, or `-`.
    pub fn get(&self, name: &str) -> &str {
        self.raw.header(name).unwrap_or("-")
    }

    /// `retryable` or `permanent`.
    pub fn class(&self) -> &str {
        self.get(header::ERROR_CLASS)
    }

    /// The original topic.
    pub fn original_topic(&self) -> &str {
        self.get(header::ORIGINAL_TOPIC)
    }

    /// The key as text.
    pub fn key(&self) -> String {
        self.raw
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }

    /// Last failure time, ms since the epoch.
    pub fn last_failure_ms(&self) -> Option<i64> {
        self.raw.header(header::LAST_FAILURE)?.parse().ok()
    }

    /// One line for `list`.
    pub fn summary(&self) -> String {
        format!(
            "{}/{}\tkey={}\t{}\tattempts={}\tfrom={}:{}/{}\tat={}\t{}",
            self.raw.partition,
            self.raw.offset,
            self.key(),
            self.class(),
            self.get(header::ATTEMPTS),
            self.original_topic(),
            self.get(header::ORIGINAL_PARTITION),
            self.get(header::ORIGINAL_OFFSET),
            self.get(header::LAST_FAILURE),
            self.get(header::ERROR_MESSAGE),
        )
    }

    /// The headers and the decoded value (or why it does not decode) for `inspect`.
    pub async fn inspect(&self, codec: &Codec, topic_prefix: &str) -> String {
        let mut out = format!(
            "dead letter {}/{}/{}\nkey: {}\n",
            self.raw.topic,
            self.raw.partition,
            self.raw.offset,
            self.key()
        );
        out.push_str("headers:\n");
        for (k, v) in &self.raw.headers {
            out.push_str(&format!("  {k}: {}\n", String::from_utf8_lossy(v)));
        }
        let topic = self
            .original_topic()
            .strip_prefix(topic_prefix)
            .and_then(Topic::from_name);
        let decoded = match topic {
            Some(topic) => decode_json(codec, topic, self.raw.value()).await,
            None => Err(format!("unknown original topic {}", self.original_topic())),
        };
        match decoded {
            Ok(value) => out.push_str(&format!(
                "value (decoded):\n{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )),
            Err(reason) => {
                let preview: String = String::from_utf8_lossy(self.raw.value())
                    .chars()
                    .take(200)
                    .collect();
                out.push_str(&format!(
                    "value does not decode: {reason}\nvalue ({} bytes, lossy): {preview}\n",
                    self.raw.value().len()
                ));
            }
        }
        out
    }
}

async fn decode_json(
    codec: &Codec,
    topic: Topic,
    bytes: &[u8],
) -> std::result::Result<serde_json::Value, String> {
    fn json<T: serde::Serialize>(
        v: std::result::Result<T, anineplus_schemas::DecodeError>,
    ) -> std::result::Result<serde_json::Value, String> {
        v.map_err(|e| e.to_string())
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
    }
    match topic {
        Topic::User => json(codec.decode::<Envelope<UserData>>(bytes).await),
        Topic::Organization => json(codec.decode::<Envelope<OrganizationData>>(bytes).await),
        Topic::Anime => json(codec.decode::<Envelope<AnimeData>>(bytes).await),
        Topic::Episode => json(codec.decode::<Envelope<EpisodeData>>(bytes).await),
        Topic::Comment => json(codec.decode::<Envelope<CommentData>>(bytes).await),
        Topic::Subscription => json(codec.decode::<Envelope<SubscriptionData>>(bytes).await),
        Topic::Logs => json(codec.decode::<LogRecord>(bytes).await),
    }
}

/// Which dead letters a command applies to; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `retryable` or `permanent`.
    pub class: Option<String>,
    /// The exact key.
    pub key: Option<String>,
    /// The exact original topic.
    pub original_topic: Option<String>,
    /// Failed at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Failed before (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only this partition and offset.
    pub at: Option<(i32, i64)>,
}

impl Filter {
    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetterRecord) -> bool {
        let at = letter.last_failure_ms().unwrap_or_default();
        self.class.as_deref().is_none_or(|c| c == letter.class())
            && self.key.as_deref().is_none_or(|k| k == letter.key())
            && self
                .original_topic
                .as_deref()
                .is_none_or(|t| t == letter.original_topic())
            && self.since_ms.is_none_or(|s| at >= s)
            && self.until_ms.is_none_or(|u| at < u)
            && self
                .at
                .is_none_or(|(p, o)| p == letter.raw.partition && o == letter.raw.offset)
    }
}

/// The end offsets of every partition of `topic`: `(partition, low, high)`.
pub fn end_offsets(brokers: &str, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    let consumer: BaseConsumer = kafka::consumer_config(brokers, "anineplus-dlq").create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::Setup(format!("topic {topic} does not exist")));
    }
    partitions
        .into_iter()
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            Ok((p, low, high))
        })
        .collect()
}

/// Reads the records of `topic` present when called that match `filter`, calling
/// `progress(scanned, total)` as it goes. Blocking: call from `spawn_blocking` in async code.
pub fn scan(
    brokers: &str,
    topic: &str,
    filter: &Filter,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<DeadLetterRecord>> {
    let ends = end_offsets(brokers, topic)?;
    let total: u64 = ends.iter().map(|(_, l, h)| (h - l) as u64).sum();
    let mut config = kafka::consumer_config(brokers, "anineplus-dlq");
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    for (p, low, high) in &ends {
        if high > low {
            assignment.add_partition_offset(topic, *p, Offset::Offset(*low))?;
        }
    }
    consumer.assign(&assignment)?;
    let mut remaining: std::collections::HashMap<i32, i64> = ends
        .iter()
        .filter(|(_, l, h)| h > l)
        .map(|(p, _, h)| (*p, *h))
        .collect();
    let mut out = Vec::new();
    let mut scanned = 0u64;
    let mut idle = 0;
    while !remaining.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            idle += 1;
            if idle > 60 {
                return Err(Error::Setup(format!(
                    "{topic}: no records for 30 s before the end"
                )));
            }
            continue;
        };
        idle = 0;
        let message = message?;
        let partition = message.partition();
        let offset = message.offset();
        if let Some(end) = remaining.get(&partition) {
            if offset >= *end {
                remaining.remove(&partition);
                continue;
            }
            let letter = DeadLetterRecord {
                raw: RawRecord::from_message(&message),
            };
            scanned += 1;
            if scanned.is_multiple_of(1000) || scanned == total {
                progress(scanned, total);
            }
            if filter.matches(&letter) {
                out.push(letter);
            }
            if offset + 1 >= *end {
                remaining.remove(&partition);
            }
        }
    }
    progress(scanned, total);
    Ok(out)
}

/// Produces `letters` to their original topics (original key, value, headers, plus
/// [`REPLAYED_FROM`]), calling `progress(done, total)`; returns how many were sent.
pub async fn replay(
    brokers: &str,
    letters: &[DeadLetterRecord],
    mut progress: impl FnMut(u64, u64),
) -> Result<u64> {
    let producer: FutureProducer = kafka::producer_config(brokers).create()?;
    let total = letters.len() as u64;
    for (i, letter) in letters.iter().enumerate() {
        let from = format!(
            "{}/{}/{}",
            letter.raw.topic, letter.raw.partition, letter.raw.offset
        );
        let mut headers = OwnedHeaders::new();
        for (k, v) in &letter.raw.headers {
            if !header::ALL.contains(&k.as_str()) && k != REPLAYED_FROM {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
        }
        headers = headers.insert(Header {
            key: REPLAYED_FROM,
            value: Some(&from),
        });
        let mut record = FutureRecord::to(letter.original_topic()).headers(headers);
        if let Some(key) = &letter.raw.key {
            record = record.key(key);
        }
        if let Some(payload) = &letter.raw.payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        progress(i as u64 + 1, total);
    }
    Ok(total)
}

/// Deletes every record of `topic` below the end offsets taken now; returns how many.
pub async fn purge(brokers: &str, topic: &str) -> Result<u64> {
    let ends = end_offsets(brokers, topic)?;
    let mut list = TopicPartitionList::new();
    for (p, _, high) in &ends {
        list.add_partition_offset(topic, *p, Offset::Offset(*high))?;
    }
    let admin: AdminClient<DefaultClientContext> = kafka::producer_config(brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let result = admin.delete_records(&list, &options).await?;
    for element in result.elements() {
        element.error()?;
    }
    Ok(ends.iter().map(|(_, l, h)| (h - l) as u64).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(class: &str, key: &str, at: i64) -> DeadLetterRecord {
        DeadLetterRecord {
            raw: RawRecord {
                topic: "indexer.dlq".into(),
                partition: 1,
                offset: 7,
                key: Some(key.as_bytes().to_vec()),
                payload: Some(b"x".to_vec()),
                headers: vec![
                    (header::ERROR_CLASS.into(), class.as_bytes().to_vec()),
                    (header::ORIGINAL_TOPIC.into(), b"anime".to_vec()),
                    (header::LAST_FAILURE.into(), at.to_string().into_bytes()),
                ],
            },
        }
    }

    #[test]
    fn filters_combine() {
        let l = letter("permanent", "a1", 1000);
        assert!(Filter::default().matches(&l));
        let f = Filter {
            class: Some("permanent".into()),
            key: Some("a1".into()),
            original_topic: Some("anime".into()),
            since_ms: Some(1000),
            until_ms: Some(1001),
            at: Some((1, 7)),
        };
        assert!(f.matches(&l));
        assert!(
            !Filter {
                class: Some("retryable".into()),
                ..Default::default()
            }
            .matches(&l)
        );
        assert!(
            !Filter {
                since_ms: Some(1001),
                ..Default::default()
            }
            .matches(&l)
        );
        assert!(
            !Filter {
                at: Some((1, 8)),
                ..Default::default()
            }
            .matches(&l)
        );
        assert!(l.summary().contains("key=a1\tpermanent"), "{}", l.summary());
    }
}
