//! The operators' view of a dead-letter topic: scan with filters, count, inspect, replay to
//! the original topic or into a topology's sink, purge. The `anineplus-dlq` binary is a thin
//! clap front end.
//!
//! - [`DeadLetterRecord`]: one record of a `<pipeline>.dlq` topic with its headers parsed.
//! - [`Filter`]: error class, key, original topic, time window.
//! - [`scan`]: reads every partition from its start to the end offsets taken when the scan
//!   began (a snapshot: records arriving meanwhile wait for the next run), with progress.
//! - [`replay`]: produces the selected records to their original topic with their original
//!   key, value and headers (plus `replayed-from`), so the pipeline processes them again; a
//!   record that fails again goes back to the dead-letter topic. Nothing is deleted.
//! - [`SinkReplay`]: replays the selected records straight into a pipeline's sink (the
//!   indexer's: `anineplus-dlq replay --to sink`), decoding each value with the step the
//!   topology binds to its original topic and writing the results through the topology's
//!   sink, without the original topic; a record that fails again is produced back to the
//!   dead-letter topic with updated headers. Nothing is deleted either.
//! - Replays mark what they covered: per partition of the dead-letter topic, the offset
//!   below which every dead letter was replayed (to the topic or the sink, whether it
//!   passed or returned to the topic as a new letter), kept as the committed offsets of the
//!   consumer group [`REPLAYED_GROUP`]. A filtered replay moves the mark only over the
//!   contiguous run of letters it replayed.
//! - [`purge`]: deletes, per partition, the dead letters below that mark and nothing else
//!   (Kafka can only delete a prefix of a partition, so purge ignores filters): a letter no
//!   replay covered (arrived after the replay's snapshot, or skipped by its filter) is never
//!   deleted, nor anything after it. [`purge_all`] deletes everything present, replayed or
//!   not (`anineplus-dlq purge --unreplayed-too --yes`), to discard letters on purpose.

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::{Codec, Topic, wire};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::dead_letter::{self, DeadLetter, RetryPolicy, header};
use crate::failure::{ErrorClass, Failure, Flattened};
use crate::record::RawRecord;
use crate::retry;
use crate::sink::{Outcome, Sink};
use crate::topology::Topology;
use crate::topology::{Coordinates, Input};
use crate::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Header added to replayed records: `<dlq topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "replayed-from";

/// Header added to records sent by a redrive job: the job's id. The pipelines keep the
/// headers of the records they dead-letter, so a redriven record that fails again comes
/// back to the dead-letter topic carrying it.
pub const REDRIVE_ID: &str = "redrive-id";

/// The consumer group whose committed offsets on a dead-letter topic mark, per partition,
/// how far replays covered it (everything below was replayed). Kafka drops the offsets of
/// a group without members after `offsets.retention.minutes` (7 days by default): a mark
/// older than that is gone, and purge then deletes nothing until the next replay (safe).
pub const REPLAYED_GROUP: &str = "anineplus-dlq.replayed";

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

    /// The [`fingerprint`] of its failure.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.class(), self.get(header::ERROR_MESSAGE))
    }

    /// The id of the redrive job that sent it last, if one did.
    pub fn redrive_id(&self) -> Option<&str> {
        self.raw.header(REDRIVE_ID)
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
            Some(topic) => codec.decode_json(topic, self.raw.value()).await,
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

/// The fingerprint of a failure: its error class and its message normalised, so that the
/// dead letters of one cause group together whatever record they are about. In the
/// message, quoted values (`"…"`, `'…'`, `` `…` ``) become `"?"`, UUIDs `<uuid>`, hexadecimal
/// runs of 16 digits or more `<hex>`, and every other run of digits `<n>`; runs of white
/// space become one space; hexadecimal numbers (`0x6d`) count as numbers.
/// `class: normalised message`.
pub fn fingerprint(class: &str, message: &str) -> String {
    format!("{class}: {}", normalise_message(message))
}

/// The message part of [`fingerprint`].
pub fn normalise_message(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`')
            && let Some(close) = chars[i + 1..].iter().position(|d| *d == c)
        {
            out.push_str("\"?\"");
            i += close + 2;
            continue;
        }
        if c.is_ascii_hexdigit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let run = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_hexdigit() || **d == '-')
                .count();
            let word: String = chars[i..i + run].iter().collect();
            let ends_word = chars
                .get(i + run)
                .is_none_or(|d| !d.is_ascii_alphanumeric());
            if ends_word && uuid_like(&word) {
                out.push_str("<uuid>");
                i += run;
                continue;
            }
            let hex = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            let ends_hex = chars
                .get(i + hex)
                .is_none_or(|d| !d.is_ascii_alphanumeric());
            if hex >= 16 && ends_hex && chars[i..i + hex].iter().any(|d| d.is_ascii_digit()) {
                out.push_str("<hex>");
                i += hex;
                continue;
            }
        }
        if c == '0'
            && chars.get(i + 1) == Some(&'x')
            && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit)
        {
            i += 2;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            out.push_str("<n>");
            continue;
        }
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str("<n>");
            continue;
        }
        if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            out.push(' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim().to_owned()
}

