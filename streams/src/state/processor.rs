//! The [`Processor`] trait: a stateful step, one record at a time, with the keyed
//! [`Store`] of the record's task and an [`Emit`] for what it sends on.

use anineplus_schemas::{Codec, DecodeError, Topic};
use rdkafka::message::OwnedHeaders;
use serde::Serialize;

use super::store::{StateValue, Store};

/// One consumed record, decoded.
#[derive(Debug, Clone)]
pub struct Record<'a, T> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition: the task it belongs to.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key bytes.
    pub key: Option<&'a [u8]>,
    /// Its Kafka timestamp (ms since the epoch): the event time the runtime's own
    /// operators read; a processor may take a time from the value instead.
    pub timestamp: i64,
    /// The value's bytes, as consumed.
    pub bytes: &'a [u8],
    /// The decoded value.
    pub value: T,
}

/// Why a value did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// What was wrong.
    pub reason: String,
    /// Whether it may decode later (the registry was unreachable): the runtime waits and
    /// tries again instead of dead-lettering it.
    pub retryable: bool,
}

impl Undecodable {
    /// A value that will never decode.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Undecodable {
            reason: reason.into(),
            retryable: false,
        }
    }
}

impl From<DecodeError> for Undecodable {
    fn from(e: DecodeError) -> Self {
        Undecodable {
            retryable: e.is_retryable(),
            reason: e.to_string(),
        }
    }
}

impl<T> Record<'_, T> {
    /// The key as text (empty without one, lossy if not UTF-8).
    pub fn key_str(&self) -> String {
        self.key
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }
}

/// A record a processor sends on: produced at the task's next commit, in the same
/// transaction as the state it wrote and the offsets it consumed (exactly once), or before
/// those offsets are committed (at least once).
#[derive(Debug, Clone)]
pub struct Output {
    /// The topic.
    pub topic: String,
    /// The key (partitions the record).
    pub key: Option<Vec<u8>>,
    /// The partition, when the key must not choose it (changelog records go to their
    /// task's partition).
    pub partition: Option<i32>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The record's timestamp (ms since the epoch): the event time of downstream steps.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Option<OwnedHeaders>,
}

impl Output {
    /// A record of `value` as JSON (how the runtime's internal topics carry values).
    pub fn json(topic: &str, key: &str, value: &impl Serialize, timestamp: i64) -> Output {
        Output {
            topic: topic.to_owned(),
            key: Some(key.as_bytes().to_vec()),
            partition: None,
            value: Some(serde_json::to_vec(value).expect("values serialise")),
            timestamp: Some(timestamp),
            headers: None,
        }
    }

    /// A record of already encoded `value` bytes (e.g. Avro through the registry).
    pub fn bytes(topic: &str, key: &str, value: Vec<u8>, timestamp: i64) -> Output {
        Output {
            topic: topic.to_owned(),
            key: Some(key.as_bytes().to_vec()),
            partition: None,
            value: Some(value),
            timestamp: Some(timestamp),
            headers: None,
        }
    }
}

/// What a processor sends on while it processes records or flushes.
#[derive(Debug, Default)]
pub struct Emit {
    pub(crate) records: Vec<Output>,
    pub(crate) late: u64,
}

impl Emit {
    /// Sends `record` on at the next commit.
    pub fn send(&mut self, record: Output) {
        self.records.push(record);
    }

    /// Counts a record that came after its window closed (`pipeline_late_records_total`).
    pub fn late(&mut self) {
        self.late += 1;
    }

    /// What was sent since the last commit.
    pub fn records(&self) -> &[Output] {
        &self.records
    }
}

/// A stateful step: reads records of its input topics, keeps keyed state per input
/// partition (a *task*: partition `p` of every input, so the inputs must be
/// co-partitioned), and sends records on. Run by [`super::StatefulPipeline`] on Kafka, or
/// by [`super::StateDriver`] in memory.
pub trait Processor: Send + Sync + 'static {
    /// A decoded input value.
    type Input;
    /// A value of its store.
    type State: StateValue;

    /// The store's name: its changelog topic is `<pipeline>-<store>-changelog`.
    fn store(&self) -> &str;

    /// The topics it reads (co-partitioned: the same number of partitions each).
    fn inputs(&self) -> Vec<String>;

    /// The topics it sends to (created with the pipeline's when missing).
    fn outputs(&self) -> Vec<String>;

    /// The Avro schema of an input topic, for values framed with a registry id (the
    /// runtime fetches writer schemas it does not know yet); `None` for JSON topics.
    fn schema(&self, _topic: &str) -> Option<Topic> {
        None
    }

    /// Decodes one value of `topic` (Avro values: with `codec`, whose writer schema the
    /// runtime prepared; see [`Processor::schema`]). A value that does not decode is
    /// dead-lettered with the reason.
    fn decode(&self, codec: &Codec, topic: &str, value: &[u8]) -> Result<Self::Input, Undecodable>;

    /// Processes one record: reads and writes its task's `store`, sends what follows.
    fn process(
        &self,
        record: Record<'_, Self::Input>,
        store: &mut Store<Self::State>,
        out: &mut Emit,
    );

    /// Called for every task before each commit, after its records: emit what changed,
    /// close windows.
    fn flush(&self, _store: &mut Store<Self::State>, _out: &mut Emit) {}
}
