//! A consumed record as raw bytes, with where it came from.

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