/// `8-4-4-4-12` hexadecimal digits.
fn uuid_like(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
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
    /// Only letters carrying this [`REDRIVE_ID`] (those that came back from that job).
    pub redrive_id: Option<String>,
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
            && self
                .redrive_id
                .as_deref()
                .is_none_or(|id| letter.redrive_id() == Some(id))
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
        return Err(Error::Topic {
            topic: topic.to_owned(),
            reason: "does not exist".into(),
        });
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
                return Err(Error::Unavailable(format!(
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
    progress: impl FnMut(u64, u64),
) -> Result<u64> {
    let report = replay_with(brokers, letters, &ReplayOptions::default(), progress).await?;
    Ok(report.sent)
}

/// How [`replay_with`] sends.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Set as the [`REDRIVE_ID`] header of every record sent (replacing one from an earlier
    /// redrive), so the dead letters that come back can be told apart by job.
    pub redrive_id: Option<String>,
    /// At most this many records per second (`None`: as fast as the broker takes them).
    pub max_per_second: Option<u32>,
    /// Stops before the next record once cancelled; what was sent is reported and marked.
    pub stop: Option<CancellationToken>,
}

/// Where one replayed record landed in its original topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The original topic.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// What [`replay_with`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records sent (a prefix of the letters given: all of them unless stopped).
    pub sent: u64,
    /// Where each sent record landed, in order.
    pub deliveries: Vec<Delivery>,
}

/// Produces `letters` to their original topics as [`replay`] does, with the redrive id, the
/// rate cap and the stop signal of `options`; then moves the replay marks over the ones
/// sent. The one replay loop of the CLI and the console.
pub async fn replay_with(
    brokers: &str,
    letters: &[DeadLetterRecord],
    options: &ReplayOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplayReport> {
    let producer = kafka::Producer::new(brokers)?;
    let total = letters.len() as u64;
    let spacing = options
        .max_per_second
        .filter(|n| *n > 0)
        .map(|n| Duration::from_secs_f64(1.0 / f64::from(n)));
    let started = tokio::time::Instant::now();
    let mut report = ReplayReport::default();
    for (i, letter) in letters.iter().enumerate() {
        if options.stop.as_ref().is_some_and(|s| s.is_cancelled()) {
            break;
        }
        if let Some(spacing) = spacing {
            // Paced from the start, so a slow send is not followed by an extra wait.
            tokio::time::sleep_until(started + spacing * i as u32).await;
        }
        let from = format!(
            "{}/{}/{}",
            letter.raw.topic, letter.raw.partition, letter.raw.offset
        );
        let mut headers = OwnedHeaders::new();
        for (k, v) in &letter.raw.headers {
            let ours = k == REPLAYED_FROM || (options.redrive_id.is_some() && k == REDRIVE_ID);
            if !header::ALL.contains(&k.as_str()) && !ours {
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
        if let Some(id) = &options.redrive_id {
            headers = headers.insert(Header {
                key: REDRIVE_ID,
                value: Some(id),
            });
        }
        let mut record = FutureRecord::to(letter.original_topic()).headers(headers);
        if let Some(key) = &letter.raw.key {
            record = record.key(key);
        }
        if let Some(payload) = &letter.raw.payload {
            record = record.payload(payload);
        }
        let delivery = producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e));
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                // Mark what went out before the failure, so a purge may delete it.
                mark_replayed_blocking(brokers, &letters[..i]).await?;
                return Err(e);
            }
        };
        report.sent += 1;
        report.deliveries.push(Delivery {
            topic: letter.original_topic().to_owned(),
            partition: delivery.partition,
            offset: delivery.offset,
        });
        progress(i as u64 + 1, total);
    }
    mark_replayed_blocking(brokers, &letters[..report.sent as usize]).await?;
    Ok(report)
}

