//! Episodes of an anime: writes for ADMINs, episode lists cached per anime.

use anineplus_schemas::events::{self as ev, EpisodeData};
use chrono::NaiveDate;
use uuid::Uuid;

use super::{Caller, Domain, Episode, Role, validate};
use crate::outbox;
use crate::{Error, Result};

pub(super) const EPISODE_COLUMNS: &str =
    "id, anime_id, number, title, duration_seconds, air_date, version";

/// Fields of a new episode (the number is required).
#[derive(Debug, Clone, Default)]
pub struct EpisodeFields {
    /// Number, unique per anime.
    pub number: Option<i32>,
    /// Title, if it has one.
    pub title: Option<String>,
    /// Duration in seconds.
    pub duration_seconds: Option<i32>,
    /// Air date.
    pub air_date: Option<NaiveDate>,
}

/// A partial change of an episode: `None` keeps a field; for optional fields `Some(None)`
/// clears it.
#[derive(Debug, Clone, Default)]
pub struct EpisodeChange {
    /// Number, unique per anime.
    pub number: Option<i32>,
    /// Title.
    pub title: Option<Option<String>>,
    /// Duration in seconds.
    pub duration_seconds: Option<Option<i32>>,
    /// Air date.
    pub air_date: Option<Option<NaiveDate>>,
}

fn state(e: &Episode) -> ev::EpisodeState {
    ev::EpisodeState {
        episode_id: e.id.to_string(),
        anime_id: e.anime_id.to_string(),
        number: e.number,
        title: e.title.clone(),
        duration_seconds: e.duration_seconds,
        air_date: e.air_date.map(|d| {
            (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
        }),
    }
}

const NUMBER_TAKEN: &str = "number: this anime already has an episode with this number";

impl Domain {
    /// Adds an episode to a live anime (ADMIN).
    pub async fn create_episode(
        &self,
        caller: &Caller,
        anime_id: Uuid,
        fields: EpisodeFields,
    ) -> Result<Episode> {
        caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let number = validate::positive("number", fields.number)?
            .ok_or_else(|| Error::bad_input("number: required"))?;
        let title = fields
            .title
            .as_deref()
            .map(|t| validate::text("title", t, 200))
            .transpose()?;
        let duration = validate::positive("durationSeconds", fields.duration_seconds)?;
        let mut tx = self.pool.begin().await?;
        // Lock the anime so it cannot be deleted under us.
        let live: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM anime WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
        )
        .bind(anime_id)
        .fetch_optional(&mut *tx)
        .await?;
        live.ok_or(Error::NotFound("anime"))?;
        let episode: Episode = sqlx::query_as(&format!(
            "INSERT INTO episodes (id, anime_id, number, title, duration_seconds, air_date) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EPISODE_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(anime_id)
        .bind(number)
        .bind(&title)
        .bind(duration)
        .bind(fields.air_date)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::conflict_on_unique(e, NUMBER_TAKEN))?;
        outbox::append(
            &mut tx,
            episode.id,
            episode.version,
            &caller.correlation_id,
            EpisodeData::EpisodeCreated(state(&episode)),
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_episodes(anime_id).await;
        Ok(episode)
    }

    /// Changes an episode (ADMIN).
    pub async fn update_episode(
        &self,
        caller: &Caller,
        id: Uuid,
        change: EpisodeChange,
    ) -> Result<Episode> {
        caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let number = validate::positive("number", change.number)?;
        let title = change
            .title
            .as_ref()
            .and_then(Option::as_deref)
            .map(|t| validate::text("title", t, 200))
            .transpose()?;
        let duration = validate::positive("durationSeconds", change.duration_seconds.flatten())?;
        let mut tx = self.pool.begin().await?;
        let episode: Episode = sqlx::query_as(&format!(
            "UPDATE episodes SET number = COALESCE($2, number), \
             title = CASE WHEN $6 THEN $3 ELSE title END, \
             duration_seconds = CASE WHEN $7 THEN $4 ELSE duration_seconds END, \
             air_date = CASE WHEN $8 THEN $5 ELSE air_date END, \
             version = version + 1, updated_at = now() WHERE id = $1 AND deleted_at IS NULL \
             RETURNING {EPISODE_COLUMNS}"
        ))
        .bind(id)
        .bind(number)
        .bind(&title)
        .bind(duration)
        .bind(change.air_date.flatten())
        .bind(change.title.is_some())
        .bind(change.duration_seconds.is_some())
        .bind(change.air_date.is_some())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| Error::conflict_on_unique(e, NUMBER_TAKEN))?
        .ok_or(Error::NotFound("episode"))?;
        outbox::append(
            &mut tx,
            episode.id,
            episode.version,
            &caller.correlation_id,
            EpisodeData::EpisodeUpdated(state(&episode)),
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_episodes(episode.anime_id).await;
        Ok(episode)
    }

    /// Soft-deletes an episode (ADMIN).
    pub async fn delete_episode(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        caller
            .viewer
            .require_role(Role::Admin, "only admins edit the catalog")?;
        let mut tx = self.pool.begin().await?;
        let (anime_id, version): (Uuid, i64) = sqlx::query_as(
            "UPDATE episodes SET deleted_at = now(), version = version + 1, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING anime_id, version",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("episode"))?;
        outbox::append(
            &mut tx,
            id,
            version,
            &caller.correlation_id,
            EpisodeData::EpisodeDeleted(ev::EpisodeDeleted {
                episode_id: id.to_string(),
                anime_id: anime_id.to_string(),
            }),
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_episodes(anime_id).await;
        Ok(true)
    }

    /// A live episode by id (of a live anime).
    pub async fn episode(&self, id: Uuid) -> Result<Option<Episode>> {
        Ok(sqlx::query_as(&format!(
            "SELECT e.{} FROM episodes e JOIN anime a ON a.id = e.anime_id \
             WHERE e.id = $1 AND e.deleted_at IS NULL AND a.deleted_at IS NULL",
            EPISODE_COLUMNS.replace(", ", ", e.")
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The live episodes of an anime by number, through the cache.
    pub async fn episodes_of(&self, anime_id: Uuid) -> Result<Vec<Episode>> {
        if let Some(list) = self.cache.episodes(anime_id).await {
            return Ok(list);
        }
        let list: Vec<Episode> = sqlx::query_as(&format!(
            "SELECT {EPISODE_COLUMNS} FROM episodes WHERE anime_id = $1 AND deleted_at IS NULL \
             ORDER BY number LIMIT 2000"
        ))
        .bind(anime_id)
        .fetch_all(&self.pool)
        .await?;
        self.cache.remember_episodes(anime_id, &list).await;
        Ok(list)
    }
}
