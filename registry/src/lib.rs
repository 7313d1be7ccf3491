//! Registry: the schema registry server, speaking Confluent Schema Registry's REST API (AVRO
//! schemas) on port 8081 and storing subjects, versions and schemas in PostgreSQL (database
//! `anineplus_registry`, created by `make up`). Producers and consumers use it through any
//! Confluent client (`schema_registry_converter`, the Java serializers): the wire format's
//! 4-byte schema id is an id of this registry.
//!
//! Guarantees: ids are global and never reused (an id always means the same schema); an equal
//! schema (same canonical JSON and references) gets the same id under every subject; several
//! instances may write to one database at once without duplicate ids or lost versions (see
//! [`store`]); every registration is checked against the subject's compatibility level by
//! [`compat`], whose messages name the field that broke and why.
//!
//! Layout, one purpose per file:
//!
//! - [`config`]: the typed configuration (flags and `REGISTRY_*` variables);
//! - [`server`](run): connect, migrate, serve until cancelled ([`run`], [`serve`], [`router`]);
//! - `http/`: the REST routes, thin handlers over [`Registry`], Confluent's JSON and errors,
//!   behind the access guard (basic authentication, the permission each route needs);
//! - [`auth`]: users, password hashes and per-subject read/write permissions;
//! - [`reload`]: the users file read again on SIGHUP and when it changes;
//! - [`registry`]: the rules (register, look up, check, soft and permanent delete, modes);
//! - [`compat`]: compatibility levels and the Avro schema-resolution checker (polynomial:
//!   each reader/writer pair is decided once);
//! - [`limits`]: the bounds on a submitted schema's size and nesting depth;
//! - [`canonical`]: the canonical JSON that decides schema equality;
//! - [`avro`]: parsing a schema with the schemas its references point at;
//! - [`store`]: PostgreSQL (sessions, advisory locks, the id sequence); `cache`: schemas
//!   by id in memory (immutable, cached forever);
//! - [`mode`], [`error`]: the modes, and the one error type with Confluent's codes.
//!
//! The binary (`src/main.rs`) only parses the config, starts JSON logs and runs until
//! SIGINT/SIGTERM.

pub mod auth;
pub mod avro;
mod cache;
pub mod canonical;
pub mod compat;
pub mod config;
pub mod error;
mod http;
pub mod limits;
pub mod mode;
pub mod registry;
pub mod reload;
mod server;
pub mod store;

pub use auth::Access;
pub use compat::Compatibility;
pub use config::Config;
pub use error::{Error, Result};
pub use http::router;
pub use limits::Limits;
pub use mode::Mode;
pub use registry::Registry;
pub use server::{connect, run, serve};
pub use store::Store;
