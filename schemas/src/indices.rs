//! The search indices: the names the search indexer writes and the API reads, in one place.
//!
//! Each logical index is an alias `<prefix>-<name>` (prefix `INDEX_PREFIX`, default
//! [`DEFAULT_PREFIX`]) over concrete generations `<prefix>-<name>-v<N>`; the mappings are
//! the indexer's (`anineplus_indexer::indices`).

/// The default `INDEX_PREFIX`.
pub const DEFAULT_PREFIX: &str = "anineplus";

/// The default `LOG_INDEX_PREFIX`: the log pipeline writes daily indices
/// `<prefix>-<service>-YYYY.MM.DD` (`anineplus_logs::documents`), searched as
/// [`log_indices`].
pub const DEFAULT_LOG_PREFIX: &str = "logs";

/// The pattern of every log index under `prefix`: `<prefix>-*`.
pub fn log_indices(prefix: &str) -> String {
    format!("{prefix}-*")
}

/// The logical indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    /// `anime`
    Anime,
    /// `episodes`
    Episodes,
    /// `comments`
    Comments,
    /// `users` (no email)
    Users,
    /// `organizations`
    Organizations,
}

impl Index {
    /// Every index.
    pub const ALL: [Index; 5] = [
        Index::Anime,
        Index::Episodes,
        Index::Comments,
        Index::Users,
        Index::Organizations,
    ];

    /// The name after the prefix.
    pub fn name(self) -> &'static str {
        match self {
            Index::Anime => "anime",
            Index::Episodes => "episodes",
            Index::Comments => "comments",
            Index::Users => "users",
            Index::Organizations => "organizations",
        }
    }

    /// The alias under `prefix`: `<prefix>-<name>`.
    pub fn alias(self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name())
    }
}

/// The analytics pipeline's index: `<prefix>-anime-stats` (a plain index, no generations).
///
/// Written by `anineplus-analytics` with external versions (the offset of the
/// `anime-stats` record + 1, so a replay never goes back), read by the API's
/// `trendingAnime` and `subscriptionCounts`. Two kinds of document:
///
/// - `comments:<animeId>:<windowStart>`: `{"kind": "comments_per_hour", "animeId",
///   "windowStart", "windowEnd" (epoch ms, one-hour tumbling windows on the comments'
///   creation time), "count" (visible, undeleted comments created in the window),
///   "updatedAt"}`;
/// - `plan:<plan>`: `{"kind": "subscriptions_per_plan", "plan", "count" (active
///   subscriptions), "updatedAt"}`.
pub fn stats_index(prefix: &str) -> String {
    format!("{prefix}-anime-stats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_prefixed_names() {
        assert_eq!(Index::Anime.alias(DEFAULT_PREFIX), "anineplus-anime");
        assert_eq!(Index::Organizations.alias("p"), "p-organizations");
        assert_eq!(stats_index("p"), "p-anime-stats");
    }
}
