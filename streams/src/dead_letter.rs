//! Retry and dead-letter records: the original key and value bytes, with their context in
//! headers, and the topic each failure goes to.
//!
//! Topics of pipeline `p` (with the deployment's topic prefix in front):
//! - `p.retry.1` … `p.retry.N`: retry topics, one per delay of [`RetryPolicy::delays`];
//!   a record goes to level `n+1` after failing retryably at level `n`, with a
//!   `not-before` header the retry consumer waits for;
//! - `p.dlq`: the dead-letter topic: permanent failures at once, retryable ones after
//!   the last retry level.
//!
//! Headers (all UTF-8 text; times are ms since the epoch) are the [`header`] constants.
//! The original record's own headers (`event-type`, `correlation-id`, ...) are kept.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::message::{Header, OwnedHeaders};

use crate::failure::Failure;
use crate::record::RawRecord;

/// Header names of retry and dead-letter records.
pub mod header {
    /// Topic the record was first consumed from.
    pub const ORIGINAL_TOPIC: &str = "original-topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "original-partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "original-offset";
    /// Its key as text (lossy UTF-8); the record key itself is kept as bytes too.
    pub const ORIGINAL_KEY: &str = "original-key";
    /// The pipeline that failed it.
    pub const PIPELINE: &str = "pipeline";
    /// `permanent`, `retryable` or `unavailable` ([`crate::failure::ErrorClass`]).
    pub const ERROR_CLASS: &str = "error-class";
    /// The last failure's message.
    pub const ERROR_MESSAGE: &str = "error-message";
    /// Attempts made in total (in place and through retry topics).
    pub const ATTEMPTS: &str = "attempts";
    /// First failure time.
    pub const FIRST_FAILURE: &str = "first-failure-at";
    /// Last failure time.
    pub const LAST_FAILURE: &str = "last-failure-at";
    /// The correlation id of the original record (copied from its header).
    pub const CORRELATION_ID: &str = "correlation-id";
    /// On retry topics: not to be processed before this time.
    pub const NOT_BEFORE: &str = "not-before";
    /// Every header this module writes (replaced, not duplicated, on each hop).
    pub const ALL: [&str; 11] = [
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ORIGINAL_KEY,
        PIPELINE,
        ERROR_CLASS,
        ERROR_MESSAGE,
        ATTEMPTS,
        FIRST_FAILURE,
        LAST_FAILURE,
        NOT_BEFORE,
    ];
}

/// How failures are retried (the `--retry-*` flags of the pipeline binaries:
/// `anineplus_args::RetryArgs`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// In-place attempts after the first failure of a record, before a retry topic.
    pub in_place_attempts: usize,
    /// First in-place backoff delay (doubles, with jitter, up to `in_place_max_delay`).
    pub in_place_min_delay: Duration,
    /// Largest in-place backoff delay.
    pub in_place_max_delay: Duration,
    /// Delays of the retry topics, in order: one topic `<pipeline>.retry.<n>` per delay, then
    /// the dead-letter topic.
    pub delays: Vec<Duration>,
}

impl RetryPolicy {
    /// The in-place delays: exponential from `in_place_min_delay` to `in_place_max_delay`,
    /// with jitter, `in_place_attempts` of them.
    pub fn in_place_backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.in_place_min_delay)
            .with_max_delay(self.in_place_max_delay)
            .with_max_times(self.in_place_attempts)
            .with_jitter()
            .build()
    }
}

/// Parses `250ms`, `5s`, `1m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 500ms, 5s, 1m or 2h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m or h)")),
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            in_place_attempts: 3,
            in_place_min_delay: Duration::from_millis(100),
            in_place_max_delay: Duration::from_secs(2),
            delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(60),
                Duration::from_secs(600),
            ],
        }
    }
}

/// The retry and dead-letter topic names of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineTopics {
    base: String,
}

impl PipelineTopics {
    /// Topics of `pipeline`, behind `prefix` (empty in production).
    pub fn new(prefix: &str, pipeline: &str) -> Self {
        PipelineTopics {
            base: format!("{prefix}{pipeline}"),
        }
    }

    /// `<prefix><pipeline>.retry.<level>` (levels start at 1).
    pub fn retry(&self, level: usize) -> String {
        format!("{}.retry.{level}", self.base)
    }

    /// `<prefix><pipeline>.dlq`.
    pub fn dlq(&self) -> String {
        format!("{}.dlq", self.base)
    }
}

/// Where a failed record goes next.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The topic.
    pub topic: String,
    /// For a retry topic: when it may be processed again.
    pub not_before_ms: Option<i64>,
}

/// Picks the next topic of a record that failed at retry `level` (0 = a source topic).
pub fn route(
    topics: &PipelineTopics,
    policy: &RetryPolicy,
    failure: &Failure,
    level: usize,
    now_ms: i64,
) -> Route {
    match (failure.class.is_retryable(), policy.delays.get(level)) {
        (true, Some(delay)) => Route {
            topic: topics.retry(level + 1),
            not_before_ms: Some(now_ms + delay.as_millis() as i64),
        },
        _ => Route {
            topic: topics.dlq(),
            not_before_ms: None,
        },
    }
}

