//! Test kit: the shared harness of every integration test and benchmark.
//!
//! - [`Stack`] holds the addresses of the real services (from the same environment variables
//!   the services read, with the local stack's defaults) and connects to each one, failing
//!   with an error that names the service, its address and its log file when it is down.
//!   There is no skipping: a test that needs Kafka fails when Kafka is missing.
//! - [`unique`] gives per-test topic, group and index names, so tests can run in parallel
//!   against one stack and never see each other's data.
//! - [`TestDatabase`]: a PostgreSQL database of a test's own, dropped even when the test
//!   panics.
//! - [`bench`] collects benchmark figures into `target/bench/results.json` (and reads a
//!   process's CPU time and peak memory).
//! - [`topics`]: topics of a benchmark's own, created, filled and deleted by name.
//! - [`world`]: [`world::KafkaWorld`], a pipeline test's own topics, group and codec.

pub mod bench;
mod database;
mod stack;
pub mod topics;
pub mod world;

pub use database::{TestDatabase, with_database};
pub use stack::{
    DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, DEFAULT_REGISTRY_URL, ServiceDown, Stack,
    registry_url_as,
};

/// A name unique to this call, safe for Kafka topics, consumer groups and index names:
/// lowercase, `prefix-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_their_prefix() {
        let (a, b) = (unique("smoke"), unique("smoke"));
        assert_ne!(a, b);
        assert!(a.starts_with("smoke-"));
        assert_eq!(a, a.to_lowercase());
    }
}
