//! Sync verification, repair and reindex: PostgreSQL (the source of truth) against the
//! search indices (binary `anineplus-search`).
//!
//! - [`Sync::verify`]: reads every row (ids, versions, deleted flags) in primary-key order
//!   with keyset pagination on the key (each page an index range scan) and every document of the index (`id`, `aggregateVersion`, `deleted`) with
//!   `search_after` on `id`, and reports the [`Drift`]; every drifted id is read again
//!   (document, then row) so that writes during the scans are not reported as drift
//!   ([`Sync::verify_target`]).
//! - [`Sync::repair`]: writes the drifted documents from their rows, built with the
//!   indexer's own mapping ([`Documents`], fed row-derived events) and written the way the
//!   indexer writes them (external versions, or version-guarded scripted upserts for the
//!   indices with denormalised fields), at the row's version: a concurrent indexer writing
//!   a newer event still wins, a document at the same version is overwritten
//!   ([`Document::overwriting_equal`]). Each row also gives its denormalised entries: an
//!   anime its episodes (`episodes`/`episodeCount`), an episode its entry on its anime, a
//!   comment its anime's title (from the `anime` row). Deleted rows become tombstones;
//!   documents without a row become tombstones at their own version.
//! - Verify also compares the denormalised values where PostgreSQL has them (an anime's
//!   live episode count, a comment's anime title): [`Drift::denormalised`].
//! - [`Sync::reindex`]: builds `<alias>-v<N+1>` from PostgreSQL, catches it up (verify +
//!   repair against the new generation), switches the alias in one
//!   `_aliases` request, then runs verify + repair against the alias (the indexer writes
//!   through the alias, so whatever it wrote to the old generation during the copy is in
//!   PostgreSQL and is repaired from there), then deletes the old generation.
//!
//! Supported indices: all of them ([`SUPPORTED`]). How a row becomes a document:
//! - `anime`, `episodes`: the row as its `*.updated` (or `*.deleted`) event;
//! - `users`: the row as its `user.created` (no email), a deleted row as `user.deleted`;
//! - `comments` (`Sync::comment_document`): `comment.created`, then, if the row was
//!   moderated, the fields of its `comment.moderated` merged in, as the indexer's partial
//!   update does; a deleted row (`deleted_at`) its `comment.deleted` tombstone;
//! - `organizations` (`Sync::organization_document`): `organization.created` with
//!   its member entries replaced by the `organization_members` rows at the row's version
//!   (the write lists them as the indexer does: owner first, then by user id).
//!
//! Progress goes to stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use anineplus_connectors::Outcome;
use anineplus_connectors::search;
use anineplus_connectors::search_sink::{Action, BulkLimits, BulkService, Document, SearchSink};
use anineplus_schemas::events::{
    AnimeData, AnimeState, AnimeStatus, CommentData, CommentDeleted, CommentModerated,
    CommentPosted, CommentStatus, Envelope, EpisodeData, EpisodeState, OrganizationCreated,
    OrganizationData, UserData, UserDeleted, UserRole, UserState,
};
use anyhow::{Context, Result, bail};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sqlx::types::Uuid;
use sqlx::{PgPool, Row};

use anineplus_indexer::denormalise;
use anineplus_indexer::documents::{Documents, MEMBERS};
use anineplus_indexer::indices::Index;

/// Indices the sync commands handle.
pub const SUPPORTED: [Index; 5] = [
    Index::Anime,
    Index::Episodes,
    Index::Comments,
    Index::Users,
    Index::Organizations,
];

/// Progress is printed every this many rows or documents.
const PROGRESS_EVERY: usize = 5_000;

/// Where the sync commands read and write.
#[derive(Debug, Clone)]
pub struct Sync {
    pool: PgPool,
    search: Elasticsearch,
    prefix: String,
    docs: Documents,
    /// Rows or documents per page and per bulk.
    pub batch: usize,
    /// Print progress on stderr.
    pub progress: bool,
}

