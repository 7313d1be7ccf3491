//! Schemas: the Avro contract of every topic.
//!
//! This crate will hold the `.avsc` file of each topic (one value schema per aggregate
//! topic, subject `<topic>-value`), the Rust types of the envelope and payloads, and the
//! registry-aware codec. The Foundation provides the part every producer and consumer
//! shares already: the Confluent wire format framing in [`wire`].

pub mod wire;