/// Reads the dead letters of `topic` at `positions` (`(partition, offset)`), in partition
/// then offset order; a position that is gone (purged, beyond the end) is left out.
/// Reads each partition from its smallest wanted offset to its largest. Blocking.
pub fn fetch(
    brokers: &str,
    topic: &str,
    positions: &[(i32, i64)],
) -> Result<Vec<DeadLetterRecord>> {
    let mut wanted: std::collections::BTreeMap<i32, std::collections::BTreeSet<i64>> =
        std::collections::BTreeMap::new();
    for (p, o) in positions {
        wanted.entry(*p).or_default().insert(*o);
    }
    let ends = end_offsets(brokers, topic)?;
    let mut config = kafka::consumer_config(brokers, "anineplus-dlq");
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    // Per partition, the last offset to read (the largest wanted one still present).
    let mut last: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    for (p, offsets) in &wanted {
        let Some((_, low, high)) = ends.iter().find(|(q, _, _)| q == p) else {
            continue;
        };
        let present: Vec<i64> = offsets.range(*low..*high).copied().collect();
        if let (Some(first), Some(end)) = (present.first(), present.last()) {
            assignment.add_partition_offset(topic, *p, Offset::Offset(*first))?;
            last.insert(*p, *end);
        }
    }
    if last.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let mut out = Vec::new();
    let mut idle = 0;
    while !last.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            idle += 1;
            if idle > 60 {
                return Err(Error::Unavailable(format!(
                    "{topic}: no records for 30 s before the positions asked for"
                )));
            }
            continue;
        };
        idle = 0;
        let message = message?;
        let (partition, offset) = (message.partition(), message.offset());
        let Some(end) = last.get(&partition).copied() else {
            continue;
        };
        if wanted.get(&partition).is_some_and(|w| w.contains(&offset)) {
            out.push(DeadLetterRecord {
                raw: RawRecord::from_message(&message),
            });
        }
        if offset >= end {
            last.remove(&partition);
        }
    }
    out.sort_by_key(|l| (l.raw.partition, l.raw.offset));
    Ok(out)
}

/// The replay marks of `topic`: per partition, the offset below which every dead letter
/// was replayed (at least the partition's start).
pub fn replayed_marks(brokers: &str, topic: &str) -> Result<Vec<(i32, i64)>> {
    let ends = end_offsets(brokers, topic)?;
    let consumer: BaseConsumer = kafka::consumer_config(brokers, REPLAYED_GROUP).create()?;
    let mut list = TopicPartitionList::new();
    for (p, _, _) in &ends {
        list.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok(ends
        .iter()
        .map(|(p, low, high)| {
            let mark = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => *low,
            };
            (*p, mark.clamp(*low, *high))
        })
        .collect())
}

