//! Log records → what the index and the archive store: the day a record belongs to (its own
//! timestamp, UTC, never the wall clock), the daily index name, the document id from the
//! record's coordinates, and the document itself (one JSON shape for both stores).

use anineplus_connectors::search_sink::Document;
use anineplus_schemas::events::{LogLevel, LogRecord};
use anineplus_streams::Located;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat};
use serde::Serialize;

/// The version every log document is written at. A log document never changes (its id is
/// where its record is), so each write of it is the same document at the same version: a
/// replay rewrites it (`external_gte`), never adds a second one.
pub const DOCUMENT_VERSION: i64 = 1;

/// The first and last day a record may carry: an index name or folder needs a four-digit
/// year, and a timestamp outside this range is a producer's bug, not a date.
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 9999;

/// The UTC day of `timestamp` (ms since the epoch), if it is a plausible one (years 1970
/// to 9999).
pub fn day_of(timestamp: i64) -> Option<NaiveDate> {
    let day = DateTime::from_timestamp_millis(timestamp)?.date_naive();
    (FIRST_YEAR..=LAST_YEAR)
        .contains(&day.year())
        .then_some(day)
}

/// `service` as it may appear in an index name and a folder name: lowercase ASCII
/// letters, digits, `-` and `_`; anything else becomes `_` (`unknown` when empty), so no
/// record can name a path outside its folder or an invalid index.
pub fn service_slug(service: &str) -> String {
    let slug: String = service
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    // The engine refuses index names starting with `-`, `_` or `+`.
    let slug = slug.trim_start_matches(['-', '_']);
    if slug.is_empty() {
        "unknown".to_owned()
    } else {
        slug.to_owned()
    }
}

/// The daily index of a record: `<prefix>-<service>-YYYY.MM.DD`.
pub fn index_name(prefix: &str, service: &str, day: NaiveDate) -> String {
    format!(
        "{prefix}-{}-{}",
        service_slug(service),
        day.format("%Y.%m.%d")
    )
}

/// The document id of the record at `topic`/`partition`/`offset` (the original ones for a
/// retried or replayed record): `<topic>:<partition>:<offset>` (`:` is not allowed in a
/// topic name, so no two records share an id).
pub fn document_id(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}:{partition}:{offset}")
}

/// Where a record came from, in its document.
#[derive(Debug, Serialize)]
pub struct KafkaCoordinates<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// One record as the index and the archive store it (`docs/logs.md`, "Log storage").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDocument<'a> {
    /// The record's timestamp, RFC 3339 with milliseconds, UTC.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `TRACE` … `ERROR`.
    pub level: LogLevel,
    /// The service as it logged it.
    pub service: &'a str,
    /// The request's correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a str>,
    /// The trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    /// The message.
    pub message: &'a str,
    /// The structured fields.
    pub context: &'a std::collections::BTreeMap<String, String>,
    /// Where the record is in Kafka.
    pub kafka: KafkaCoordinates<'a>,
}

impl<'a> LogDocument<'a> {
    /// The document of `record`, consumed at `at`; `None` when its timestamp is not a
    /// plausible date.
    pub fn new(record: &'a Located<LogRecord>) -> Option<Self> {
        let value = &record.value;
        day_of(value.timestamp)?;
        let timestamp = DateTime::from_timestamp_millis(value.timestamp)?
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        Some(LogDocument {
            timestamp,
            level: value.level,
            service: &value.service,
            correlation_id: value.correlation_id.as_deref(),
            trace_id: value.trace_id.as_deref(),
            message: &value.message,
            context: &value.context,
            kafka: KafkaCoordinates {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
            },
        })
    }
}

/// Why a record cannot be stored: said in its dead letter.
pub fn refusal(record: &Located<LogRecord>) -> String {
    format!(
        "log record timestamp {} is not a date between {FIRST_YEAR} and {LAST_YEAR}",
        record.value.timestamp
    )
}

/// What the index writes for one record: its document in its daily index, or why not.
pub type IndexEntry = Result<Document, String>;

/// The index write of `record` under `prefix`.
pub fn index_entry(prefix: &str, record: &Located<LogRecord>) -> IndexEntry {
    let Some(doc) = LogDocument::new(record) else {
        return Err(refusal(record));
    };
    let day = day_of(record.value.timestamp).expect("checked by LogDocument::new");
    // Serialised once, straight from the record's fields: no JSON tree per record.
    let source = serde_json::to_string(&doc).expect("a log document is JSON");
    Ok(Document::index_json(
        index_name(prefix, &record.value.service, day),
        document_id(&record.topic, record.partition, record.offset),
        DOCUMENT_VERSION,
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_connectors::search_sink::Action;
    use std::sync::Arc;

    fn located(service: &str, timestamp: i64, offset: i64) -> Located<LogRecord> {
        Located {
            topic: Arc::from("logs"),
            partition: 2,
            offset,
            value: LogRecord {
                level: LogLevel::Error,
                timestamp,
                service: service.to_owned(),
                trace_id: None,
                correlation_id: Some("c-1".to_owned()),
                message: "boom".to_owned(),
                context: [("target".to_owned(), "api::graphql".to_owned())].into(),
            },
        }
    }

    #[test]
    fn the_day_is_the_records_own_in_utc() {
        // 2026-12-03T23:59:59.999Z and one millisecond later.
        let before = 1_796_342_399_999;
        assert_eq!(day_of(before).unwrap().to_string(), "2026-12-03");
        assert_eq!(day_of(before + 1).unwrap().to_string(), "2026-12-04");
        assert_eq!(day_of(-1), None, "before 1970");
        assert_eq!(day_of(i64::MAX), None);
        assert_eq!(day_of(253_402_300_800_000), None, "year 10000");
    }

    #[test]
    fn index_names_are_daily_per_service_and_always_valid() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap();
        assert_eq!(index_name("logs", "api", day), "logs-api-2026.01.09");
        assert_eq!(
            index_name("logs", "My Service/../x", day),
            "logs-my_service____x-2026.01.09"
        );
        assert_eq!(index_name("logs", "_", day), "logs-unknown-2026.01.09");
        assert_eq!(service_slug("-Indexer"), "indexer");
    }

    #[test]
    fn a_record_becomes_a_document_named_by_where_it_is() {
        let record = located("api", 1_796_342_399_999, 41);
        let doc = index_entry("logs", &record).unwrap();
        assert_eq!(doc.index, "logs-api-2026.12.03");
        assert_eq!(doc.id, "logs:2:41");
        assert_eq!(doc.version, DOCUMENT_VERSION);
        let Action::Index(source) = &doc.action else {
            panic!("a whole document: {doc:?}")
        };
        let source = source.value();
        assert_eq!(
            source,
            serde_json::json!({
                "@timestamp": "2026-12-03T23:59:59.999Z",
                "level": "ERROR",
                "service": "api",
                "correlationId": "c-1",
                "message": "boom",
                "context": {"target": "api::graphql"},
                "kafka": {"topic": "logs", "partition": 2, "offset": 41},
            })
        );
        // The same record (a replay) is the same write; the next day another index.
        assert_eq!(index_entry("logs", &record).unwrap(), doc);
        let next = index_entry("logs", &located("api", 1_796_342_400_000, 42)).unwrap();
        assert_eq!(next.index, "logs-api-2026.12.04");
    }

    #[test]
    fn an_implausible_timestamp_is_refused_with_the_reason() {
        let reason = index_entry("logs", &located("api", -5, 1)).unwrap_err();
        assert!(reason.contains("timestamp -5"), "{reason}");
    }
}
