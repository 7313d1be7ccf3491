//! Rows of the domain and their enums.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "UPPERCASE")]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// The stored text of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                match text.as_str() {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }
    };
}

text_enum!(
    /// Role of a user.
    Role {
        /// A member of the public.
        User => "USER",
        /// May moderate comments.
        Moderator => "MODERATOR",
        /// May do anything.
        Admin => "ADMIN",
        /// Runs the pipelines: signs in to the operators' console (dead letters, redrive,
        /// purge). No content rights beyond a user's.
        Operator => "OPERATOR",
    }
);

impl Role {
    /// Whether this role includes `other`'s rights. ADMIN includes every role and every
    /// role includes USER's; MODERATOR (content) and OPERATOR (pipelines) are side by side,
    /// neither includes the other: an operator cannot moderate, a moderator cannot redrive.
    pub fn at_least(self, other: Role) -> bool {
        match (self, other) {
            (Role::Admin, _) | (_, Role::User) => true,
            (mine, other) => mine == other,
        }
    }
}

text_enum!(
    /// Airing status of an anime.
    AnimeStatus {
        /// Currently airing.
        Airing => "AIRING",
        /// Finished.
        Finished => "FINISHED",
        /// Announced.
        Upcoming => "UPCOMING",
    }
);

text_enum!(
    /// Visibility of a comment.
    CommentStatus {
        /// Shown to everyone.
        Visible => "VISIBLE",
        /// Hidden by a moderator; seen by its author and moderators only.
        Hidden => "HIDDEN",
    }
);

text_enum!(
    /// A subscription plan.
    Plan {
        /// Entry plan.
        Basic => "BASIC",
        /// Standard plan.
        Standard => "STANDARD",
        /// Everything.
        Premium => "PREMIUM",
    }
);

text_enum!(
    /// State of a subscription.
    SubscriptionStatus {
        /// Running.
        Active => "ACTIVE",
        /// Cancelled by its owner or an admin.
        Cancelled => "CANCELLED",
    }
);

text_enum!(
    /// Role of a member inside an organization.
    MemberRole {
        /// Created it; manages members.
        Owner => "OWNER",
        /// A member.
        Member => "MEMBER",
    }
);

/// A user (the password hash never leaves the domain).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Email, unique case-insensitively.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Row version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An anime.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Anime {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Synopsis.
    pub synopsis: Option<String>,
    /// Genres, lowercase.
    pub genres: Vec<String>,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: AnimeStatus,
    /// Year of first release.
    pub release_year: Option<i32>,
    /// Other titles (translations, romanisations), in the order given.
    // A default: cache entries written before the field existed still read.
    #[serde(default)]
    pub alternative_titles: Vec<String>,
    /// Who created it.
    pub created_by: Uuid,
    /// Row version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An episode of an anime.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    /// Id.
    pub id: Uuid,
    /// Its anime.
    pub anime_id: Uuid,
    /// Number, unique per anime.
    pub number: i32,
    /// Title, if it has one.
    pub title: Option<String>,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date.
    pub air_date: Option<NaiveDate>,
    /// Row version.
    pub version: i64,
}

/// A comment on an anime or one of its episodes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Comment {
    /// Id.
    pub id: Uuid,
    /// Anime.
    pub anime_id: Uuid,
    /// Episode, if on one.
    pub episode_id: Option<Uuid>,
    /// Author.
    pub author_id: Uuid,
    /// Text, stored verbatim.
    pub body: String,
    /// Visibility.
    #[sqlx(try_from = "String")]
    pub status: CommentStatus,
    /// Moderation reason.
    pub moderation_reason: Option<String>,
    /// Moderator.
    pub moderated_by: Option<Uuid>,
    /// Moderation time.
    pub moderated_at: Option<DateTime<Utc>>,
    /// Row version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// Creator.
    pub owner_id: Uuid,
    /// Row version.
    pub version: i64,
}

/// A member of an organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Role inside the organization.
    #[sqlx(try_from = "String")]
    pub member_role: MemberRole,
}

/// A user's subscription to a plan (GraphQL's `Subscription` name is taken).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanSubscription {
    /// Id.
    pub id: Uuid,
    /// Subscriber.
    pub user_id: Uuid,
    /// Plan.
    #[sqlx(try_from = "String")]
    pub plan: Plan,
    /// State.
    #[sqlx(try_from = "String")]
    pub status: SubscriptionStatus,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Cancellation.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Row version.
    pub version: i64,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Offset of the first item.
    pub offset: i64,
    /// Total matching items.
    pub total: i64,
}

/// Filters of the `animes` list.
#[derive(Debug, Clone, Default)]
pub struct AnimeFilter {
    /// Only this status.
    pub status: Option<AnimeStatus>,
    /// Only anime with this genre.
    pub genre: Option<String>,
    /// Only this release year.
    pub release_year: Option<i32>,
}

/// Milliseconds since the epoch of `t`.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn admin_includes_every_role_and_operator_and_moderator_are_side_by_side() {
        for role in [Role::User, Role::Moderator, Role::Admin, Role::Operator] {
            assert!(Role::Admin.at_least(role), "{role:?}");
            assert!(role.at_least(Role::User), "{role:?}");
            assert!(role.at_least(role), "{role:?}");
        }
        assert!(!Role::Operator.at_least(Role::Moderator));
        assert!(!Role::Moderator.at_least(Role::Operator));
        assert!(!Role::Operator.at_least(Role::Admin));
        assert!(!Role::User.at_least(Role::Operator));
        assert_eq!(Role::try_from("OPERATOR".to_owned()), Ok(Role::Operator));
    }
}
