//! Documents from rows: each row as the events that gave it, mapped by the indexer's own
//! [`Documents`](anineplus_indexer::documents::Documents), with its denormalised entries.

use anineplus_connectors::search_sink::{Action, Document};
use anineplus_indexer::denormalise;
use anineplus_indexer::documents::MEMBERS;
use anineplus_indexer::indices::Index;
use anineplus_schemas::events::{
    AnimeData, AnimeState, AnimeStatus, CommentData, CommentDeleted, CommentModerated,
    CommentPosted, CommentStatus, Envelope, EpisodeData, EpisodeState, OrganizationCreated,
    OrganizationData, UserData, UserDeleted, UserRole, UserState,
};
use serde_json::Value;
use sqlx::Row;

use crate::drift::{Entry, title_digest};
use crate::{Error, Result, SearchSync};

pub(crate) fn status_of(s: &str) -> Result<AnimeStatus> {
    Ok(match s {
        "AIRING" => AnimeStatus::Airing,
        "FINISHED" => AnimeStatus::Finished,
        "UPCOMING" => AnimeStatus::Upcoming,
        other => return Err(Error::mapping(format!("unknown anime status {other:?}"))),
    })
}

pub(crate) fn comment_status_of(s: &str) -> Result<CommentStatus> {
    Ok(match s {
        "VISIBLE" => CommentStatus::Visible,
        "HIDDEN" => CommentStatus::Hidden,
        other => return Err(Error::mapping(format!("unknown comment status {other:?}"))),
    })
}

/// Adds `fields` to the source a whole-document write sets: an `index` action's, that of a
/// scripted replacement (`params.source`), or a field-by-field write's (`params.fields`).
pub(crate) fn extend_source(
    doc: &mut Document,
    fields: serde_json::Map<String, Value>,
) -> Result<()> {
    let id = doc.id.clone();
    let mut done = false;
    let add = |source: &mut Value| {
        if let Some(source) = source.as_object_mut() {
            source.extend(fields);
            done = true;
        }
    };
    match &mut doc.action {
        Action::Index(source) => source.edit(add),
        Action::Update { params, .. } => params.edit(|p| add(&mut p["source"])),
        Action::Script { params, .. } => params.edit(|p| add(&mut p["fields"])),
    }
    if done {
        Ok(())
    } else {
        Err(Error::mapping(format!(
            "{id}: expected a whole-document write"
        )))
    }
}

pub(crate) fn role_of(s: &str) -> Result<UserRole> {
    Ok(match s {
        "USER" => UserRole::User,
        "MODERATOR" => UserRole::Moderator,
        "ADMIN" => UserRole::Admin,
        "OPERATOR" => UserRole::Operator,
        other => return Err(Error::mapping(format!("unknown user role {other:?}"))),
    })
}

pub(crate) fn envelope<T>(
    id: String,
    version: i64,
    timestamp: i64,
    event_type: &str,
    data: T,
) -> Envelope<T> {
    Envelope {
        event_id: format!("sync-{id}-{version}"),
        event_type: event_type.to_owned(),
        timestamp,
        source: "anineplus-search".to_owned(),
        version: 1,
        correlation_id: None,
        causation_id: None,
        aggregate_id: id,
        aggregate_version: version,
        data,
    }
}

