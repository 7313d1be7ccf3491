//! Pipelines: the Kafka Streams-style runtime (sources, operators, sinks, retry and
//! dead-letter topics, offsets) and the pipelines built on it: the search indexer, the log
//! pipeline, and the operators' dead-letter CLI.
//!
//! Not built yet: the Foundation only reserves its place in the workspace. The Kafka and
//! search client settings it will use live in `anineplus-connectors`.