/// One side's view of an entity: its version, whether it is deleted, and a digest of
/// its denormalised values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `version` (PostgreSQL) or `aggregateVersion` (index).
    pub version: i64,
    /// Soft-deleted row, or tombstone document.
    pub deleted: bool,
    /// The denormalised values the document should hold (from PostgreSQL) or holds: an
    /// anime's live episode count, a comment's anime title (hashed). `None` on a row when
    /// nothing is expected (a deleted anime's comments keep their last title).
    pub denormalised: Option<u64>,
}

/// The digest of a comment's anime title (compared within one run only).
fn title_digest(title: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    title.hash(&mut hasher);
    hasher.finish()
}

/// The document fields [`document_entry`] reads.
const ENTRY_FIELDS: [&str; 4] = ["aggregateVersion", "deleted", "episodeCount", "animeTitle"];

/// A document's entry from its `_source` (of at least [`ENTRY_FIELDS`]).
fn document_entry(index: Index, source: &Value) -> Entry {
    Entry {
        version: source["aggregateVersion"].as_i64().unwrap_or(0),
        deleted: source["deleted"].as_bool().unwrap_or(false),
        denormalised: match index {
            Index::Anime => Some(source["episodeCount"].as_u64().unwrap_or(0)),
            Index::Comments => source["animeTitle"].as_str().map(title_digest),
            _ => None,
        },
    }
}

/// What differs between PostgreSQL and one index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// The index (alias or concrete) compared.
    pub target: String,
    /// Rows in PostgreSQL (live and deleted).
    pub rows: usize,
    /// Documents in the index (live and tombstones).
    pub documents: usize,
    /// Rows with no document (a deleted row should have its tombstone).
    pub missing: Vec<String>,
    /// Documents older than their row, or live while the row is deleted.
    pub stale: Vec<String>,
    /// Live documents with no row: they should be tombstones.
    pub orphaned: Vec<String>,
    /// Documents newer than their row (a restored database?): reported, not repaired.
    pub ahead: Vec<String>,
    /// Documents at their row's version whose denormalised values differ (an anime's
    /// episode count, a comment's anime title): their entries are written again.
    pub denormalised: Vec<String>,
}

impl Drift {
    /// Whether the index matches PostgreSQL.
    pub fn in_sync(&self) -> bool {
        self.missing.is_empty()
            && self.stale.is_empty()
            && self.orphaned.is_empty()
            && self.ahead.is_empty()
            && self.denormalised.is_empty()
    }

