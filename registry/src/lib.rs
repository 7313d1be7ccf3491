//! Registry: the schema registry server, speaking Confluent Schema Registry's REST API on
//! port 8081 and storing subjects, versions and schemas in PostgreSQL (database
//! `anineplus_registry`, created by `make up`).
//!
//! Not built yet: the Foundation only reserves its place in the workspace and its database.
//! See the "Avro schemas and a Confluent-compatible schema registry" issue.
