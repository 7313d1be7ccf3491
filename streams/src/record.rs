//! A consumed record as raw bytes, with where it came from.
//!
//! - [`RawRecord`]: the owned form the dead-letter tools and retry headers work with.
//! - `InFlight` (crate-internal): the form the runtime keeps while a record is in flight:
//!   the topic name shared (`Arc<str>`, one per topic, not one `String` per record), key
//!   and value in one allocation, headers copied only when the record has any. It becomes
//!   a [`RawRecord`] only on the failure path.

use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::dead_letter::header;

/// One consumed record: key, value and headers as bytes, and its coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The topic it was consumed from (a source or a retry topic).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The key bytes.
    pub key: Option<Vec<u8>>,
    /// The value bytes.
    pub payload: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    /// Copies a consumed message.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        RawRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The value bytes (empty for a tombstone).
    pub fn value(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }

    /// Where the record first entered the pipeline: its own coordinates, or for a record of a
    /// retry topic the original ones carried in its headers.
    pub fn origin(&self) -> Origin {
        let parsed = || -> Option<Origin> {
            Some(Origin {
                topic: self.header(header::ORIGINAL_TOPIC)?.to_owned(),
                partition: self.header(header::ORIGINAL_PARTITION)?.parse().ok()?,
                offset: self.header(header::ORIGINAL_OFFSET)?.parse().ok()?,
                attempts: self.header(header::ATTEMPTS)?.parse().ok()?,
                first_failure_ms: self.header(header::FIRST_FAILURE)?.parse().ok(),
            })
        };
        parsed().unwrap_or_else(|| Origin {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            attempts: 0,
            first_failure_ms: None,
        })
    }
}

/// A consumed record while the runtime holds it: coordinates, key and value bytes in one
/// buffer, headers (empty when the record has none).
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The key bytes followed by the value bytes.
    bytes: Box<[u8]>,
    /// Length of the key within `bytes`; `None` when the record has no key.
    key_len: Option<usize>,
    has_payload: bool,
    headers: Vec<(String, Vec<u8>)>,
}

impl InFlight {
    /// Copies a consumed message; `topic` is the message's topic name, shared.
    pub(crate) fn from_message(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let key = message.key();
        let payload = message.payload();
        let key_bytes = key.unwrap_or_default();
        let value = payload.unwrap_or_default();
        let mut bytes = Vec::with_capacity(key_bytes.len() + value.len());
        bytes.extend_from_slice(key_bytes);
        bytes.extend_from_slice(value);
        let headers = match message.headers() {
            Some(h) if h.count() > 0 => h
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect(),
            _ => Vec::new(),
        };
        InFlight {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            bytes: bytes.into_boxed_slice(),
            key_len: key.map(<[u8]>::len),
            has_payload: payload.is_some(),
            headers,
        }
    }

    /// A record made in memory (the test driver's input).
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Self {
        let mut bytes =
            Vec::with_capacity(key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        bytes.extend_from_slice(key.unwrap_or_default());
        bytes.extend_from_slice(value.unwrap_or_default());
        InFlight {
            topic,
            partition,
            offset,
            bytes: bytes.into_boxed_slice(),
            key_len: key.map(<[u8]>::len),
            has_payload: value.is_some(),
            headers,
        }
    }

    /// The key bytes.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.bytes[..n])
    }

    /// The value bytes (empty for a tombstone).
    pub(crate) fn value(&self) -> &[u8] {
        &self.bytes[self.key_len.unwrap_or(0)..]
    }

    /// The first header named `name`, as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The owned [`RawRecord`] (the failure path: dead letters, retry headers).
    pub(crate) fn to_raw(&self) -> RawRecord {
        RawRecord {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            key: self.key().map(<[u8]>::to_vec),
            payload: self.has_payload.then(|| self.value().to_vec()),
            headers: self.headers.clone(),
        }
    }
}

/// The shared names of the topics a consumer reads: one `Arc<str>` per topic.
#[derive(Debug, Default)]
pub(crate) struct TopicNames {
    names: Vec<Arc<str>>,
}

impl TopicNames {
    /// The shared name equal to `name` (created on first sight).
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(found) = self.names.iter().find(|n| &***n == name) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(name);
        self.names.push(new.clone());
        new
    }
}

/// The original coordinates and failure history of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Original topic.
    pub topic: String,
    /// Original partition.
    pub partition: i32,
    /// Original offset.
    pub offset: i64,
    /// Attempts made so far (0 on first sight).
    pub attempts: u32,
    /// When it first failed, ms since the epoch.
    pub first_failure_ms: Option<i64>,
}