    /// Every id with a difference of any kind.
    fn drifted(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .to_write()
            .into_iter()
            .chain(self.orphaned.iter().cloned())
            .chain(self.ahead.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Ids to write from PostgreSQL (missing, stale, denormalised values off).
    fn to_write(&self) -> Vec<String> {
        self.missing
            .iter()
            .chain(&self.stale)
            .chain(&self.denormalised)
            .cloned()
            .collect()
    }
}

/// Compares the two sides. Pure.
pub fn compare(
    target: &str,
    rows: &BTreeMap<String, Entry>,
    docs: &BTreeMap<String, Entry>,
) -> Drift {
    let mut drift = Drift {
        target: target.to_owned(),
        rows: rows.len(),
        documents: docs.len(),
        ..Drift::default()
    };
    for (id, row) in rows {
        match docs.get(id) {
            None => drift.missing.push(id.clone()),
            Some(doc) if doc.version < row.version => drift.stale.push(id.clone()),
            Some(doc) if doc.version > row.version => drift.ahead.push(id.clone()),
            Some(doc) if doc.deleted != row.deleted => drift.stale.push(id.clone()),
            Some(doc) if row.denormalised.is_some() && doc.denormalised != row.denormalised => {
                drift.denormalised.push(id.clone());
            }
            Some(_) => {}
        }
    }
    for (id, doc) in docs {
        if !doc.deleted && !rows.contains_key(id) {
            drift.orphaned.push(id.clone());
        }
    }
    drift
}

/// What a repair wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Documents written (or already newer in the index: a concurrent indexer won).
    pub written: usize,
    /// Documents the engine refused, with its reasons.
    pub failed: Vec<String>,
}

fn status_of(s: &str) -> Result<AnimeStatus> {
    Ok(match s {
        "AIRING" => AnimeStatus::Airing,
        "FINISHED" => AnimeStatus::Finished,
        "UPCOMING" => AnimeStatus::Upcoming,
        other => bail!("unknown anime status {other:?}"),
    })
}

fn comment_status_of(s: &str) -> Result<CommentStatus> {
    Ok(match s {
        "VISIBLE" => CommentStatus::Visible,
        "HIDDEN" => CommentStatus::Hidden,
        other => bail!("unknown comment status {other:?}"),
    })
}

/// The document source a whole-document write sets: an `index` action's, or that of a
/// scripted replacement (`params.source`).
fn source_mut(doc: &mut Document) -> Result<&mut serde_json::Map<String, Value>> {
    let source = match &mut doc.action {
        Action::Index(source) => source,
        Action::Update { params, .. } if params["source"].is_object() => &mut params["source"],
        Action::Script { params, .. } if params["fields"].is_object() => &mut params["fields"],
        _ => bail!("{}: expected a whole-document write", doc.id),
    };
    source.as_object_mut().context("a JSON object")
}

fn role_of(s: &str) -> Result<UserRole> {
    Ok(match s {
        "USER" => UserRole::User,
        "MODERATOR" => UserRole::Moderator,
        "ADMIN" => UserRole::Admin,
        other => bail!("unknown user role {other:?}"),
    })
}

fn envelope<T>(id: String, version: i64, timestamp: i64, event_type: &str, data: T) -> Envelope<T> {
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

impl Sync {
    /// Connects to PostgreSQL and the engine; indices live under `<prefix>-`.
    pub async fn connect(
        database_url: &str,
        elasticsearch_url: &str,
        prefix: &str,
    ) -> Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(database_url)
            .await
            .with_context(|| format!("PostgreSQL at {database_url}"))?;
        let search = search::client(elasticsearch_url, Duration::from_secs(60))?;
        Ok(Sync {
            pool,
            search,
            prefix: prefix.to_owned(),
            docs: Documents::new(prefix),
            batch: 1000,
            progress: true,
        })
    }

    fn note(&self, message: impl std::fmt::Display) {
        if self.progress {
            eprintln!("{message}");
        }
    }

    fn check(index: Index) -> Result<()> {
        if !SUPPORTED.contains(&index) {
            bail!(
                "index {} is not supported by the sync commands",
                index.name()
            );
        }
        Ok(())
    }

    /// The table of `index` (only supported ones).
    fn table(index: Index) -> &'static str {
        match index {
            Index::Anime => "anime",
            Index::Episodes => "episodes",
            Index::Comments => "comments",
            Index::Users => "users",
            Index::Organizations => "organizations",
        }
    }

