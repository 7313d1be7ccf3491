//! Streams: the Kafka Streams-style runtime the pipelines are built on. It knows topics,
//! schemas and sinks, and no pipeline: each pipeline is a crate of its own under
//! `pipelines/` (the search indexer: `anineplus-indexer`).
//!
//! Layout, bottom up:
//! - [`record`]: a consumed record as bytes ([`record::RawRecord`]) and its origin;
//! - [`topology`]: typed sources (topics decoded through the registry's [`Codec`]) and
//!   per-record operators (`map`, `filter`, `flat_map`, `branch`, the keyed step
//!   `key_by`), closed by a [`sink::Sink`] ([`sink::TopicSink`] repartitions through a topic);
//!   [`Topology::source`] gives the step bound to a source topic;
//! - [`offsets`]: [`offsets::OffsetTracker`], the per-partition contiguous completion that
//!   decides which offset may be stored;
//! - [`failure`] and [`dead_letter`]: a record's failure (classified with the shared
//!   [`failure::ErrorClass`]), the retry policy, the retry and dead-letter topics and their
//!   headers; `retry`: the in-place retries;
//! - [`runtime`]: [`runtime::Pipeline`], the consumer groups that run a topology at least
//!   once; each lane is a source (main or retry), a reader, a transform and a writer, and
//!   settles through a commit strategy (`runtime/commit.rs`: at-least-once watermarks
//!   today, the seam for exactly-once);
//! - [`driver`]: [`driver::TestDriver`], the same lane parts around memory instead of
//!   Kafka, for unit tests of topologies and of the lane logic;
//! - [`metrics`]: Prometheus metrics and the `/metrics` and `/health` endpoint;
//! - [`state`]: stateful steps: keyed state stores backed by changelog topics, windows,
//!   aggregations, and [`state::StatefulPipeline`], which commits outputs, state and
//!   offsets at least once or exactly once (Kafka transactions);
//! - [`dlq`]: the dead-letter engine (scan, filter, replay to the original topic or into a
//!   topology's [`sink::Sink`], purge) that the `anineplus-dlq` tool drives.
//!
//! Topic and header names are documented in [`dead_letter`].
//!
//! [`Codec`]: anineplus_schemas::Codec

pub mod dead_letter;
pub mod dlq;
pub mod driver;
pub mod failure;
pub mod metrics;
pub mod offsets;
pub mod record;
mod retry;
pub mod runtime;
pub mod sink;
pub mod state;
pub mod topology;

pub use runtime::{BatchConfig, Pipeline, PipelineConfig};
pub use topology::{Located, Stream, Topology};

/// Why a pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Kafka refused a client or request.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A connector could not be built.
    #[error(transparent)]
    Connector(#[from] anineplus_connectors::Error),
    /// A topic the runtime needs is missing, or could not be created or configured.
    #[error("topic {topic}: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// A service stayed unavailable (or silent) longer than the work waits for it; what is
    /// not done yet is left where it was, nothing is lost.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A task of the runtime stopped before finishing (it panicked or was cancelled).
    #[error("task stopped: {0}")]
    Task(String),
}

/// Result of the streams runtime.
pub type Result<T> = std::result::Result<T, Error>;
