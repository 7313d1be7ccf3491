//! Connectors: the clients, sinks and sources that the pipelines runtime and the API plug in.
//!
//! Each connector is layered the same way: a typed config, a pure request
//! builder, a service doing the I/O and turning responses into a delivery status, a retry
//! policy, and the sink on top. Here is the first layer of each:
//!
//! - [`kafka`]: client configurations that encode our delivery guarantees once, so no
//!   producer or consumer in the project is configured by hand: the idempotent producer
//!   (`acks=all`) and the at-least-once consumer (offsets stored only after the sink
//!   confirmed a record); and [`kafka::Producer`], the producer every part uses (a future
//!   per record, delivered by a thread that does not spin).
//! - [`search`]: the Elasticsearch-compatible client (OpenSearch here, Elasticsearch 8 in
//!   the docker-compose stack) built from one URL, and [`search::call`], the one call every
//!   part of the project makes to the engine, with the one mapping of its statuses to an
//!   [`ErrorClass`] ([`search::request_class`], [`search::item_class`]).
//! - [`search_sink`]: the Elasticsearch sink (versioned bulk writes read item by item,
//!   soft deletes, index templates behind aliases), in its layers.
//! - [`log_search`]: finding records in the log pipeline's daily indices (by request,
//!   service, level, time), for `anineplus-logs trace` and the API.
//! - [`Outcome`]: the per-record verdict every sink returns.

pub mod kafka;
pub mod log_search;
mod outcome;
pub mod search;
pub mod search_sink;

pub use outcome::{ErrorClass, Outcome};

/// Errors raised while building a connector's client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client could not be created from its configuration.
    #[error("kafka client configuration rejected: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The search engine URL is not a valid URL.
    #[error("invalid search engine URL {url:?}: {source}")]
    SearchUrl {
        /// The URL as configured.
        url: String,
        /// Why it did not parse.
        source: url::ParseError,
    },
    /// The search client could not be built.
    #[error("search client could not be built: {0}")]
    Search(#[from] elasticsearch::http::transport::BuildError),
}

/// Result of the connector constructors.
pub type Result<T> = std::result::Result<T, Error>;