    /// The SQL selecting rows of `index`: with `by_ids`, those whose id is in `$1` (a
    /// `uuid[]`); otherwise a page of `$2` rows after id `$1` (a `uuid`) in primary-key
    /// order, an index range scan whatever the page (keyset pagination on the key itself:
    /// a cast such as `id::text` in the order or the filter would sort the whole table for
    /// every page).
    fn select(index: Index, by_ids: bool) -> String {
        let columns = match index {
            // With its episodes (id, version, deleted) for the denormalised `episodes` map.
            Index::Anime => {
                "title, synopsis, genres, status, release_year, coalesce((SELECT json_agg( \
                 json_build_object('id', e.id::text, 'version', e.version, \
                 'deleted', e.deleted_at IS NOT NULL)) \
                 FROM episodes e WHERE e.anime_id = anime.id), '[]'::json) AS episodes"
            }
            // Never the email: it is not indexed.
            Index::Users => {
                // floor, not a cast (which rounds): the API puts `timestamp_millis()` (truncated) of
                // the same column in its events, and repaired documents must equal indexed ones.
                "name, role, floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"
            }
            Index::Episodes => {
                "anime_id::text AS anime_id, number, title, duration_seconds, \
                 (air_date - DATE '1970-01-01') AS air_days"
            }
            Index::Comments => {
                "anime_id::text AS anime_id, episode_id::text AS episode_id, \
                 author_id::text AS author_id, body, status, moderation_reason, \
                 moderated_by::text AS moderated_by, \
                 floor(extract(epoch FROM moderated_at) * 1000)::bigint AS moderated_ms, \
                 floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms, \
                 (SELECT a.title FROM anime a WHERE a.id = comments.anime_id \
                  AND a.deleted_at IS NULL) AS anime_title, \
                 (SELECT a.version FROM anime a WHERE a.id = comments.anime_id) AS anime_version"
            }
            // Members as entries: the document's write orders them (owner first, then
            // by user id).
            Index::Organizations => {
                "name, slug, owner_id::text AS owner_id, coalesce((SELECT json_agg( \
                 json_build_object('userId', m.user_id::text, 'role', m.member_role) \
                 ORDER BY m.user_id <> organizations.owner_id, m.created_at, m.user_id) \
                 FROM organization_members m WHERE m.organization_id = organizations.id), \
                 '[]'::json) AS members"
            }
        };
        let table = Self::table(index);
        // Organizations are never deleted (no delete flag).
        let deleted = match index {
            Index::Anime | Index::Episodes | Index::Comments | Index::Users => {
                "deleted_at IS NOT NULL"
            }
            Index::Organizations => "false",
        };
        // `{table}.id`: a bare `id` in ORDER BY is the output column `id::text`.
        let rows = if by_ids {
            format!("WHERE {table}.id = ANY($1::uuid[])")
        } else {
            format!("WHERE {table}.id > $1::uuid ORDER BY {table}.id LIMIT $2")
        };
        format!(
            "SELECT id::text AS id, version, {deleted} AS deleted, \
             floor(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, {columns} \
             FROM {table} {rows}"
        )
    }

    /// One page of rows of `index` mapped to documents: those with `ids`, or (`ids =
    /// None`) the next `batch` rows after id `after` (`None` starts) in primary-key order.
    async fn page(
        &self,
        index: Index,
        after: Option<Uuid>,
        ids: Option<&[String]>,
    ) -> Result<Vec<(String, Entry, Vec<Document>)>> {
        let query = Self::select(index, ids.is_some());
        let query = match ids {
            // An id that is no UUID (a stray document's) has no row.
            Some(ids) => sqlx::query(&query).bind(
                ids.iter()
                    .filter_map(|id| Uuid::parse_str(id).ok())
                    .collect::<Vec<_>>(),
            ),
            None => sqlx::query(&query)
                .bind(after.unwrap_or(Uuid::nil()))
                .bind(i64::try_from(self.batch).unwrap_or(i64::MAX)),
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .with_context(|| format!("reading {}", index.name()))?;
        rows.iter().map(|row| self.map_row(index, row)).collect()
    }

    /// The id after which the page following `page` starts.
    fn next_after(page: &[(String, Entry, Vec<Document>)]) -> Result<Option<Uuid>> {
        page.last()
            .map(|(id, _, _)| Uuid::parse_str(id).context("a row id is a UUID"))
            .transpose()
    }

    /// PostgreSQL's plan of one page of the row scan of `index` (the second page: after
    /// the first row's id), for checking that pages are read through the primary key.
    pub async fn page_plan(&self, index: Index) -> Result<String> {
        let first = self.page(index, None, None).await?;
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN {}", Self::select(index, false)))
                .bind(Self::next_after(&first)?.unwrap_or(Uuid::nil()))
                .bind(i64::try_from(self.batch).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
        Ok(plan.join("\n"))
    }

    /// Every row of `index` as an entry (id, version, deleted flag, denormalised digest),
    /// in pages of `batch`, with progress.
    pub async fn rows(&self, index: Index) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self.page(index, after, None).await?;
            let n = page.len();
            after = Self::next_after(&page)?.or(after);
            let before = out.len() / PROGRESS_EVERY;
            out.extend(page.into_iter().map(|(id, e, _)| (id, e)));
            if out.len() / PROGRESS_EVERY > before {
                self.note(format_args!(
                    "  postgres {}: {} rows",
                    index.name(),
                    out.len()
                ));
            }
            if n < self.batch {
                return Ok(out);
            }
        }
    }

