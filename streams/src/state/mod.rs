//! Stateful streams: keyed state per partition, restored from changelog topics, windows on
//! event time, and pipelines that commit their outputs, state and offsets at least once or
//! exactly once (Kafka transactions).
//!
//! Layout:
//! - [`store`]: [`Store`], the in-memory keyed state of one task, whose writes since the
//!   last commit are kept apart (an abort drops them) and become the commit's changelog
//!   records;
//! - [`window`]: [`Windows`], tumbling and hopping windows with a grace period;
//! - [`processor`]: the [`Processor`] trait (a stateful step: decode, process one record
//!   with its task's store, flush before each commit) and what it emits ([`Output`]);
//! - [`ops`]: the runtime's operators as processors: [`ops::Aggregate`] (`group_by_key` →
//!   `aggregate`, [`ops::count`], [`ops::reduce`]), windowed or not, emitting on change or
//!   on window close; [`ops::Join`] (a table from a topic joined with a stream);
//! - `tasks`: what a lane holds between commits (stores, positions, outputs), shared by
//!   the Kafka lane and the driver;
//! - [`kafka`]: [`StatefulPipeline`], the consumer group on Kafka with restore on assign,
//!   commit on revoke, and the two [`Guarantee`]s;
//! - [`driver`]: [`StateDriver`], the same tasks in memory, for unit tests.
//!
//! The model (`docs/state.md`): a *task* is partition `p` of every input topic; its store
//! holds the state of the keys on that partition, so a processor's inputs must be
//! co-partitioned (the same partition count, keyed alike) and the runtime refuses to start
//! when they are not. A step that groups by another key repartitions first: an upstream
//! processor sends records keyed by the new key to an internal topic, which the next
//! processor reads. Time is event time: a record's Kafka timestamp (set by the upstream
//! step from the event), and a task's stream time is the largest it has seen.

pub mod driver;
pub mod kafka;
pub mod ops;
pub mod processor;
pub mod store;
mod tasks;
pub mod window;

pub use driver::StateDriver;
pub use kafka::{Guarantee, StatefulConfig, StatefulPipeline};
pub use processor::{Emit, Output, Processor, Record, Undecodable};
pub use store::{StateValue, Store};
pub use window::Windows;