/// A failed record on its way to a retry or dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The record as consumed (from a source or a retry topic).
    pub record: RawRecord,
    /// The pipeline's name.
    pub pipeline: String,
    /// The last failure.
    pub failure: Failure,
    /// Attempts in total, this hop included.
    pub attempts: u32,
    /// Time of the last failure.
    pub now_ms: i64,
}

impl DeadLetter {
    /// The headers of the outgoing record: the original ones minus ours, then the context.
    pub fn headers(&self, not_before_ms: Option<i64>) -> OwnedHeaders {
        let origin = self.record.origin();
        let first = origin.first_failure_ms.unwrap_or(self.now_ms);
        let key = self
            .record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut out = OwnedHeaders::new_with_capacity(self.record.headers.len() + 12);
        for (k, v) in &self.record.headers {
            if !header::ALL.contains(&k.as_str()) {
                out = out.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
        }
        let mut context: Vec<(&str, String)> = vec![
            (header::ORIGINAL_TOPIC, origin.topic),
            (header::ORIGINAL_PARTITION, origin.partition.to_string()),
            (header::ORIGINAL_OFFSET, origin.offset.to_string()),
            (header::ORIGINAL_KEY, key.into_owned()),
            (header::PIPELINE, self.pipeline.clone()),
            (header::ERROR_CLASS, self.failure.class.as_str().to_owned()),
            (header::ERROR_MESSAGE, self.failure.message.clone()),
            (header::ATTEMPTS, self.attempts.to_string()),
            (header::FIRST_FAILURE, first.to_string()),
            (header::LAST_FAILURE, self.now_ms.to_string()),
        ];
        if let Some(at) = not_before_ms {
            context.push((header::NOT_BEFORE, at.to_string()));
        }
        for (k, v) in &context {
            out = out.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        out
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }
    use rdkafka::message::Headers;

    fn record() -> RawRecord {
        RawRecord {
            topic: "anime".into(),
            partition: 2,
            offset: 41,
            key: Some(b"a1".to_vec()),
            payload: Some(b"garbage".to_vec()),
            headers: vec![("correlation-id".into(), b"c-1".to_vec())],
        }
    }

    fn as_record(headers: &OwnedHeaders, topic: &str) -> RawRecord {
        RawRecord {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            key: Some(b"a1".to_vec()),
            payload: None,
            headers: headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn retryable_failures_climb_the_levels_then_reach_the_dlq() {
        let topics = PipelineTopics::new("t-", "indexer");
        let policy = RetryPolicy::default();
        let retry = Failure::retryable("503");
        let r = route(&topics, &policy, &retry, 0, 1000);
        assert_eq!(r.topic, "t-indexer.retry.1");
        assert_eq!(r.not_before_ms, Some(6000));
        assert_eq!(
            route(&topics, &policy, &retry, 2, 0).topic,
            "t-indexer.retry.3"
        );
        assert_eq!(route(&topics, &policy, &retry, 3, 0).topic, "t-indexer.dlq");
        let bad = Failure::permanent("not the wire format");
        assert_eq!(route(&topics, &policy, &bad, 0, 0).topic, "t-indexer.dlq");
    }

    #[test]
    fn headers_carry_the_context_and_survive_a_second_hop() {
        let letter = DeadLetter {
            record: record(),
            pipeline: "indexer".into(),
            failure: Failure::retryable("sink: 503"),
            attempts: 4,
            now_ms: 100,
        };
        let first = as_record(&letter.headers(Some(5100)), "indexer.retry.1");
        assert_eq!(first.header("correlation-id"), Some("c-1"));
        assert_eq!(first.header(header::ORIGINAL_OFFSET), Some("41"));
        assert_eq!(first.header(header::ORIGINAL_KEY), Some("a1"));
        assert_eq!(first.header(header::NOT_BEFORE), Some("5100"));
        let origin = first.origin();
        assert_eq!(
            (origin.topic.as_str(), origin.partition, origin.offset),
            ("anime", 2, 41)
        );
        assert_eq!(origin.attempts, 4);

        let second = DeadLetter {
            record: first,
            pipeline: "indexer".into(),
            failure: Failure::permanent("sink: 400"),
            attempts: 5,
            now_ms: 9000,
        };
        let dlq = as_record(&second.headers(None), "indexer.dlq");
        assert_eq!(dlq.header(header::ORIGINAL_TOPIC), Some("anime"));
        assert_eq!(dlq.header(header::FIRST_FAILURE), Some("100"));
        assert_eq!(dlq.header(header::LAST_FAILURE), Some("9000"));
        assert_eq!(dlq.header(header::ERROR_CLASS), Some("permanent"));
        assert_eq!(dlq.header(header::NOT_BEFORE), None);
        assert_eq!(
            dlq.headers
                .iter()
                .filter(|(k, _)| k == header::ATTEMPTS)
                .count(),
            1
        );
    }
}
