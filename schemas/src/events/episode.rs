use serde::{Deserialize, Serialize};

/// Full state of an episode (`episode.created`, `episode.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpisodeState {
    /// Episode id.
    pub episode_id: String,
    /// Anime it belongs to.
    pub anime_id: String,
    /// Number, unique per anime.
    pub number: i32,
    /// Title, if it has one.
    pub title: Option<String>,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date, days since the epoch.
    pub air_date: Option<i32>,
}

/// `episode.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpisodeDeleted {
    /// Episode id.
    pub episode_id: String,
    /// Anime it belonged to.
    pub anime_id: String,
}

/// The `data` union of the `episode` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EpisodeData {
    /// `episode.created`
    EpisodeCreated(EpisodeState),
    /// `episode.updated`
    EpisodeUpdated(EpisodeState),
    /// `episode.deleted`
    EpisodeDeleted(EpisodeDeleted),
}

impl super::EventData for EpisodeData {
    fn event_type(&self) -> &'static str {
        match self {
            EpisodeData::EpisodeCreated(_) => "episode.created",
            EpisodeData::EpisodeUpdated(_) => "episode.updated",
            EpisodeData::EpisodeDeleted(_) => "episode.deleted",
        }
    }
}
