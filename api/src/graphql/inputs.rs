//! Input types of the mutations and filters.

use async_graphql::{ID, InputObject, MaybeUndefined};

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
    /// Other titles: translations, romanisations (at most 20, each 1 to 200 characters;
    /// repeats are dropped).
    #[graphql(default)]
    pub alternative_titles: Vec<String>,
}

/// `updateAnime` input: absent fields are kept; `null` clears an optional field
/// (`synopsis`, `releaseYear`) and is refused for the others.
#[derive(Debug, InputObject)]
pub struct UpdateAnimeInput {
    /// Title.
    pub title: MaybeUndefined<String>,
    /// Synopsis; `null` clears it.
    pub synopsis: MaybeUndefined<String>,
    /// Genres (replace the list; `[]` empties it).
    pub genres: MaybeUndefined<Vec<String>>,
    /// Status.
    pub status: MaybeUndefined<AnimeStatus>,
    /// Year of first release; `null` clears it.
    pub release_year: MaybeUndefined<i32>,
    /// Other titles (replace the list; `[]` empties it).
    pub alternative_titles: MaybeUndefined<Vec<String>>,
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
    /// Title, if it has one.
    pub title: Option<String>,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date (YYYY-MM-DD).
    pub air_date: Option<String>,
}

/// `updateEpisode` input: absent fields are kept; `null` clears an optional field (`title`,
/// `durationSeconds`, `airDate`) and is refused for `number`.
#[derive(Debug, InputObject)]
pub struct UpdateEpisodeInput {
    /// Number, unique per anime.
    pub number: MaybeUndefined<i32>,
    /// Title; `null` clears it.
    pub title: MaybeUndefined<String>,
    /// Duration in seconds; `null` clears it.
    pub duration_seconds: MaybeUndefined<i32>,
    /// Air date (YYYY-MM-DD); `null` clears it.
    pub air_date: MaybeUndefined<String>,
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

/// `updateOrganization` input: absent fields are kept.
#[derive(Debug, InputObject)]
pub struct UpdateOrganizationInput {
    /// New name.
    pub name: Option<String>,
    /// New unique slug (3 to 64 of a-z, 0-9, -).
    pub slug: Option<String>,
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

/// A change of a required field: absent keeps it, `null` is refused.
pub(crate) fn required<T>(field: &str, value: MaybeUndefined<T>) -> crate::Result<Option<T>> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(crate::Error::bad_input(format!(
            "{field}: required, cannot be cleared"
        ))),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}

/// A change of an optional field: absent keeps it (`None`), `null` clears it (`Some(None)`).
pub(crate) fn optional<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}
