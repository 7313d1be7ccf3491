//! The registry-aware Avro codec.
//!
//! - [`Decoder`]: one writer schema compiled against one reader schema; decodes Avro
//!   bodies straight into Rust types (no intermediate `Value`). Pure, no I/O.
//! - [`Codec`]: frames and unframes the Confluent wire format and keeps one [`Decoder`]
//!   per (writer schema id, topic), fetching each writer schema from the registry once.
//!   Encoding registers (or looks up) the topic's current schema once and caches its id.
//!
//! Every failure says whether retrying can help ([`DecodeError::is_retryable`]): only a
//! registry that cannot be reached is worth retrying; bytes that are not the wire format,
//! an unknown schema id, an incompatible writer schema or corrupt Avro are permanent and go
//! to a dead-letter topic.

mod de;
mod plan;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use apache_avro::Schema;
use serde::Deserialize;

pub use de::Corrupt;
pub use plan::Incompatible;

use crate::registry_client::{RegistryClient, RegistryError};
use crate::{Topic, TopicValue, wire};

/// One writer schema compiled against one reader schema.
#[derive(Debug, Clone)]
pub struct Decoder {
    step: Arc<plan::Step>,
}

impl Decoder {
    /// Compiles the resolution of `writer` into `reader` (Avro's schema resolution rules).
    pub fn new(writer: &Schema, reader: &Schema) -> Result<Self, Incompatible> {
        Ok(Decoder {
            step: Arc::new(plan::compile(writer, reader)?),
        })
    }

    /// A decoder for data written with `schema` and read with the same schema.
    pub fn identity(schema: &Schema) -> Result<Self, Incompatible> {
        Ok(Decoder {
            step: Arc::new(plan::compile_identity(schema)?),
        })
    }

    /// Decodes one Avro body (no wire-format header). Trailing bytes are an error.
    pub fn decode<'de, T: Deserialize<'de>>(&self, body: &'de [u8]) -> Result<T, Corrupt> {
        let mut input = de::Input::new(body);
        let value = T::deserialize(de::ValueDeserializer {
            input: &mut input,
            step: &self.step,
        })?;
        match input.remaining() {
            0 => Ok(value),
            n => Err(Corrupt {
                offset: body.len() - n,
                reason: format!("{n} bytes left after the value"),
            }),
        }
    }
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the Confluent wire format.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// The registry does not know the writer schema id.
    #[error("unknown schema id {0}: the registry has no such schema")]
    UnknownSchemaId(u32),
    /// The writer schema is not valid Avro.
    #[error("writer schema {id} does not parse: {reason}")]
    InvalidWriterSchema {
        /// The schema id.
        id: u32,
        /// The parser's message.
        reason: String,
    },
    /// The writer schema cannot be read as this topic's reader schema.
    #[error("writer schema {id} cannot be read as the {topic} schema: {source}")]
    Incompatible {
        /// The schema id.
        id: u32,
        /// The reader's topic.
        topic: Topic,
        /// Where and why.
        source: Incompatible,
    },
    /// The Avro body does not decode with its writer schema.
    #[error("schema id {id}: {source}")]
    Corrupt {
        /// The schema id.
        id: u32,
        /// Where and why.
        source: Corrupt,
    },
    /// The registry could not be asked.
    #[error("schema registry unavailable: {0}")]
    Registry(RegistryError),
}

impl DecodeError {
    /// Whether the same record may decode later: only when the registry was unreachable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::Registry(e) if e.is_retryable())
    }
}

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The registry refused the topic's schema or could not be reached.
    #[error("registering the {topic} schema: {source}")]
    Registry {
        /// The topic.
        topic: Topic,
        /// The registry's answer.
        source: RegistryError,
    },
    /// The value does not fit the schema (a bug in the Rust types or the `.avsc`).
    #[error("value does not match the {topic} schema: {reason}")]
    Value {
        /// The topic.
        topic: Topic,
        /// The serializer's message.
        reason: String,
    },
}

impl EncodeError {
    /// Whether trying again may succeed (the registry was unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, EncodeError::Registry { source, .. } if source.is_retryable())
    }
}

/// The reader schema of each topic, parsed once per process.
pub fn reader_schema(topic: Topic) -> &'static Schema {
    static SCHEMAS: OnceLock<HashMap<Topic, Schema>> = OnceLock::new();
    &SCHEMAS.get_or_init(|| {
        Topic::ALL
            .into_iter()
            .map(|t| {
                (
                    t,
                    Schema::parse_str(t.schema())
                        .unwrap_or_else(|e| panic!("{t}.avsc does not parse: {e}")),
                )
            })
            .collect()
    })[&topic]
}

/// The registry-aware codec: a cache of decoders per writer id and of schema ids per topic.
#[derive(Debug, Clone)]
pub struct Codec {
    registry: RegistryClient,
    decoders: Arc<RwLock<HashMap<(u32, Topic), Decoder>>>,
    writer_ids: Arc<RwLock<HashMap<Topic, u32>>>,
}

impl Codec {
    /// A codec backed by the registry at `registry_url`.
    pub fn new(registry_url: &str) -> Self {
        Codec {
            registry: RegistryClient::new(registry_url),
            decoders: Default::default(),
            writer_ids: Default::default(),
        }
    }