    /// The writes that give the row's documents as the indexer holds them after every
    /// event of the row: the entity's own document first, then its denormalised entries
    /// (an anime's episodes; an episode's entry on its anime; a comment's anime title).
    fn map_row(
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
                        e["id"].as_str().context("episode id")?,
                        e["version"].as_i64().context("episode version")?,
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
    fn comment_document(
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
        let one = |docs: Vec<Document>| docs.into_iter().next().context("one document");
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
                Action::Script { params, .. } if params["fields"].is_object() => {
                    let fields = params["fields"].as_object().cloned().unwrap_or_default();
                    source_mut(&mut doc)?.extend(fields);
                }
                _ => bail!("{id}: expected comment.moderated to map to a merge"),
            }
        }
        Ok(doc)
    }

    /// The organization document the indexer holds once it has applied every event of the
    /// row: `organization.created` at the row's version with its member entries replaced
    /// by the membership rows (`userId`, `role`).
    fn organization_document(
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
            .context("the mapping gives one document")?;
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

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON to a Vec never fails"));
        let response = self
            .search
            .send(method, path, headers, None::<&()>, body, None)
            .await
            .with_context(|| format!("{path}: search engine unreachable"))?;
        let status = response.status_code().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status >= 300 {
            bail!("{path}: status {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every document of `target` (alias or index): id → entry.
    async fn documents(&self, index: Index, target: &str) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": self.batch,
                "sort": [{ "id": "asc" }],
                "_source": ENTRY_FIELDS,
                "query": { "match_all": {} },
            });
            if let Some(after) = &after {
                body["search_after"] = after.clone();
            }
            let page = self
                .call(Method::Post, &format!("/{target}/_search"), Some(&body))
                .await?;
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            let before = out.len() / PROGRESS_EVERY;
            for hit in &hits {
                let id = hit["_id"].as_str().unwrap_or_default().to_owned();
                out.insert(id, document_entry(index, &hit["_source"]));
            }
            if out.len() / PROGRESS_EVERY > before {
                self.note(format_args!("  index {target}: {} documents", out.len()));
            }
            match hits.last() {
                Some(last) if hits.len() == self.batch => after = Some(last["sort"].clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Compares PostgreSQL with the alias of `index`.
    pub async fn verify(&self, index: Index) -> Result<Drift> {
        Self::check(index)?;
        self.verify_target(index, &index.alias(&self.prefix)).await
    }

    /// Compares PostgreSQL with `target` (the alias of `index`, or one of its generations).
    ///
    /// Safe under live writes. The scans take a while: rows first, then documents, so an
    /// entity written in between has a document newer than the row read (or no row read at
    /// all) and would look *ahead* (or *orphaned*, and a repair would tombstone a live
    /// entity at its own version). So every id found drifted is read again, its document
    /// first (a realtime `_mget`) and its row after: a document is only written once its
    /// row is committed, so a row read after its document is at least as new. What is
    /// still orphaned or ahead then really is; what is still missing or stale may be the
    /// indexer's lag, and writing it from its row is harmless (versioned writes: the newer
    /// state wins either way).
    pub async fn verify_target(&self, index: Index, target: &str) -> Result<Drift> {
        self.refresh(target).await?;
        let rows = self.rows(index).await?;
        let docs = self.documents(index, target).await?;
        let mut drift = compare(target, &rows, &docs);
        if !drift.in_sync() {
            let ids = drift.drifted();
            let docs = self.documents_by_id(index, target, &ids).await?;
            let rows: BTreeMap<String, Entry> = self
                .rows_by_id(index, &ids)
                .await?
                .into_iter()
                .map(|(id, entry, _)| (id, entry))
                .collect();
            drift = Drift {
                rows: drift.rows,
                documents: drift.documents,
                ..compare(target, &rows, &docs)
            };
        }
        self.note(format_args!(
            "{target}: {} rows, {} documents; missing {}, stale {}, orphaned {}, ahead {}, \
             denormalised {}",
            drift.rows,
            drift.documents,
            drift.missing.len(),
            drift.stale.len(),
            drift.orphaned.len(),
            drift.ahead.len(),
            drift.denormalised.len()
        ));
        Ok(drift)
    }

    /// The rows of `index` with `ids`, mapped to documents, in chunks of `batch`.
    async fn rows_by_id(
        &self,
        index: Index,
        ids: &[String],
    ) -> Result<Vec<(String, Entry, Vec<Document>)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(self.batch.max(1)) {
            out.extend(self.page(index, None, Some(chunk)).await?);
        }
        Ok(out)
    }

    /// The documents of `target` with `ids`, as they are now (a realtime `_mget`, which
    /// needs no refresh).
    async fn documents_by_id(
        &self,
        index: Index,
        target: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(self.batch.max(1)) {
            let body = json!({ "ids": chunk });
            let path = format!(
                "/{target}/_mget?realtime=true&_source_includes={}",
                ENTRY_FIELDS.join(",")
            );
            let answer = self.call(Method::Post, &path, Some(&body)).await?;
            for doc in answer["docs"].as_array().into_iter().flatten() {
                if let (Some(id), true) = (doc["_id"].as_str(), doc["found"] == json!(true)) {
                    out.insert(id.to_owned(), document_entry(index, &doc["_source"]));
                }
            }
        }
        Ok(out)
    }

    /// Writes what `drift` lists (missing, stale, orphaned) into its target.
    pub async fn repair(&self, index: Index, drift: &Drift) -> Result<Repaired> {
        Self::check(index)?;
        let mut docs: Vec<Document> = self
            .rows_by_id(index, &drift.to_write())
            .await?
            .into_iter()
            .flat_map(|(_, _, d)| d)
            .collect();
        let orphans = self.documents_of(&drift.target, &drift.orphaned).await?;
        docs.extend(
            orphans
                .into_iter()
                .map(|(id, version)| self.docs.tombstone_of(index, &id, version)),
        );
        self.retarget(index, &mut docs, &drift.target);
        // The row's state wins over a document at the same version too (e.g. a wrong
        // tombstone); a newer document (a concurrent event) still wins.
        let docs: Vec<Document> = docs.into_iter().map(Document::overwriting_equal).collect();
        let repaired = self.write(&drift.target, &docs).await?;
        self.note(format_args!(
            "{}: repaired {} documents, {} failed",
            drift.target,
            repaired.written,
            repaired.failed.len()
        ));
        Ok(repaired)
    }

    /// Points the writes meant for `index`'s alias at `target` (a generation being built,
    /// or the alias itself); writes to other indices (an episode's entry on its anime) stay.
    fn retarget(&self, index: Index, docs: &mut [Document], target: &str) {
        let alias = index.alias(&self.prefix);
        for doc in docs.iter_mut().filter(|d| d.index == alias) {
            doc.index = target.to_owned();
        }
    }

    /// The `aggregateVersion` of each of `ids` in `target`.
    async fn documents_of(&self, target: &str, ids: &[String]) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(self.batch.max(1)) {
            let body = json!({ "ids": chunk });
            let answer = self
                .call(Method::Post, &format!("/{target}/_mget"), Some(&body))
                .await?;
            for doc in answer["docs"].as_array().cloned().unwrap_or_default() {
                if let (Some(id), Some(v)) = (
                    doc["_id"].as_str(),
                    doc["_source"]["aggregateVersion"].as_i64(),
                ) {
                    out.push((id.to_owned(), v));
                }
            }
        }
        Ok(out)
    }

    /// Writes `docs`; counts the documents of `target` written (an entity and its
    /// denormalised entries count once), and lists every refused write.
    async fn write(&self, target: &str, docs: &[Document]) -> Result<Repaired> {
        let sink = SearchSink::new(
            BulkService::new(self.search.clone()),
            BulkLimits {
                max_docs: self.batch.max(1),
                max_bytes: 5 * 1024 * 1024,
            },
        );
        let mut repaired = Repaired::default();
        let mut written = std::collections::BTreeSet::new();
        // Items refused retryably (a scripted update that lost a race with the indexer, a
        // rejected item) are written again, a few times.
        let mut pending: Vec<&Document> = docs.iter().collect();
        for attempt in 1..=4 {
            let outcomes = sink.write(&pending).await;
            let mut again = Vec::new();
            for (doc, outcome) in pending.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Done | Outcome::AlreadyApplied => {
                        if doc.index == target {
                            written.insert(doc.id.as_str());
                        }
                    }
                    Outcome::Unavailable(e) => bail!("search engine unavailable: {e}"),
                    Outcome::Retry(_) if attempt < 4 => again.push(doc),
                    Outcome::Retry(e) | Outcome::Permanent(e) => {
                        repaired
                            .failed
                            .push(format!("{}/{}: {e}", doc.index, doc.id));
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            pending = again;
        }
        repaired.written = written.len();
        Ok(repaired)
    }

    async fn refresh(&self, target: &str) -> Result<()> {
        self.call(Method::Post, &format!("/{target}/_refresh"), None)
            .await
            .map(|_| ())
    }

    /// The concrete indices the alias of `index` points at.
    pub async fn generations(&self, index: Index) -> Result<Vec<String>> {
        let alias = index.alias(&self.prefix);
        let answer = self
            .call(Method::Get, &format!("/_alias/{alias}"), None)
            .await?;
        let mut names: Vec<String> = answer
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// Loads every row of `index` into the concrete index `new`; returns the count.
    async fn load(&self, index: Index, new: &str) -> Result<usize> {
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", Self::table(index)))
                .fetch_one(&self.pool)
                .await?;
        let (mut loaded, mut failed, mut after) = (0, Vec::new(), None);
        loop {
            let page = self.page(index, after, None).await?;
            let n = page.len();
            after = Self::next_after(&page)?.or(after);
            let mut docs: Vec<Document> = page.into_iter().flat_map(|(_, _, d)| d).collect();
            self.retarget(index, &mut docs, new);
            let r = self.write(new, &docs).await?;
            let before = loaded / PROGRESS_EVERY;
            loaded += r.written;
            failed.extend(r.failed);
            if loaded / PROGRESS_EVERY > before || n < self.batch {
                self.note(format_args!("  {new}: {loaded}/{total} documents"));
            }
            if n < self.batch {
                break;
            }
        }
        if !failed.is_empty() {
            bail!(
                "{new}: {} documents refused, refused: {failed:?}",
                failed.len()
            );
        }
        Ok(loaded)
    }

    /// Rebuilds `index` into the next generation and switches the alias to it; the old
    /// generation is deleted unless `keep_old`. Returns the new index's name.
    pub async fn reindex(&self, index: Index, keep_old: bool) -> Result<String> {
        Self::check(index)?;
        let alias = index.alias(&self.prefix);
        let old = self.generations(index).await?;
        let generation = old
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{alias}-v"))?.parse::<u32>().ok())
            .max()
            .with_context(|| format!("alias {alias} points at no `{alias}-v<N>` index"))?;
        let new = format!("{alias}-v{}", generation + 1);
        self.note(format_args!("{alias}: building {new} (alias on {old:?})"));
        // The index template `<alias>` gives it the settings and mappings.
        self.call(
            Method::Put,
            &format!("/{new}"),
            Some(&json!({ "settings": { "refresh_interval": "-1" } })),
        )
        .await?;
        if let Err(e) = self.load(index, &new).await {
            // Leave nothing half-built behind: the alias still points at the old generation.
            let _ = self.call(Method::Delete, &format!("/{new}"), None).await;
            return Err(e.context(format!("{new} deleted, alias not switched")));
        }
        self.call(
            Method::Put,
            &format!("/{new}/_settings"),
            Some(&json!({ "index": { "refresh_interval": "1s" } })),
        )
        .await?;
        // Catch up with what changed in PostgreSQL during the copy before searches see the
        // new generation (the pass after the switch then has little left to do).
        let drift = self.verify_target(index, &new).await?;
        if !drift.in_sync() {
            self.repair(index, &drift).await?;
        }
        self.refresh(&new).await?;
        let mut actions: Vec<Value> = old
            .iter()
            .map(|o| json!({ "remove": { "index": o, "alias": alias } }))
            .collect();
        actions.push(json!({ "add": { "index": new, "alias": alias, "is_write_index": true } }));
        self.call(
            Method::Post,
            "/_aliases",
            Some(&json!({ "actions": actions })),
        )
        .await?;
        self.note(format_args!(
            "{alias}: switched to {new}; catching up from PostgreSQL"
        ));
        // Events the indexer wrote into the old generation during the copy are in
        // PostgreSQL: a repair pass through the alias brings them over.
        let drift = self.verify(index).await?;
        if !drift.in_sync() {
            self.repair(index, &drift).await?;
        }
        if !keep_old {
            for o in &old {
                self.call(Method::Delete, &format!("/{o}"), None).await?;
                self.note(format_args!("{alias}: deleted {o}"));
            }
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, i64, bool)]) -> BTreeMap<String, Entry> {
        entries
            .iter()
            .map(|(id, version, deleted)| {
                (
                    (*id).to_owned(),
                    Entry {
                        version: *version,
                        deleted: *deleted,
                        denormalised: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn compare_classifies_every_kind_of_drift() {
        let rows = map(&[
            ("same", 2, false),
            ("tomb", 3, true),
            ("missing", 1, false),
            ("missing-tomb", 2, true),
            ("stale", 3, false),
            ("live-but-deleted", 2, true),
            ("ahead", 1, false),
        ]);
        let docs = map(&[
            ("same", 2, false),
            ("tomb", 3, true),
            ("stale", 2, false),
            ("live-but-deleted", 2, false),
            ("ahead", 2, false),
            ("orphan", 5, false),
            ("orphan-tomb", 5, true),
        ]);
        let drift = compare("p-anime", &rows, &docs);
        assert_eq!(drift.missing, ["missing", "missing-tomb"]);
        assert_eq!(drift.stale, ["live-but-deleted", "stale"]);
        assert_eq!(drift.orphaned, ["orphan"]);
        assert_eq!(drift.ahead, ["ahead"]);
        assert_eq!((drift.rows, drift.documents), (7, 7));
        assert!(!drift.in_sync());
        assert!(compare("p-anime", &rows, &rows).in_sync());
    }

    #[test]
    fn denormalised_values_are_compared_when_the_row_expects_some() {
        let entry = |denormalised| Entry {
            version: 2,
            deleted: false,
            denormalised,
        };
        let rows = BTreeMap::from([
            ("count-off".to_owned(), entry(Some(3))),
            ("count-ok".to_owned(), entry(Some(2))),
            ("no-title-expected".to_owned(), entry(None)),
        ]);
        let docs = BTreeMap::from([
            ("count-off".to_owned(), entry(Some(2))),
            ("count-ok".to_owned(), entry(Some(2))),
            (
                "no-title-expected".to_owned(),
                entry(Some(title_digest("old"))),
            ),
        ]);
        let drift = compare("x", &rows, &docs);
        assert_eq!(drift.denormalised, vec!["count-off".to_owned()]);
        assert!(!drift.in_sync());
        assert_eq!(drift.to_write(), vec!["count-off".to_owned()]);
    }
}