/// Moves the replay marks over `letters` (all replayed): per partition, past the run of
/// replayed offsets that starts at the current mark. Blocking.
pub fn mark_replayed(brokers: &str, letters: &[DeadLetterRecord]) -> Result<()> {
    let mut topics: Vec<&str> = letters.iter().map(|l| l.raw.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let positions: Vec<(i32, i64)> = letters
            .iter()
            .filter(|l| l.raw.topic == topic)
            .map(|l| (l.raw.partition, l.raw.offset))
            .collect();
        mark_replayed_at(brokers, topic, &positions)?;
    }
    Ok(())
}

/// Moves the replay marks of `topic` over the dead letters at `positions` (`(partition,
/// offset)`, all replayed, by this run or earlier ones): per partition, past the run of
/// those offsets that starts at the current mark. A caller that remembers every letter
/// replayed (the console's index) passes them all, so letters replayed out of order (a
/// later group first) are covered once the ones before them are. Blocking.
pub fn mark_replayed_at(brokers: &str, topic: &str, positions: &[(i32, i64)]) -> Result<()> {
    let mut replayed: std::collections::HashMap<i32, std::collections::BTreeSet<i64>> =
        std::collections::HashMap::new();
    for (p, o) in positions {
        replayed.entry(*p).or_default().insert(*o);
    }
    let mut list = TopicPartitionList::new();
    for (partition, mark) in replayed_marks(brokers, topic)? {
        let Some(offsets) = replayed.get(&partition) else {
            continue;
        };
        let mut next = mark;
        while offsets.contains(&next) {
            next += 1;
        }
        if next > mark {
            list.add_partition_offset(topic, partition, Offset::Offset(next))?;
        }
    }
    if list.count() > 0 {
        let consumer: BaseConsumer = kafka::consumer_config(brokers, REPLAYED_GROUP).create()?;
        consumer.commit(&list, rdkafka::consumer::CommitMode::Sync)?;
    }
    Ok(())
}

async fn mark_replayed_blocking(brokers: &str, letters: &[DeadLetterRecord]) -> Result<()> {
    let (brokers, letters) = (brokers.to_owned(), letters.to_vec());
    tokio::task::spawn_blocking(move || mark_replayed(&brokers, &letters))
        .await
        .map_err(|e| Error::Task(format!("marking the replayed dead letters: {e}")))?
}

/// What became of one dead letter replayed into the sink.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkVerdict {
    /// Every item it became was written or already applied (items described; a record the
    /// topology maps to nothing is replayed with none).
    Replayed(Vec<String>),
    /// Dry run: it decodes into these items, which would be written.
    WouldWrite(Vec<String>),
    /// It failed again and was produced back to the dead-letter topic with this failure
    /// (dry run: it does not decode and would be).
    Returned(Failure),
}

/// Totals of a [`SinkReplay::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReplayReport {
    /// Dead letters replayed (written or already applied); dry run: that would be written.
    pub replayed: u64,
    /// Items (documents) written; dry run: that would be written.
    pub items: u64,
    /// Dead letters produced back to the dead-letter topic; dry run: that do not decode.
    pub returned: u64,
}

/// Replays dead letters straight into a topology's sink, without their original topic.
///
/// For each dead letter: the binding of its `original-topic` in `topology` decodes the value
/// (preparing the writer schema through the registry first, a registry outage retried with
/// backoff, exactly as a pipeline lane does), then the items are written through the
/// topology's sink in batches. `Done`/`AlreadyApplied` items count as replayed; `Retry` and
/// `Unavailable` items are retried in place with the backoff of `policy`. A record that
/// still fails (decode error, mapping rejection, retries exhausted) is produced back to the
/// dead-letter topic it was read from, its headers updated as a pipeline would: `attempts`
/// plus the writes tried now, `last-failure-at`, the new `error-class` and `error-message`,
/// and `replayed-from`. When the whole sink stays unavailable, or the registry does not
/// answer through the policy's backoff, the run stops with [`Error::Unavailable`] (nothing
/// of the current batch is written, settled or produced back; as with every replay, the
/// dead letters themselves stay where they are).
///
/// Like [`replay`], it works on a snapshot taken by [`scan`] and deletes or marks nothing:
/// records it produces back land after the snapshot's end, so one run never replays a
/// record twice; a second run replays the same dead letters again (harmless for a versioned,
/// idempotent sink). Replay, check, then purge.
pub struct SinkReplay<'a, S: Sink> {
    /// The pipeline's topology: its bindings decode, its sink writes.
    pub topology: &'a Topology<S>,
    /// The registry codec.
    pub codec: &'a Codec,
    /// Kafka bootstrap servers, to produce records back to the dead-letter topic.
    pub brokers: &'a str,
    /// The pipeline's name (the `pipeline` header of records produced back).
    pub pipeline: &'a str,
    /// In-place retries: attempts and backoff (registry and sink).
    pub policy: RetryPolicy,
    /// Dead letters per sink write.
    pub batch: usize,
    /// Decode and build the items, report, write and produce nothing.
    pub dry_run: bool,
    /// One item as text for reports (e.g. `index/id@version`).
    pub describe: fn(&S::Item) -> String,
}

