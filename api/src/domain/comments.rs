//! Comments: any signed-in user posts; moderators hide or show them. A hidden comment is
//! seen only by its author and by moderators. Its author, or a moderator, deletes it: a soft
//! delete that keeps the row (and its version) without its text; deleted comments are in no
//! list and can no longer be moderated.

use anineplus_schemas::events::{self as ev, CommentData};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Caller, Comment, CommentStatus, Domain, Page, Role, validate};
use crate::outbox;
use crate::{Error, Result};

pub(super) const COMMENT_COLUMNS: &str = "id, anime_id, episode_id, author_id, body, status, \
     moderation_reason, moderated_by, moderated_at, version, created_at";

fn event_status(s: CommentStatus) -> ev::CommentStatus {
    match s {
        CommentStatus::Visible => ev::CommentStatus::Visible,
        CommentStatus::Hidden => ev::CommentStatus::Hidden,
    }
}

/// What a list of comments is about.
#[derive(Debug, Clone, Copy)]
pub enum CommentTarget {
    /// Comments on an anime (including those on its episodes).
    Anime(Uuid),
    /// Comments on one episode.
    Episode(Uuid),
}

impl Domain {
    /// Posts a comment on a live anime, or on one of its live episodes.
    pub async fn post_comment(
        &self,
        caller: &Caller,
        anime_id: Uuid,
        episode_id: Option<Uuid>,
        body: &str,
    ) -> Result<Comment> {
        let (me, _) = caller.viewer.require()?;
        if body.trim().is_empty() {
            return Err(Error::bad_input("body: must not be empty"));
        }
        let body = validate::optional_text("body", body, 5000)?;
        let id = Uuid::now_v7();
        // The row and its event carry the same instant (PostgreSQL keeps microseconds).
        let created_at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
            .expect("now is a valid timestamp");
        let event = outbox::Pending::new(
            id,
            1,
            &caller.correlation_id,
            CommentData::CommentCreated(ev::CommentPosted {
                comment_id: id.to_string(),
                anime_id: anime_id.to_string(),
                episode_id: episode_id.map(|e| e.to_string()),
                author_id: me.to_string(),
                body: body.to_owned(),
                status: ev::CommentStatus::Visible,
                created_at: super::millis(created_at),
            }),
        )?;
        // The hottest mutation is one statement, so one round trip and no BEGIN/COMMIT: it
        // checks that the author (locking the row against a concurrent deletion) and the
        // anime (and episode) are live, inserts the comment, and appends its event only if
        // the comment was inserted.
        let comment: Option<Comment> = event
            .bind(
                sqlx::query_as(&format!(
                    "WITH c AS (INSERT INTO comments (id, anime_id, episode_id, author_id, body, \
                     status, created_at) \
                     SELECT $1, $2, $3, $4, $5, 'VISIBLE', $6 WHERE EXISTS ( \
                       SELECT 1 FROM anime a WHERE a.id = $2 AND a.deleted_at IS NULL \
                       AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM episodes e \
                         WHERE e.id = $3 AND e.anime_id = a.id AND e.deleted_at IS NULL))) \
                     AND EXISTS (SELECT 1 FROM users u WHERE u.id = $4 AND u.deleted_at IS NULL \
                       FOR SHARE) \
                     RETURNING {COMMENT_COLUMNS}), {} \
                     SELECT c.*, {} FROM c, appended",
                    outbox::Pending::cte(7, "c"),
                    outbox::Pending::notify(7),
                ))
                .bind(id)
                .bind(anime_id)
                .bind(episode_id)
                .bind(me)
                .bind(body)
                .bind(created_at),
            )
            .fetch_optional(&self.pool)
            .await?;
        let Some(comment) = comment else {
            // Which condition failed: only on this (rare) path.
            let mut conn = self.pool.acquire().await?;
            return Err(if !self.live_user(&mut conn, me).await? {
                Error::Unauthenticated
            } else if episode_id.is_some() {
                Error::NotFound("episode")
            } else {
                Error::NotFound("anime")
            });
        };
        Ok(comment)
    }

