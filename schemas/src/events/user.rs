use serde::{Deserialize, Serialize};

/// Role of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UserRole {
    /// A member of the public.
    User,
    /// May moderate comments.
    Moderator,
    /// May do anything.
    Admin,
    /// Runs the pipelines (the operators' console). Added after v1: readers of v1 read it
    /// as the enum's default, `USER`.
    Operator,
}

/// Full state of a new user (`user.created`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    /// User id.
    pub user_id: String,
    /// Email address; never indexed for search.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: UserRole,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// Full state after a change (`user.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdated {
    /// User id.
    pub user_id: String,
    /// Email address; never indexed for search.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: UserRole,
}

/// `user.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDeleted {
    /// User id.
    pub user_id: String,
}

/// The `data` union of the `user` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserData {
    /// `user.created`
    UserCreated(UserState),
    /// `user.updated`
    UserUpdated(UserUpdated),
    /// `user.deleted`
    UserDeleted(UserDeleted),
}

impl super::EventData for UserData {
    fn event_type(&self) -> &'static str {
        match self {
            UserData::UserCreated(_) => "user.created",
            UserData::UserUpdated(_) => "user.updated",
            UserData::UserDeleted(_) => "user.deleted",
        }
    }
}