impl<S: Sink> SinkReplay<'_, S> {
    /// Replays `letters`, calling `on_letter` with each one's verdict (in order) and
    /// `progress(done, total)` after each batch.
    pub async fn run(
        &self,
        letters: &[DeadLetterRecord],
        mut on_letter: impl FnMut(&DeadLetterRecord, &SinkVerdict),
        mut progress: impl FnMut(u64, u64),
    ) -> Result<SinkReplayReport> {
        let producer: Option<kafka::Producer> = if self.dry_run {
            None
        } else {
            Some(kafka::Producer::new(self.brokers)?)
        };
        let total = letters.len() as u64;
        let mut report = SinkReplayReport::default();
        let mut done = 0u64;
        for chunk in letters.chunks(self.batch.max(1)) {
            let mut decoded = Vec::with_capacity(chunk.len());
            for letter in chunk {
                let items = self.decode(letter).await;
                if let Err(failure) = &items
                    && failure.class == ErrorClass::Unavailable
                {
                    // The registry did not answer through the backoff: no fault of the
                    // letters. Stop before this batch writes or returns anything.
                    return Err(Error::Unavailable(format!(
                        "{}; {} dead letter(s) replayed before this batch; the rest were not \
                         replayed (they are still in the dead-letter topic)",
                        failure.message, report.replayed
                    )));
                }
                decoded.push(items);
            }
            if self.dry_run {
                for (letter, items) in chunk.iter().zip(decoded) {
                    let verdict = match items {
                        Ok(items) => {
                            report.replayed += 1;
                            report.items += items.len() as u64;
                            SinkVerdict::WouldWrite(items.iter().map(self.describe).collect())
                        }
                        Err(failure) => {
                            report.returned += 1;
                            SinkVerdict::Returned(failure)
                        }
                    };
                    on_letter(letter, &verdict);
                }
            } else if let Some(producer) = &producer {
                self.settle(chunk, decoded, producer, &mut report, &mut on_letter)
                    .await?;
                // Every letter of the batch is settled: written, or returned as a new letter.
                mark_replayed_blocking(self.brokers, chunk).await?;
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
        if total == 0 {
            progress(0, 0);
        }
        Ok(report)
    }

    /// The items of one dead letter, through the binding of its original topic.
    async fn decode(
        &self,
        letter: &DeadLetterRecord,
    ) -> std::result::Result<Vec<S::Item>, Failure> {
        let topic = letter.original_topic();
        let Some(binding) = self.topology.source(topic) else {
            return Err(Failure::permanent(format!(
                "no source of this pipeline reads topic {topic}"
            )));
        };
        let bytes = letter.raw.value();
        if let Ok((id, _)) = wire::split(bytes)
            && !self.codec.has_decoder(id, binding.schema())
        {
            retry::prepare_decoder(
                self.codec,
                id,
                binding.schema(),
                &self.policy,
                &CancellationToken::new(),
            )
            .await?;
        }
        let origin = letter.raw.origin();
        let at = Coordinates {
            topic: &origin.topic,
            partition: origin.partition,
            offset: origin.offset,
        };
        binding
            .decode(self.codec, &Input { bytes, at })
            .map_err(|e| Failure::decode(&e))
    }

    /// Writes the items of one batch, retrying in place, then reports each dead letter and
    /// produces back those that failed.
    async fn settle(
        &self,
        chunk: &[DeadLetterRecord],
        decoded: Vec<std::result::Result<Vec<S::Item>, Failure>>,
        producer: &kafka::Producer,
        report: &mut SinkReplayReport,
        on_letter: &mut impl FnMut(&DeadLetterRecord, &SinkVerdict),
    ) -> Result<()> {
        let mut flat = Flattened::new(decoded);
        let mut attempts = vec![1u32; chunk.len()];
        let outcomes = self.write(&flat.items, &flat.owners, &mut attempts).await;
        if !outcomes.is_empty() && outcomes.iter().all(Outcome::is_unavailable) {
            return Err(Error::Unavailable(format!(
                "the sink stays unavailable ({:?}); {} dead letter(s) replayed before this \
                 batch; the rest were not replayed (they are still in the dead-letter topic)",
                outcomes[0], report.replayed
            )));
        }
        flat.absorb(&outcomes);
        let Flattened {
            items,
            owners,
            failures,
        } = flat;
        for (i, (letter, failure)) in chunk.iter().zip(failures).enumerate() {
            let verdict = match failure {
                None => {
                    let written: Vec<String> = items
                        .iter()
                        .zip(&owners)
                        .filter(|(_, o)| **o == i)
                        .map(|(item, _)| (self.describe)(item))
                        .collect();
                    report.replayed += 1;
                    report.items += written.len() as u64;
                    SinkVerdict::Replayed(written)
                }
                Some(failure) => {
                    self.produce_back(producer, letter, failure.clone(), attempts[i])
                        .await?;
                    report.returned += 1;
                    SinkVerdict::Returned(failure)
                }
            };
            on_letter(letter, &verdict);
        }
        Ok(())
    }

    /// Writes `items`, retrying the retryable ones in place; `attempts[owner]` counts the
    /// writes tried per dead letter.
    async fn write(
        &self,
        items: &[S::Item],
        owners: &[usize],
        attempts: &mut [u32],
    ) -> Vec<Outcome> {
        if items.is_empty() {
            return Vec::new();
        }
        let sink = self.topology.sink();
        let mut outcomes = sink.write(items).await;
        retry::rewrite_retryable(
            sink,
            items,
            owners,
            attempts,
            &mut outcomes,
            &self.policy,
            &CancellationToken::new(),
        )
        .await;
        outcomes
    }

    /// Produces `letter` back to the dead-letter topic it was read from, with its context
    /// updated as a pipeline lane would.
    async fn produce_back(
        &self,
        producer: &kafka::Producer,
        letter: &DeadLetterRecord,
        failure: Failure,
        attempts: u32,
    ) -> Result<()> {
        tracing::warn!(
            dead_letter = %format!("{}/{}/{}", letter.raw.topic, letter.raw.partition, letter.raw.offset),
            class = failure.class.as_str(), reason = %failure.message,
            "replayed record failed again; back to the dead-letter topic"
        );
        let returned = returned_letter(letter, self.pipeline, failure, attempts);
        let headers = returned.headers(None);
        let mut record = FutureRecord::to(&letter.raw.topic).headers(headers);
        if let Some(key) = &returned.record.key {
            record = record.key(key);
        }
        if let Some(payload) = &returned.record.payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        Ok(())
    }
}

/// `letter` on its way back to the dead-letter topic after failing again: the original
/// coordinates kept, `attempts` added to the ones it had, `replayed-from` set.
fn returned_letter(
    letter: &DeadLetterRecord,
    pipeline: &str,
    failure: Failure,
    attempts: u32,
) -> DeadLetter {
    let from = format!(
        "{}/{}/{}",
        letter.raw.topic, letter.raw.partition, letter.raw.offset
    );
    let mut headers: Vec<(String, Vec<u8>)> = letter
        .raw
        .headers
        .iter()
        .filter(|(k, _)| k != REPLAYED_FROM)
        .cloned()
        .collect();
    headers.push((REPLAYED_FROM.to_owned(), from.into_bytes()));
    let number = |name: &str| letter.raw.header(name).and_then(|v| v.parse::<i64>().ok());
    let previous = letter
        .raw
        .header(header::ATTEMPTS)
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or_default();
    // The record as the pipeline first saw it; its headers still carry the context, which
    // `DeadLetter::headers` prefers when complete.
    let record = RawRecord {
        topic: letter.original_topic().to_owned(),
        partition: number(header::ORIGINAL_PARTITION).unwrap_or(-1) as i32,
        offset: number(header::ORIGINAL_OFFSET).unwrap_or(-1),
        key: letter.raw.key.clone(),
        payload: letter.raw.payload.clone(),
        headers,
    };
    DeadLetter {
        record,
        pipeline: pipeline.to_owned(),
        failure,
        attempts: previous + attempts,
        now_ms: dead_letter::now_ms(),
    }
}

/// What a purge deletes (or would) and keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purge {
    /// Dead letters deleted (dry run: that would be).
    pub deleted: u64,
    /// Dead letters kept: not covered by a replay, or behind one that was not.
    pub kept: u64,
}

