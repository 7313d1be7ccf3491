//! Schemas: the Avro contract of every topic, its Rust types, and the registry-aware codec.
//!
//! Layout:
//! - `avro/<topic>.avsc`: the current value schema of each topic (subject `<topic>-value`);
//!   `avro/released/<topic>.vN.avsc`: every released version, which a test holds the
//!   current schema BACKWARD-compatible with.
//! - [`Topic`]: the topics, their subjects, schemas and event types.
//! - [`events`]: the Rust types: the [`events::Envelope`] and each aggregate's payloads.
//! - [`wire`]: the Confluent wire-format framing (`0x00`, schema id, Avro body).
//! - [`codec`]: our Avro decoder (schema resolution compiled once per writer schema id,
//!   then straight into the Rust types) and the [`Codec`] that caches it per id.
//! - [`Topic::visit`]: the topic → value type dispatch, once ([`Codec::decode_json`],
//!   [`Codec::encode_json`] for the code that holds a topic at run time).
//! - [`indices`]: the names of the search indices, shared by the indexer and the API.
//! - [`registry_client`]: the few registry calls the codec and start-up need.
//!
//! See `docs/events.md` for topics, keys, event types, the envelope and how to evolve a schema.

pub mod codec;
mod dispatch;
pub mod events;
pub mod indices;
pub mod registry_client;
mod topics;
pub mod wire;

pub use codec::{Codec, DecodeError, Decoder, EncodeError};
pub use dispatch::ValueVisitor;
pub use events::{Envelope, TopicValue};
pub use topics::Topic;

/// The schema registry of the local stack (`make up`): the one default of every
/// `SCHEMA_REGISTRY_URL`.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:8081";