impl SearchSync {
    /// The writes that give the row's documents as the indexer holds them after every
    /// event of the row: the entity's own document first, then its denormalised entries
    /// (an anime's episodes; an episode's entry on its anime; a comment's anime title).
    pub(crate) fn map_row(
        &self,
        index: Index,
        row: &sqlx::postgres::PgRow,
    ) -> Result<(String, Entry, Vec<Document>)> {
        let id: String = row.try_get("id")?;
        let version: i64 = row.try_get("version")?;
        let deleted: bool = row.try_get("deleted")?;
        let ts: i64 = row.try_get("updated_ms")?;
        let mut entry = Entry {
            version,
            deleted,
            denormalised: None,
        };
        let doc = match index {
            Index::Anime => {
                let data = if deleted {
                    AnimeData::AnimeDeleted(anineplus_schemas::events::AnimeDeleted {
                        anime_id: id.clone(),
                    })
                } else {
                    AnimeData::AnimeUpdated(AnimeState {
                        anime_id: id.clone(),
                        title: row.try_get("title")?,
                        synopsis: row.try_get("synopsis")?,
                        genres: row.try_get("genres")?,
                        status: status_of(row.try_get("status")?)?,
                        release_year: row.try_get("release_year")?,
                        alternative_titles: row.try_get("alternative_titles")?,
                    })
                };
                let event_type = if deleted {
                    "anime.deleted"
                } else {
                    "anime.updated"
                };
                let mut docs = self
                    .docs
                    .anime(envelope(id.clone(), version, ts, event_type, data));
                let episodes: Value = row.try_get("episodes")?;
                let live = episodes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["deleted"] != Value::Bool(true))
                    .count();
                entry.denormalised = (!deleted).then_some(live as u64);
                for e in episodes.as_array().into_iter().flatten() {
                    docs.push(denormalise::episode_on_anime(
                        Index::Anime.alias(&self.prefix),
                        &id,
                        e["id"]
                            .as_str()
                            .ok_or_else(|| Error::mapping("episode id"))?,
                        e["version"]
                            .as_i64()
                            .ok_or_else(|| Error::mapping("episode version"))?,
                        e["deleted"] != Value::Bool(true),
                    ));
                }
                return Ok((id, entry, docs));
            }
            // A deleted user's row holds nothing personal: its tombstone.
            Index::Users if deleted => {
                let data = UserData::UserDeleted(UserDeleted {
                    user_id: id.clone(),
                });
                self.docs
                    .user(envelope(id.clone(), version, ts, "user.deleted", data))
            }
            Index::Users => {
                let data = UserData::UserCreated(UserState {
                    user_id: id.clone(),
                    email: String::new(),
                    name: row.try_get("name")?,
                    role: role_of(row.try_get("role")?)?,
                    created_at: row.try_get("created_ms")?,
                });
                self.docs
                    .user(envelope(id.clone(), version, ts, "user.created", data))
            }
            Index::Comments => {
                let mut docs = vec![self.comment_document(&id, entry, ts, row)?];
                let title: Option<String> = row.try_get("anime_title")?;
                let anime_version: Option<i64> = row.try_get("anime_version")?;
                // A deleted comment's tombstone keeps whatever title it had.
                entry.denormalised = title.as_deref().filter(|_| !deleted).map(title_digest);
                if let (Some(title), Some(anime_version), false) = (title, anime_version, deleted) {
                    docs.push(denormalise::title_on_comment(
                        Index::Comments.alias(&self.prefix),
                        &id,
                        &title,
                        anime_version,
                    ));
                }
                return Ok((id, entry, docs));
            }
            Index::Organizations => {
                return Ok((
                    id.clone(),
                    entry,
                    vec![self.organization_document(&id, entry, ts, row)?],
                ));
            }
            Index::Episodes => {
                let anime_id: String = row.try_get("anime_id")?;
                let data = if deleted {
                    EpisodeData::EpisodeDeleted(anineplus_schemas::events::EpisodeDeleted {
                        episode_id: id.clone(),
                        anime_id,
                    })
                } else {
                    EpisodeData::EpisodeUpdated(EpisodeState {
                        episode_id: id.clone(),
                        anime_id,
                        number: row.try_get("number")?,
                        title: row.try_get("title")?,
                        duration_seconds: row.try_get("duration_seconds")?,
                        air_date: row.try_get("air_days")?,
                    })
                };
                let event_type = if deleted {
                    "episode.deleted"
                } else {
                    "episode.updated"
                };
                // The episode's document, then its entry on its anime.
                self.docs
                    .episode(envelope(id.clone(), version, ts, event_type, data))
            }
        };
        Ok((id, entry, doc))
    }

    /// The comment document the indexer holds once it has applied every event of the row:
    /// `comment.created` (whole), then, if the row was moderated, the fields of its
    /// `comment.moderated` merged in (status, `moderationReason` (null when none given),
    /// `moderatedBy`, `moderatedAt`), as one whole document at the row's version;
    /// `updatedAt` is the row's `updated_at`. Fields added to comment documents (say
    /// denormalised ones) belong here.
    pub(crate) fn comment_document(
        &self,
        id: &str,
        entry: Entry,
        ts: i64,
        row: &sqlx::postgres::PgRow,
    ) -> Result<Document> {
        let anime_id: String = row.try_get("anime_id")?;
        let episode_id: Option<String> = row.try_get("episode_id")?;
        let at =
            |event_type: &str, data| envelope(id.to_owned(), entry.version, ts, event_type, data);
        let one = |docs: Vec<Document>| {
            docs.into_iter()
                .next()
                .ok_or_else(|| Error::mapping("one document"))
        };
        if entry.deleted {
            let data = CommentData::CommentDeleted(CommentDeleted {
                comment_id: id.to_owned(),
                anime_id,
                episode_id,
            });
            return one(self.docs.comment(at("comment.deleted", data)));
        }
        let status = comment_status_of(row.try_get("status")?)?;
        let created = CommentData::CommentCreated(CommentPosted {
            comment_id: id.to_owned(),
            anime_id: anime_id.clone(),
            episode_id: episode_id.clone(),
            author_id: row.try_get("author_id")?,
            body: row.try_get("body")?,
            status,
            created_at: row.try_get("created_ms")?,
        });
        // Written the way the indexer writes `comment.created` (a whole document at the
        // row's version), its source completed with the moderation.
        let mut doc = one(self.docs.comment(at("comment.created", created)))?;
        let moderated_by: Option<String> = row.try_get("moderated_by")?;
        if let Some(moderated_by) = moderated_by {
            let moderated_at: Option<i64> = row.try_get("moderated_ms")?;
            let moderated = CommentData::CommentModerated(CommentModerated {
                comment_id: id.to_owned(),
                anime_id,
                episode_id,
                status,
                reason: row.try_get("moderation_reason")?,
                moderated_by,
                moderated_at: moderated_at.unwrap_or_default(),
            });
            match one(self.docs.comment(at("comment.moderated", moderated)))?.action {
                Action::Script { params, .. } if params.value()["fields"].is_object() => {
                    let fields = params.value()["fields"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    extend_source(&mut doc, fields)?;
                }
                _ => {
                    return Err(Error::mapping(format!(
                        "{id}: expected comment.moderated to map to a merge"
                    )));
                }
            }
        }
        Ok(doc)
    }

    /// The organization document the indexer holds once it has applied every event of the
    /// row: `organization.created` at the row's version with its member entries replaced
    /// by the membership rows (`userId`, `role`).
    pub(crate) fn organization_document(
        &self,
        id: &str,
        entry: Entry,
        ts: i64,
        row: &sqlx::postgres::PgRow,
    ) -> Result<Document> {
        let data = OrganizationData::OrganizationCreated(OrganizationCreated {
            organization_id: id.to_owned(),
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            owner_id: row.try_get("owner_id")?,
        });
        let doc = self
            .docs
            .organization(envelope(
                id.to_owned(),
                entry.version,
                ts,
                "organization.created",
                data,
            ))
            .pop()
            .ok_or_else(|| Error::mapping("the mapping gives one document"))?;
        // The membership rows replace every entry the document has up to the row's version.
        let members: Value = row.try_get("members")?;
        let values: serde_json::Map<String, Value> = members
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["userId"].as_str()?.to_owned(), m.clone())))
            .collect();
        let (field, key, first) = MEMBERS;
        Ok(doc.with_entries(field, key, first, Value::Object(values), true))
    }
}