    /// Hides or shows a comment (MODERATOR or ADMIN).
    pub async fn moderate_comment(
        &self,
        caller: &Caller,
        id: Uuid,
        status: CommentStatus,
        reason: Option<&str>,
    ) -> Result<Comment> {
        let me = caller
            .viewer
            .require_role(Role::Moderator, "only moderators moderate comments")?;
        let reason = reason
            .map(|r| validate::optional_text("reason", r, 500))
            .transpose()?;
        let mut tx = self.pool.begin().await?;
        let comment: Comment = sqlx::query_as(&format!(
            "UPDATE comments SET status = $2, moderation_reason = $3, moderated_by = $4, \
             moderated_at = now(), version = version + 1, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COMMENT_COLUMNS}"
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .bind(me)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("comment"))?;
        outbox::append(
            &mut tx,
            comment.id,
            comment.version,
            &caller.correlation_id,
            CommentData::CommentModerated(ev::CommentModerated {
                comment_id: comment.id.to_string(),
                anime_id: comment.anime_id.to_string(),
                episode_id: comment.episode_id.map(|e| e.to_string()),
                status: event_status(comment.status),
                reason: comment.moderation_reason.clone(),
                moderated_by: me.to_string(),
                moderated_at: comment.moderated_at.map(super::millis).unwrap_or_default(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(comment)
    }

    /// Deletes a comment: its author, or a moderator. `comment.deleted` at the row's next
    /// version; the row keeps no text.
    pub async fn delete_comment(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (me, role) = self.acting(&mut tx, caller).await?;
        let (author, anime_id, episode_id): (Uuid, Uuid, Option<Uuid>) = sqlx::query_as(
            "SELECT author_id, anime_id, episode_id FROM comments \
             WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("comment"))?;
        if author != me && !role.at_least(Role::Moderator) {
            return Err(Error::Forbidden(
                "only its author and moderators delete a comment",
            ));
        }
        let version: i64 = sqlx::query_scalar(
            "UPDATE comments SET deleted_at = now(), body = '', moderation_reason = NULL, \
             version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        outbox::append(
            &mut tx,
            id,
            version,
            &caller.correlation_id,
            CommentData::CommentDeleted(ev::CommentDeleted {
                comment_id: id.to_string(),
                anime_id: anime_id.to_string(),
                episode_id: episode_id.map(|e| e.to_string()),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether the caller may see `comment`.
    pub fn may_see_comment(&self, caller: &Caller, comment: &Comment) -> bool {
        comment.status == CommentStatus::Visible
            || caller.viewer.is_moderator()
            || caller.viewer.id() == Some(comment.author_id)
    }

    /// A page of comments on a target, oldest first; hidden ones only for their author and
    /// moderators.
    pub async fn comments(
        &self,
        caller: &Caller,
        target: CommentTarget,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Comment>> {
        let (column, id) = match target {
            CommentTarget::Anime(id) => ("anime_id", id),
            CommentTarget::Episode(id) => ("episode_id", id),
        };
        let condition = format!(
            "{column} = $1 AND deleted_at IS NULL AND (status = 'VISIBLE' OR $2 OR author_id = $3)"
        );
        let moderator = caller.viewer.is_moderator();
        let viewer = caller.viewer.id();
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM comments WHERE {condition}"))
                .bind(id)
                .bind(moderator)
                .bind(viewer)
                .fetch_one(&self.pool)
                .await?;
        let items = sqlx::query_as(&format!(
            "SELECT {COMMENT_COLUMNS} FROM comments WHERE {condition} ORDER BY created_at, id OFFSET $4 LIMIT $5"
        ))
        .bind(id)
        .bind(moderator)
        .bind(viewer)
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
}