/// What [`purge`] would delete now: per partition, `(partition, start, mark, end)`.
fn purge_plan(brokers: &str, topic: &str) -> Result<(Vec<(i32, i64)>, Purge)> {
    let ends = end_offsets(brokers, topic)?;
    let marks = replayed_marks(brokers, topic)?;
    let mut cut = Vec::new();
    let mut plan = Purge::default();
    for (p, low, high) in ends {
        let mark = marks.iter().find(|(q, _)| *q == p).map_or(low, |(_, m)| *m);
        plan.deleted += (mark - low) as u64;
        plan.kept += (high - mark) as u64;
        if mark > low {
            cut.push((p, mark));
        }
    }
    Ok((cut, plan))
}

/// What [`purge`] would delete and keep now, deleting nothing.
pub fn purge_dry_run(brokers: &str, topic: &str) -> Result<Purge> {
    Ok(purge_plan(brokers, topic)?.1)
}

/// Deletes the dead letters of `topic` that replays covered (below the replay marks, see
/// [`REPLAYED_GROUP`]); never one that no replay covered.
pub async fn purge(brokers: &str, topic: &str) -> Result<Purge> {
    let (cut, plan) = purge_plan(brokers, topic)?;
    delete_below(brokers, topic, &cut).await?;
    Ok(plan)
}

