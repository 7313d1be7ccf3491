//! Anime: the catalog's main aggregate. Writes are for ADMINs; reads are public and cached.

use std::collections::HashMap;

use anineplus_schemas::events::{self as ev, AnimeData};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Anime, AnimeFilter, AnimeStatus, Caller, Domain, Page, Role, validate};
use crate::outbox;
use crate::{Error, Result};

pub(crate) const ANIME_COLUMNS: &str = "id, title, synopsis, genres, status, release_year, alternative_titles, created_by, version, created_at, updated_at";

/// The live anime of `ids`, read in one statement and kept in the order of `ids`; an id
/// whose row is gone or soft-deleted is left out (as is a repeated id, after its first).
pub(crate) async fn live_anime_in_order(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Anime>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Anime> = sqlx::query_as(&format!(
        "SELECT {ANIME_COLUMNS} FROM anime WHERE id = ANY($1) AND deleted_at IS NULL"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut by_id: HashMap<Uuid, Anime> = rows.into_iter().map(|a| (a.id, a)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Fields of a new anime.
#[derive(Debug, Clone)]
pub struct NewAnime {
    /// Title.
    pub title: String,
    /// Synopsis.
    pub synopsis: Option<String>,
    /// Genres.
    pub genres: Vec<String>,
    /// Status.
    pub status: AnimeStatus,
    /// Year.
    pub release_year: Option<i32>,
    /// Alternative titles.
    pub alternative_titles: Vec<String>,
}

/// A partial change of an anime: `None` keeps the field; for optional fields `Some(None)`
/// clears it.
#[derive(Debug, Clone, Default)]
pub struct AnimeChange {
    /// Title.
    pub title: Option<String>,
    /// Synopsis.
    pub synopsis: Option<Option<String>>,
    /// Genres.
    pub genres: Option<Vec<String>>,
    /// Status.
    pub status: Option<AnimeStatus>,
    /// Year.
    pub release_year: Option<Option<i32>>,
    /// Alternative titles (replace the list).
    pub alternative_titles: Option<Vec<String>>,
}

fn state(a: &Anime) -> ev::AnimeState {
    ev::AnimeState {
        anime_id: a.id.to_string(),
        title: a.title.clone(),
        synopsis: a.synopsis.clone(),
        genres: a.genres.clone(),
        status: match a.status {
            AnimeStatus::Airing => ev::AnimeStatus::Airing,
            AnimeStatus::Finished => ev::AnimeStatus::Finished,
            AnimeStatus::Upcoming => ev::AnimeStatus::Upcoming,
        },
        release_year: a.release_year,
        alternative_titles: a.alternative_titles.clone(),
    }
}

impl Domain {
    /// Creates an anime (ADMIN).
    pub async fn create_anime(&self, caller: &Caller, input: NewAnime) -> Result<Anime> {
        let me = caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let title = validate::text("title", &input.title, 200)?;
        let synopsis = input
            .synopsis
            .as_deref()
            .map(|s| validate::optional_text("synopsis", s, 5000).map(str::to_owned))
            .transpose()?;
        let genres = validate::genres(&input.genres)?;
        let year = validate::release_year(input.release_year)?;
        let alternative_titles = validate::alternative_titles(&input.alternative_titles)?;
        let mut tx = self.pool.begin().await?;
        let anime: Anime = sqlx::query_as(&format!(
            "INSERT INTO anime (id, title, synopsis, genres, status, release_year, alternative_titles, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ANIME_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&title)
        .bind(&synopsis)
        .bind(&genres)
        .bind(input.status.as_str())
        .bind(year)
        .bind(&alternative_titles)
        .bind(me)
        .fetch_one(&mut *tx)
        .await?;
        outbox::append(
            &mut tx,
            anime.id,
            anime.version,
            &caller.correlation_id,
            AnimeData::AnimeCreated(state(&anime)),
        )
        .await?;
        tx.commit().await?;
        Ok(anime)
    }

    /// Changes an anime (ADMIN).
    pub async fn update_anime(
        &self,
        caller: &Caller,
        id: Uuid,
        change: AnimeChange,
    ) -> Result<Anime> {
        caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let title = change
            .title
            .as_deref()
            .map(|t| validate::text("title", t, 200))
            .transpose()?;
        if let Some(Some(s)) = &change.synopsis {
            validate::optional_text("synopsis", s, 5000)?;
        }
        let genres = change.genres.as_deref().map(validate::genres).transpose()?;
        let year = validate::release_year(change.release_year.flatten())?;
        let alternative_titles = change
            .alternative_titles
            .as_deref()
            .map(validate::alternative_titles)
            .transpose()?;
        let mut tx = self.pool.begin().await?;
        let anime: Anime = sqlx::query_as(&format!(
            "UPDATE anime SET title = COALESCE($2, title), \
             synopsis = CASE WHEN $7 THEN $3 ELSE synopsis END, \
             genres = COALESCE($4, genres), status = COALESCE($5, status), \
             release_year = CASE WHEN $8 THEN $6 ELSE release_year END, \
             alternative_titles = COALESCE($9, alternative_titles), \
             version = version + 1, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {ANIME_COLUMNS}"
        ))
        .bind(id)
        .bind(&title)
        .bind(change.synopsis.as_ref().and_then(Option::as_deref))
        .bind(&genres)
        .bind(change.status.map(AnimeStatus::as_str))
        .bind(year)
        .bind(change.synopsis.is_some())
        .bind(change.release_year.is_some())
        .bind(&alternative_titles)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("anime"))?;
        outbox::append(
            &mut tx,
            anime.id,
            anime.version,
            &caller.correlation_id,
            AnimeData::AnimeUpdated(state(&anime)),
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_anime(id).await;
        Ok(anime)
    }

    /// Soft-deletes an anime (ADMIN).
    pub async fn delete_anime(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE anime SET deleted_at = now(), version = version + 1, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING version",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("anime"))?;
        outbox::append(
            &mut tx,
            id,
            version,
            &caller.correlation_id,
            AnimeData::AnimeDeleted(ev::AnimeDeleted {
                anime_id: id.to_string(),
            }),
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_anime(id).await;
        Ok(true)
    }

    /// A live anime by id, through the cache.
    pub async fn anime(&self, id: Uuid) -> Result<Option<Anime>> {
        if let Some(anime) = self.cache.anime(id).await {
            return Ok(Some(anime));
        }
        let anime: Option<Anime> = sqlx::query_as(&format!(
            "SELECT {ANIME_COLUMNS} FROM anime WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(a) = &anime {
            self.cache.remember_anime(a).await;
        }
        Ok(anime)
    }

    /// A page of live anime, newest first, filtered.
    pub async fn animes(
        &self,
        filter: &AnimeFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Anime>> {
        let genre = filter.genre.as_deref().map(|g| g.trim().to_lowercase());
        let condition = "deleted_at IS NULL AND ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR $2 = ANY(genres)) AND ($3::int IS NULL OR release_year = $3)";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM anime WHERE {condition}"))
                .bind(filter.status.map(AnimeStatus::as_str))
                .bind(&genre)
                .bind(filter.release_year)
                .fetch_one(&self.pool)
                .await?;
        let items = sqlx::query_as(&format!(
            "SELECT {ANIME_COLUMNS} FROM anime WHERE {condition} \
             ORDER BY created_at DESC, id DESC OFFSET $4 LIMIT $5"
        ))
        .bind(filter.status.map(AnimeStatus::as_str))
        .bind(&genre)
        .bind(filter.release_year)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(Page {
            items,
            offset,
            total,
        })
    }

    /// Full-text search through the configured [`crate::search::SearchBackend`]: the
    /// query at most 200 characters, at most 20 genres (lowercased as stored), a year
    /// range whose start is not after its end.
    pub async fn search_anime(
        &self,
        query: &str,
        filter: &crate::search::SearchFilter,
        sort: crate::search::SearchSort,
        offset: i64,
        limit: i64,
    ) -> Result<crate::search::SearchResults> {
        let query = validate::optional_text("query", query, 200)?;
        if filter.genres.len() > 20 {
            return Err(Error::bad_input("filter.genres: at most 20"));
        }
        if let (Some(from), Some(to)) = (filter.release_year_from, filter.release_year_to)
            && from > to
        {
            return Err(Error::bad_input(format!(
                "filter: releaseYearFrom {from} is after releaseYearTo {to}"
            )));
        }
        let filter = crate::search::SearchFilter {
            genres: filter
                .genres
                .iter()
                .map(|g| g.trim().to_lowercase())
                .collect(),
            ..filter.clone()
        };
        self.search
            .search_anime(crate::search::AnimeSearch {
                query,
                filter: &filter,
                sort,
                offset,
                limit,
            })
            .await
    }

    /// Titles for a search box as the user types `prefix` (at most 100 characters), at
    /// most `limit`.
    pub async fn suggest(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<crate::search::Suggestion>> {
        let prefix = validate::optional_text("prefix", prefix, 100)?;
        self.search.suggest(prefix, limit).await
    }
}
