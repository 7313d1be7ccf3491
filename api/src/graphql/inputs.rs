//! Input types of the mutations and filters.

use async_graphql::{ID, InputObject};

use crate::domain::{AnimeStatus, MemberRole};

/// `signUp` input.
#[derive(Debug, InputObject)]
pub struct SignUpInput {
    /// Email, unique.
    pub email: String,
    /// Display name (1 to 100 characters).
    pub name: String,
    /// Password (8 to 128 characters).
    pub password: String,
}

/// `login` input.
#[derive(Debug, InputObject)]
pub struct LoginInput {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `createAnime` input.
#[derive(Debug, InputObject)]
pub struct CreateAnimeInput {
    /// Title (1 to 200 characters).
    pub title: String,
    /// Synopsis (at most 5000 characters).
    pub synopsis: Option<String>,
    /// Genres (at most 20).
    #[graphql(default)]
    pub genres: Vec<String>,
    /// Airing status.
    pub status: AnimeStatus,
    /// Year of first release (1900 to 2100).
    pub release_year: Option<i32>,
}

/// `updateAnime` input: absent fields are kept.
#[derive(Debug, InputObject)]
pub struct UpdateAnimeInput {
    /// Title.
    pub title: Option<String>,
    /// Synopsis.
    pub synopsis: Option<String>,
    /// Genres (replace the list).
    pub genres: Option<Vec<String>>,
    /// Status.
    pub status: Option<AnimeStatus>,
    /// Year of first release.
    pub release_year: Option<i32>,
}

/// Filters of `animes`.
#[derive(Debug, Default, InputObject)]
pub struct AnimeFilterInput {
    /// Only this status.
    pub status: Option<AnimeStatus>,
    /// Only anime with this genre.
    pub genre: Option<String>,
    /// Only this release year.
    pub release_year: Option<i32>,
}

/// `createEpisode` input.
#[derive(Debug, InputObject)]
pub struct CreateEpisodeInput {
    /// The anime.
    pub anime_id: ID,
    /// Number, unique per anime.
    pub number: i32,
    /// Title.
    pub title: String,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date (YYYY-MM-DD).
    pub air_date: Option<String>,
}

/// `updateEpisode` input: absent fields are kept.
#[derive(Debug, InputObject)]
pub struct UpdateEpisodeInput {
    /// Number, unique per anime.
    pub number: Option<i32>,
    /// Title.
    pub title: Option<String>,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date (YYYY-MM-DD).
    pub air_date: Option<String>,
}

/// `postComment` input.
#[derive(Debug, InputObject)]
pub struct PostCommentInput {
    /// The anime.
    pub anime_id: ID,
    /// One of its episodes, to comment on that episode.
    pub episode_id: Option<ID>,
    /// Text (1 to 5000 characters), stored verbatim.
    pub body: String,
}

/// `createOrganization` input.
#[derive(Debug, InputObject)]
pub struct CreateOrganizationInput {
    /// Name.
    pub name: String,
    /// Unique slug (3 to 64 of a-z, 0-9, -).
    pub slug: String,
}

/// `addMember` input.
#[derive(Debug, InputObject)]
pub struct AddMemberInput {
    /// The organization.
    pub organization_id: ID,
    /// The user to add.
    pub user_id: ID,
    /// Role inside the organization.
    #[graphql(default_with = "MemberRole::Member")]
    pub role: MemberRole,
}

/// `updateProfile` input.
#[derive(Debug, InputObject)]
pub struct UpdateProfileInput {
    /// New display name.
    pub name: String,
}
