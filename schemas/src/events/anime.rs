use serde::{Deserialize, Serialize};

/// Airing status of an anime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AnimeStatus {
    /// Currently airing.
    Airing,
    /// Finished airing.
    Finished,
    /// Announced, not yet airing.
    Upcoming,
}

/// Full state of an anime (`anime.created`, `anime.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnimeState {
    /// Anime id.
    pub anime_id: String,
    /// Title.
    pub title: String,
    /// Synopsis.
    pub synopsis: Option<String>,
    /// Genres, lowercase.
    pub genres: Vec<String>,
    /// Airing status.
    pub status: AnimeStatus,
    /// Year of first release.
    pub release_year: Option<i32>,
    /// Other titles (translations, romanisations); empty when it has none. Events of
    /// `anime.v1` have none: the schema's default `[]`.
    #[serde(default)]
    pub alternative_titles: Vec<String>,
}

/// `anime.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnimeDeleted {
    /// Anime id.
    pub anime_id: String,
}

/// The `data` union of the `anime` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnimeData {
    /// `anime.created`
    AnimeCreated(AnimeState),
    /// `anime.updated`
    AnimeUpdated(AnimeState),
    /// `anime.deleted`
    AnimeDeleted(AnimeDeleted),
}

impl super::EventData for AnimeData {
    fn event_type(&self) -> &'static str {
        match self {
            AnimeData::AnimeCreated(_) => "anime.created",
            AnimeData::AnimeUpdated(_) => "anime.updated",
            AnimeData::AnimeDeleted(_) => "anime.deleted",
        }
    }
}
