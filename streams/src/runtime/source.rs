//! The two kinds of source a lane reads, and everything that differs between them:
//!
//! - [`Source::Main`] reads the topology's source topics in the pipeline's group; its
//!   reader drains what librdkafka holds and cuts a batch as soon as the sink is idle;
//! - [`Source::Retry`] `n` reads `<pipeline>.retry.<n>` in `<group>.retry.<n>`; each
//!   record waits for its `not-before` header (at most the level's delay), the batch keeps
//!   the plain linger, and a record is transformed by the step of the topic it first
//!   failed in (its `original-topic` header).
//!
//! The lane's parts (reader, transform, writer) ask the source instead of branching on a
//! level number.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

use super::PipelineConfig;
use crate::dead_letter::{self, header};
use crate::record::InFlight;

/// What a lane reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The topology's source topics.
    Main,
    /// Retry topic `level` (1-based), whose records wait `delay` after failing.
    Retry { level: usize, delay: Duration },
}

impl Source {
    /// The main source, then one retry source per delay of the policy.
    pub(crate) fn all(config: &PipelineConfig) -> Vec<Source> {
        std::iter::once(Source::Main)
            .chain(
                config
                    .retry
                    .delays
                    .iter()
                    .enumerate()
                    .map(|(i, delay)| Source::Retry {
                        level: i + 1,
                        delay: *delay,
                    }),
            )
            .collect()
    }

    /// The hop a failure of this source's records is routed from (0 for the source topics):
    /// a record failing at hop `n` goes to retry topic `n + 1`, or to the dead letters.
    pub(crate) fn hop(self) -> usize {
        match self {
            Source::Main => 0,
            Source::Retry { level, .. } => level,
        }
    }

    /// `main` or `retry.<n>`: how health and metrics name the lane.
    pub(crate) fn name(self) -> String {
        match self {
            Source::Main => "main".to_owned(),
            Source::Retry { level, .. } => format!("retry.{level}"),
        }
    }

    /// The consumer group: the pipeline's, or `<group>.retry.<n>`.
    pub(crate) fn group(self, config: &PipelineConfig) -> String {
        match self {
            Source::Main => config.group.clone(),
            Source::Retry { level, .. } => format!("{}.retry.{level}", config.group),
        }
    }

    /// The topics it subscribes to (`sources`: the topology's).
    pub(crate) fn topics(self, config: &PipelineConfig, sources: Vec<String>) -> Vec<String> {
        match self {
            Source::Main => sources,
            Source::Retry { level, .. } => vec![config.topics().retry(level)],
        }
    }

    /// Consumer settings of its own.
    pub(crate) fn tune(self, client: &mut ClientConfig) {
        if let Source::Retry { delay, .. } = self {
            // A retry lane waits up to its delay before a record; stay in the group meanwhile.
            let wait = delay + Duration::from_secs(300);
            client.set("max.poll.interval.ms", wait.as_millis().to_string());
            // Mostly idle, and never in a hurry: librdkafka's longer empty-fetch wait
            // (one request per 500 ms rather than per 100 ms).
            client.set("fetch.wait.max.ms", "500");
        }
    }

    /// Whether the reader drains what the consumer holds and cuts a batch as soon as the
    /// sink is idle (the main source), rather than waiting for each record's due time and
    /// the batch's linger (retry sources).
    pub(crate) fn eager(self) -> bool {
        self == Source::Main
    }

    /// How long `record` must still wait before it is processed.
    pub(crate) fn due_in(self, record: &InFlight) -> Duration {
        match self {
            Source::Main => Duration::ZERO,
            Source::Retry { delay, .. } => {
                let due = record
                    .header(header::NOT_BEFORE)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or_default();
                due_in(due, dead_letter::now_ms(), delay)
            }
        }
    }

    /// The topic whose step transforms `record`: the one it was consumed from, or for a
    /// retry record the one it first failed in.
    pub(crate) fn step_topic(self, record: &InFlight) -> StepTopic {
        match self {
            Source::Main => StepTopic::Shared(record.topic.clone()),
            Source::Retry { .. } => StepTopic::Origin(record.to_raw().origin().topic),
        }
    }
}

/// The topic of a record's step (see [`Source::step_topic`]).
pub(crate) enum StepTopic {
    /// The record's own topic, shared by the records of a batch (compared by pointer, so
    /// a run of records of one topic looks its step up once).
    Shared(Arc<str>),
    /// The topic a retry record first failed in.
    Origin(String),
}

impl StepTopic {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            StepTopic::Shared(t) => t,
            StepTopic::Origin(t) => t,
        }
    }
}

/// How long to wait at `now_ms` for a record due at `due_ms`, capped at `delay` (a
/// `not-before` further away comes from a skewed clock or a hand-made record and must not
/// stall the lane).
pub(crate) fn due_in(due_ms: i64, now_ms: i64, delay: Duration) -> Duration {
    let wait = Duration::from_millis(u64::try_from(due_ms - now_ms).unwrap_or(0));
    wait.min(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_future_not_before_waits_no_longer_than_the_lane_delay() {
        let delay = Duration::from_secs(5);
        assert_eq!(due_in(1_000, 2_000, delay), Duration::ZERO, "overdue");
        assert_eq!(due_in(3_000, 2_000, delay), Duration::from_secs(1));
        assert_eq!(due_in(i64::MAX, 2_000, delay), delay, "far future: capped");
    }

    #[test]
    fn one_main_source_then_one_retry_source_per_delay() {
        let mut config = PipelineConfig::new("p", "b:9092", "g");
        config.retry.delays = vec![Duration::from_secs(1), Duration::from_secs(10)];
        let sources = Source::all(&config);
        let names: Vec<_> = sources.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["main", "retry.1", "retry.2"]);
        assert_eq!(sources[2].group(&config), "g.retry.2");
        assert_eq!(sources[0].group(&config), "g");
        assert_eq!(sources[1].topics(&config, vec!["a".into()]), ["p.retry.1"]);
        assert_eq!(sources[0].topics(&config, vec!["a".into()]), ["a"]);
        assert_eq!(
            sources.iter().map(|s| s.hop()).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(sources[0].eager() && !sources[1].eager());
    }
}
