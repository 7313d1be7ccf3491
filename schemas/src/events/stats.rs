use serde::{Deserialize, Serialize};

/// What an [`AnimeStat`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatKind {
    /// Visible, undeleted comments on one anime created in a one-hour window.
    CommentsPerHour,
    /// Active subscriptions of one plan.
    SubscriptionsPerPlan,
}

/// One result of the analytics pipeline (the `anime-stats` topic, keyed by `stat_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnimeStat {
    /// `comments:<animeId>:<windowStart>` or `plan:<plan>`.
    pub stat_id: String,
    /// What it counts.
    pub kind: StatKind,
    /// The anime (comments per hour).
    pub anime_id: Option<String>,
    /// The plan (subscriptions per plan).
    pub plan: Option<String>,
    /// Window start, ms since the epoch (comments per hour).
    pub window_start: Option<i64>,
    /// Window end, exclusive (comments per hour).
    pub window_end: Option<i64>,
    /// The value.
    pub count: i64,
    /// The stream time it was made at, ms since the epoch.
    pub at: i64,
}
