//! The transactional outbox: [`store`] appends event rows inside the domain's transactions
//! and reads them back for the [`relay`], which publishes them to Kafka in id order.

pub mod relay;
pub mod store;

pub use relay::OutboxRelay;
pub use store::{OutboxEvent, Pending, append};

/// The `LISTEN/NOTIFY` channel an append wakes the relay on.
pub const CHANNEL: &str = "anineplus_outbox";