    /// The registry client this codec uses.
    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// Decodes a framed record of `T`'s topic, fetching its writer schema on first sight.
    pub async fn decode<T: TopicValue>(&self, framed: &[u8]) -> Result<T, DecodeError> {
        let (id, _) = wire::split(framed)?;
        if !self.has_decoder(id, T::TOPIC) {
            self.prepare(id, T::TOPIC).await?;
        }
        self.decode_prepared(framed)
    }

    /// Whether the decoder for `id` is ready, so [`Codec::decode_prepared`] needs no I/O.
    pub fn has_decoder(&self, id: u32, topic: Topic) -> bool {
        self.decoders
            .read()
            .expect("decoder cache poisoned")
            .contains_key(&(id, topic))
    }

    /// Fetches writer schema `id` and compiles it against `topic`'s reader schema.
    pub async fn prepare(&self, id: u32, topic: Topic) -> Result<(), DecodeError> {
        let text = match self.registry.schema_by_id(id).await {
            Ok(text) => text,
            Err(RegistryError::NotFound { .. }) => return Err(DecodeError::UnknownSchemaId(id)),
            Err(e) => return Err(DecodeError::Registry(e)),
        };
        let writer = Schema::parse_str(&text).map_err(|e| DecodeError::InvalidWriterSchema {
            id,
            reason: e.to_string(),
        })?;
        let decoder = Decoder::new(&writer, reader_schema(topic))
            .map_err(|source| DecodeError::Incompatible { id, topic, source })?;
        self.decoders
            .write()
            .expect("decoder cache poisoned")
            .insert((id, topic), decoder);
        Ok(())
    }

    /// Prepares writer id `id` as this build's own schema of `topic` (writer = reader),
    /// without asking the registry: for tests and tools that frame records themselves.
    pub fn prepare_local(&self, id: u32, topic: Topic) {
        let decoder = Decoder::identity(reader_schema(topic)).expect("a schema reads itself");
        self.decoders
            .write()
            .expect("decoder cache poisoned")
            .insert((id, topic), decoder);
    }

    /// Decodes a framed record whose decoder is already prepared (no I/O, no await): the
    /// hot path of the pipelines. An unprepared id fails with [`DecodeError::UnknownSchemaId`];
    /// call [`Codec::prepare`] first.
    pub fn decode_prepared<T: TopicValue>(&self, framed: &[u8]) -> Result<T, DecodeError> {
        let (id, body) = wire::split(framed)?;
        let decoder = self
            .decoders
            .read()
            .expect("decoder cache poisoned")
            .get(&(id, T::TOPIC))
            .cloned()
            .ok_or(DecodeError::UnknownSchemaId(id))?;
        decoder
            .decode(body)
            .map_err(|source| DecodeError::Corrupt { id, source })
    }

    /// The id of the current schema of `topic` under `<topic>-value`: looked up first (a
    /// read, so a service allowed only to read subjects can write to a topic whose schema
    /// `make up` registered), registered when the subject does not have it yet (a write).
    pub async fn register(&self, topic: Topic) -> Result<u32, EncodeError> {
        if let Some(id) = self
            .writer_ids
            .read()
            .expect("id cache poisoned")
            .get(&topic)
        {
            return Ok(*id);
        }
        let subject = topic.subject();
        let registry_error = |source| EncodeError::Registry { topic, source };
        let id = match self
            .registry
            .lookup(&subject, topic.schema())
            .await
            .map_err(registry_error)?
        {
            Some(id) => id,
            None => self
                .registry
                .register(&subject, topic.schema())
                .await
                .map_err(registry_error)?,
        };
        self.writer_ids
            .write()
            .expect("id cache poisoned")
            .insert(topic, id);
        Ok(id)
    }

    /// Encodes `value` in the wire format with its topic's current schema.
    pub async fn encode<T: TopicValue>(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let id = self.register(T::TOPIC).await?;
        encode_with_id(id, value)
    }
}

/// Encodes `value` with its topic's current schema under the given registered `id`.
pub fn encode_with_id<T: TopicValue>(id: u32, value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(256);
    wire::write_header(id, &mut out);
    apache_avro::write_avro_datum_ref(
        reader_schema(T::TOPIC),
        resolved_names(T::TOPIC).get_names(),
        value,
        &mut out,
    )
    .map_err(|e| EncodeError::Value {
        topic: T::TOPIC,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// The named types of each topic's schema, resolved once (resolving them per encode cost
/// more than the encode itself).
fn resolved_names(topic: Topic) -> &'static apache_avro::schema::ResolvedSchema<'static> {
    static NAMES: OnceLock<HashMap<Topic, apache_avro::schema::ResolvedSchema<'static>>> =
        OnceLock::new();
    &NAMES.get_or_init(|| {
        Topic::ALL
            .into_iter()
            .map(|t| {
                let names = apache_avro::schema::ResolvedSchema::try_from(reader_schema(t))
                    .unwrap_or_else(|e| panic!("{t}.avsc does not resolve: {e}"));
                (t, names)
            })
            .collect()
    })[&topic]
}

#[cfg(test)]
mod tests;
