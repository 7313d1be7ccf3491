use serde::{Deserialize, Serialize};

/// Visibility of a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CommentStatus {
    /// Shown.
    Visible,
    /// Hidden by a moderator.
    Hidden,
}

/// `comment.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentPosted {
    /// Comment id.
    pub comment_id: String,
    /// Anime commented on.
    pub anime_id: String,
    /// Episode commented on, if any.
    pub episode_id: Option<String>,
    /// Author (user id).
    pub author_id: String,
    /// Text.
    pub body: String,
    /// Visibility.
    pub status: CommentStatus,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// `comment.moderated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentModerated {
    /// Comment id.
    pub comment_id: String,
    /// Anime commented on.
    pub anime_id: String,
    /// Episode commented on, if any.
    pub episode_id: Option<String>,
    /// New visibility.
    pub status: CommentStatus,
    /// Why.
    pub reason: Option<String>,
    /// Moderator (user id).
    pub moderated_by: String,
    /// When, ms since the epoch.
    pub moderated_at: i64,
}

/// `comment.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentDeleted {
    /// Comment id.
    pub comment_id: String,
    /// Anime commented on.
    pub anime_id: String,
    /// Episode commented on, if any.
    pub episode_id: Option<String>,
}

/// The `data` union of the `comment` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommentData {
    /// `comment.created`
    CommentCreated(CommentPosted),
    /// `comment.moderated`
    CommentModerated(CommentModerated),
    /// `comment.deleted`
    CommentDeleted(CommentDeleted),
}

impl super::EventData for CommentData {
    fn event_type(&self) -> &'static str {
        match self {
            CommentData::CommentCreated(_) => "comment.created",
            CommentData::CommentModerated(_) => "comment.moderated",
            CommentData::CommentDeleted(_) => "comment.deleted",
        }
    }
}
