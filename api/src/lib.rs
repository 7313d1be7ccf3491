//! API: the GraphQL API process (axum + async-graphql on port 3000). It stores writes in
//! PostgreSQL (database `anineplus`) and publishes one Avro event per change through a
//! transactional outbox.
//!
//! Not built yet: the Foundation only reserves its place in the workspace. See the
//! "GraphQL API" issue.
