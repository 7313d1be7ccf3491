//! `search` over every kind of entity: the hits of the [`crate::search::SearchBackend`],
//! loaded from PostgreSQL by id (the authoritative rows, in hit order), with what is not
//! to be found dropped: deleted entities, hidden or deleted comments, and episodes and
//! comments of deleted anime, whatever the index says.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::{Anime, Comment, Domain, Episode, Organization, User, validate};
use crate::Result;
use crate::search::{EntityType, EverythingSearch, Highlight};

/// An entity found by `search`.
#[derive(Debug, Clone)]
pub enum FoundEntity {
    /// An anime.
    Anime(Anime),
    /// An episode.
    Episode(Episode),
    /// A visible comment.
    Comment(Comment),
    /// A user (shown without its email to others).
    User(User),
    /// An organization.
    Organization(Organization),
}

/// A page of `search`: the entities with their highlights, the total, per-kind counts.
#[derive(Debug, Clone)]
pub struct FoundEntities {
    /// The hits, in order, with what matched.
    pub hits: Vec<(FoundEntity, Vec<Highlight>)>,
    /// Offset of the first hit.
    pub offset: i64,
    /// How many match in all.
    pub total: i64,
    /// How many match per kind.
    pub counts: Vec<(EntityType, i64)>,
}

async fn rows<T>(pool: &PgPool, sql: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + HasId,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<T> = sqlx::query_as(sql).bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.id(), r)).collect())
}

/// A row with an id.
trait HasId {
    fn id(&self) -> Uuid;
}

macro_rules! has_id {
    ($($t:ty),*) => { $(impl HasId for $t { fn id(&self) -> Uuid { self.id } })* };
}
has_id!(Anime, Episode, Comment, User, Organization);

fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Domain {
    /// The hits of `query` (1 to 200 characters) over `types` (all when empty), at most
    /// `limit` from `offset`.
    pub async fn search_everything(
        &self,
        query: &str,
        types: &[EntityType],
        offset: i64,
        limit: i64,
    ) -> Result<FoundEntities> {
        let query = validate::optional_text("query", query, 200)?.trim();
        if query.is_empty() {
            return Err(crate::Error::bad_input("query: must not be empty"));
        }
        let mut types: Vec<EntityType> = if types.is_empty() {
            EntityType::ALL.to_vec()
        } else {
            types.to_vec()
        };
        types.sort();
        types.dedup();
        let page = self
            .search
            .search_everything(EverythingSearch {
                query,
                types: &types,
                offset,
                limit,
            })
            .await?;
        let of = |kind: EntityType| -> Vec<Uuid> {
            page.hits
                .iter()
                .filter(|h| h.kind == kind)
                .map(|h| h.id)
                .collect()
        };
        let pool = &self.pool;
        let mut anime: HashMap<Uuid, Anime> = rows(
            pool,
            &format!(
                "SELECT {} FROM anime WHERE id = ANY($1) AND deleted_at IS NULL",
                super::anime::ANIME_COLUMNS
            ),
            &of(EntityType::Anime),
        )
        .await?;
        let mut episodes: HashMap<Uuid, Episode> = rows(
            pool,
            &format!(
                "SELECT {} FROM episodes e JOIN anime a ON a.id = e.anime_id \
                 WHERE e.id = ANY($1) AND e.deleted_at IS NULL AND a.deleted_at IS NULL",
                prefixed(super::episodes::EPISODE_COLUMNS, "e")
            ),
            &of(EntityType::Episode),
        )
        .await?;
        let mut comments: HashMap<Uuid, Comment> = rows(
            pool,
            &format!(
                "SELECT {} FROM comments c JOIN anime a ON a.id = c.anime_id \
                 WHERE c.id = ANY($1) AND c.status = 'VISIBLE' AND c.deleted_at IS NULL \
                 AND a.deleted_at IS NULL",
                prefixed(super::comments::COMMENT_COLUMNS, "c")
            ),
            &of(EntityType::Comment),
        )
        .await?;
        let mut users: HashMap<Uuid, User> = rows(
            pool,
            &format!(
                "SELECT {} FROM users WHERE id = ANY($1) AND deleted_at IS NULL",
                super::users::USER_COLUMNS
            ),
            &of(EntityType::User),
        )
        .await?;
        let mut orgs: HashMap<Uuid, Organization> = rows(
            pool,
            &format!(
                "SELECT {} FROM organizations WHERE id = ANY($1)",
                super::organizations::ORG_COLUMNS
            ),
            &of(EntityType::Organization),
        )
        .await?;
        let hits = page
            .hits
            .into_iter()
            .filter_map(|h| {
                let found = match h.kind {
                    EntityType::Anime => FoundEntity::Anime(anime.remove(&h.id)?),
                    EntityType::Episode => FoundEntity::Episode(episodes.remove(&h.id)?),
                    EntityType::Comment => FoundEntity::Comment(comments.remove(&h.id)?),
                    EntityType::User => FoundEntity::User(users.remove(&h.id)?),
                    EntityType::Organization => FoundEntity::Organization(orgs.remove(&h.id)?),
                };
                Some((found, h.highlights))
            })
            .collect();
        Ok(FoundEntities {
            hits,
            offset,
            total: page.total,
            counts: page.counts,
        })
    }
}
