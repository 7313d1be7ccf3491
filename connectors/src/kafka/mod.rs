//! Kafka client configurations with the project's guarantees built in.
//!
//! Every producer is idempotent with `acks=all`, so a retried send never duplicates or
//! reorders records of one partition. Every consumer is at-least-once: auto-commit is on but
//! auto *store* is off, so the background commit only ever commits offsets that the caller
//! stored explicitly (offset + 1) after its sink confirmed the record.
//!
//! [`produce_outcome`] maps a failed produce to the sinks' failure model ([`Outcome`]):
//! permanent (e.g. too large) or unavailable (wait and send again).
//!
//! [`Producer`] (`producer.rs`) is the producer every service uses: a future per record,
//! delivered by a thread that does not spin. [`ErrorLog`] (`error_log.rs`) says which of a
//! client's repeated errors to log (each one once per 10 s while it repeats).
//! [`transactions`] finds and completes hanging transactions (the admin requests librdkafka
//! does not offer).

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::Outcome;

mod error_log;
mod producer;
pub mod transactions;

pub use error_log::{ERROR_LOG_EVERY, ErrorLog};
pub use producer::{Deliveries, Delivering, Producer};

/// Default bootstrap servers of the local stack.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Configuration of an idempotent producer (`enable.idempotence=true`, `acks=all`).
///
/// `linger.ms` stays at 1 ms: the outbox relay cares about latency more than batch size
/// (each mutation's record would otherwise wait the linger alone at low rates; under load
/// records still batch while earlier requests are in flight).
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    config
}

/// Configuration of an at-least-once consumer in `group_id`.
///
/// Offsets are committed every `auto.commit.interval.ms`, but only those stored with
/// `store_offset` after delivery; callers must also commit on revoke and on shutdown.
///
/// Prefetching is bounded to 16 MiB per consumer (`queued.max.messages.kbytes`, librdkafka's
/// default is 64 MiB) and, once that is reached, fetching resumes 10 ms after the queue has
/// room (`fetch.queue.backoff.ms`; librdkafka's default of 1 s stalls a consumer that drains
/// its queue faster than that: a lane catching up on a backlog spent more than half of its
/// time idle, see `docs/benchmarks.md`). A fetch with nothing to return waits at most
/// 100 ms (`fetch.wait.max.ms`, default 500 ms): with the default, a fresh group's first
/// record came about one wait late (the indexer's start-up to its first record took
/// 0.87-0.89 s, and 0.41-0.48 s with 100 ms). Retry lanes keep the default (`Source::tune`
/// in the runtime): they are mostly idle and never in a hurry.
pub fn consumer_config(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100");
    config
}

/// What a failed produce means, in the failure model of sinks: `Permanent` when sending the
/// same record again can never succeed (too large for the topic or the producer, invalid,
/// not authorised, no such topic name allowed), `Unavailable` otherwise (timeouts, brokers
/// down, leader elections, full queues: wait and send again).
pub fn produce_outcome(error: &KafkaError) -> Outcome {
    let permanent = refuses_record(error)
        || matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidArgument
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::UnsupportedForMessageFormat
                    | RDKafkaErrorCode::UnsupportedVersion
            )
        );
    if permanent {
        Outcome::Permanent(error.to_string())
    } else {
        Outcome::Unavailable(error.to_string())
    }
}

/// Whether Kafka refused this one record for good (its size or form), as opposed to the
/// topic, the cluster or the client being unusable: retrying the same bytes never passes,
/// while other records still can.
pub fn refuses_record(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_too_large_is_permanent_a_timeout_is_not() {
        let large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(produce_outcome(&large), Outcome::Permanent(_)));
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(produce_outcome(&timeout).is_unavailable());
        assert!(refuses_record(&large) && !refuses_record(&timeout));
        let denied = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(
            !refuses_record(&denied),
            "a topic-wide refusal is not one record's fault"
        );
    }

    #[test]
    fn producer_is_idempotent_with_acks_all() {
        let config = producer_config("b:9092");
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn consumer_never_stores_offsets_by_itself() {
        let config = consumer_config("b:9092", "g");
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("g"));
    }
}
