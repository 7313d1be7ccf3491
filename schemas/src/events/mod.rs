//! Rust types of the topics' values: the [`Envelope`] and each aggregate's payloads.
//!
//! Field names follow the `.avsc` files (camelCase). A `data` union is a Rust enum whose
//! variants are named like the union's record branches and listed in the same order, so
//! both our decoder and the generic `apache-avro` path map branches to variants.

mod alerts;
mod anime;
mod comment;
mod episode;
mod logs;
mod organization;
mod stats;
mod subscription;
mod user;

pub mod samples;

pub use alerts::{Alert, AlertState};
pub use anime::{AnimeData, AnimeDeleted, AnimeState, AnimeStatus};
pub use comment::{CommentData, CommentDeleted, CommentModerated, CommentPosted, CommentStatus};
pub use episode::{EpisodeData, EpisodeDeleted, EpisodeState};
pub use logs::{LogLevel, LogRecord};
pub use organization::{
    OrganizationCreated, OrganizationData, OrganizationMember, OrganizationMemberRemoved,
    OrganizationState,
};
pub use stats::{AnimeStat, StatKind};
pub use subscription::{SubscriptionCancelled, SubscriptionData, SubscriptionStarted};
pub use user::{UserData, UserDeleted, UserRole, UserState, UserUpdated};

use serde::{Deserialize, Serialize};

use crate::Topic;

/// The envelope of every aggregate event: the seed's BaseEvent plus the aggregate's id and
/// version. `T` is the topic's payload union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// Unique id of the event (a UUID string).
    pub event_id: String,
    /// The seed's event name, e.g. `anime.updated`.
    pub event_type: String,
    /// Commit time, milliseconds since the epoch (UTC).
    pub timestamp: i64,
    /// Producing service.
    pub source: String,
    /// Version of the event contract.
    pub version: i32,
    /// Correlation id of the causing request.
    pub correlation_id: Option<String>,
    /// Id of the causing event or command.
    pub causation_id: Option<String>,
    /// Entity id; also the record key.
    pub aggregate_id: String,
    /// Row version after the change.
    pub aggregate_version: i64,
    /// The payload.
    pub data: T,
}

/// A value type bound to its topic: the reader schema our decoder resolves writers against.
pub trait TopicValue: serde::de::DeserializeOwned + Serialize {
    /// The topic whose value schema describes this type.
    const TOPIC: Topic;
}

/// A payload union: knows each branch's seed event name.
pub trait EventData {
    /// The event type of this branch, e.g. `anime.deleted`.
    fn event_type(&self) -> &'static str;
}

macro_rules! topic_value {
    ($($data:ty => $topic:expr),* $(,)?) => {
        $(impl TopicValue for Envelope<$data> {
            const TOPIC: Topic = $topic;
        })*
    };
}

topic_value! {
    UserData => Topic::User,
    OrganizationData => Topic::Organization,
    AnimeData => Topic::Anime,
    EpisodeData => Topic::Episode,
    CommentData => Topic::Comment,
    SubscriptionData => Topic::Subscription,
}

impl TopicValue for LogRecord {
    const TOPIC: Topic = Topic::Logs;
}

impl TopicValue for Alert {
    const TOPIC: Topic = Topic::Alerts;
}

impl TopicValue for AnimeStat {
    const TOPIC: Topic = Topic::AnimeStats;
}