/// Deletes every dead letter of `topic` present now, replayed or not; returns how many.
pub async fn purge_all(brokers: &str, topic: &str) -> Result<u64> {
    let ends = end_offsets(brokers, topic)?;
    let cut: Vec<(i32, i64)> = ends.iter().map(|(p, _, high)| (*p, *high)).collect();
    delete_below(brokers, topic, &cut).await?;
    Ok(ends.iter().map(|(_, l, h)| (h - l) as u64).sum())
}

/// Deletes the records of each `(partition, offset)` below `offset`.
async fn delete_below(brokers: &str, topic: &str, cut: &[(i32, i64)]) -> Result<()> {
    if cut.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (p, offset) in cut {
        list.add_partition_offset(topic, *p, Offset::Offset(*offset))?;
    }
    let admin: AdminClient<DefaultClientContext> = kafka::producer_config(brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let result = admin.delete_records(&list, &options).await?;
    for element in result.elements() {
        element.error()?;
    }
    Ok(())
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
            redrive_id: None,
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
        let job = Filter {
            redrive_id: Some("j-1".into()),
            ..Default::default()
        };
        assert!(!job.matches(&l));
        let mut back = l.clone();
        back.raw.headers.push((REDRIVE_ID.into(), b"j-1".to_vec()));
        assert!(job.matches(&back));
    }

    #[test]
    fn fingerprints_group_one_cause_whatever_the_record() {
        let a = fingerprint(
            "permanent",
            "sink: status 400: failed to parse field [releaseYear] of type [short] in document with id 'a-17': value 70000",
        );
        let b = fingerprint(
            "permanent",
            "sink:  status 400: failed to parse field [releaseYear] of type [short] in document with id 'b-2': value 123456",
        );
        assert_eq!(a, b);
        assert_eq!(
            a,
            "permanent: sink: status <n>: failed to parse field [releaseYear] of type [short] in document with id \"?\": value <n>"
        );
        assert_eq!(
            normalise_message("user 6f1c2a3e-0b1d-4c1e-9f2a-1234567890ab gone, schema id 42"),
            "user <uuid> gone, schema id <n>"
        );
        assert_eq!(
            normalise_message("digest 0123456789abcdef0123 and word deadbeef"),
            "digest <hex> and word deadbeef"
        );
        assert_eq!(
            normalise_message("an \"unclosed quote"),
            "an \"unclosed quote"
        );
        assert_eq!(
            normalise_message("record starts with byte 0x6d, not the magic byte 0x00"),
            "record starts with byte <n>, not the magic byte <n>"
        );
        assert_ne!(
            fingerprint("retryable", "sink: status 503"),
            fingerprint("permanent", "sink: status 503")
        );
    }

    fn header_of(headers: &OwnedHeaders, name: &str) -> Vec<String> {
        use rdkafka::message::Headers;
        headers
            .iter()
            .filter(|h| h.key == name)
            .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn a_letter_failing_again_keeps_its_origin_and_counts_the_attempt() {
        let mut l = letter("retryable", "a1", 1000);
        l.raw.headers.extend([
            (header::ORIGINAL_PARTITION.into(), b"2".to_vec()),
            (header::ORIGINAL_OFFSET.into(), b"41".to_vec()),
            (header::ATTEMPTS.into(), b"3".to_vec()),
            (header::FIRST_FAILURE.into(), b"900".to_vec()),
            (header::ERROR_MESSAGE.into(), b"sink: 503".to_vec()),
            (REPLAYED_FROM.into(), b"indexer.dlq/0/1".to_vec()),
            ("correlation-id".into(), b"c-1".to_vec()),
        ]);
        let back = returned_letter(&l, "indexer", Failure::permanent("sink: status 400"), 1);
        let headers = back.headers(None);
        let one = |name: &str| {
            let values = header_of(&headers, name);
            assert_eq!(values.len(), 1, "{name}: {values:?}");
            values[0].clone()
        };
        assert_eq!(one(header::ORIGINAL_TOPIC), "anime");
        assert_eq!(one(header::ORIGINAL_PARTITION), "2");
        assert_eq!(one(header::ORIGINAL_OFFSET), "41");
        assert_eq!(one(header::ATTEMPTS), "4");
        assert_eq!(one(header::FIRST_FAILURE), "900");
        assert_eq!(one(header::ERROR_CLASS), "permanent");
        assert_eq!(one(header::ERROR_MESSAGE), "sink: status 400");
        assert_eq!(one(header::PIPELINE), "indexer");
        assert_eq!(one(REPLAYED_FROM), "indexer.dlq/1/7");
        assert_eq!(one("correlation-id"), "c-1");
        assert!(one(header::LAST_FAILURE).parse::<i64>().unwrap() > 1000);
        assert_eq!(back.record.key.as_deref(), Some(&b"a1"[..]));

        // A hand-written dead letter with only some headers still names its original topic.
        let sparse = letter("retryable", "a1", 1);
        let back = returned_letter(&sparse, "indexer", Failure::retryable("x"), 2);
        let headers = back.headers(None);
        assert_eq!(header_of(&headers, header::ORIGINAL_TOPIC), vec!["anime"]);
        assert_eq!(header_of(&headers, header::ATTEMPTS), vec!["2"]);
    }
}
