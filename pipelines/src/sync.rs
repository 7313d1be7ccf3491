//! Sync verification, repair and reindex: PostgreSQL (the source of truth) against the
//! search indices (binary `anineplus-search`).
//!
//! - [`Sync::verify`]: reads every row (ids, versions, deleted flags) in id order with keyset
//!   pagination and every document of the index (`id`, `aggregateVersion`, `deleted`) with
//!   `search_after` on `id`, and reports the [`Drift`].
//! - [`Sync::repair`]: writes the drifted documents from their rows with the indexer's own mapping
//!   ([`Documents`], fed the row as an `*.updated` event at the row's version), with
//!   `external_gte`: a concurrent indexer writing a newer event still wins. Deleted rows
//!   become tombstones; documents without a row become tombstones at their own version.
//! - [`Sync::reindex`]: builds `<alias>-v<N+1>` from PostgreSQL, switches the alias in one
//!   `_aliases` request, then runs verify + repair against the alias (the indexer writes
//!   through the alias, so whatever it wrote to the old generation during the copy is in
//!   PostgreSQL and is repaired from there), then deletes the old generation.
//!
//! Supported indices: `anime`, `episodes` and `users` (whole-state documents; a user row
//! maps as its `user.created` at the row's version). `comments` and `organizations` are not
//! covered yet: their documents are partly built by scripts (moderation, members).
//! Progress goes to stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use anineplus_connectors::Outcome;
use anineplus_connectors::search;
use anineplus_connectors::search_sink::{BulkLimits, BulkService, Document, SearchSink};
use anineplus_schemas::events::{
    AnimeData, AnimeState, AnimeStatus, Envelope, EpisodeData, EpisodeState, UserData, UserRole,
    UserState,
};
use anyhow::{Context, Result, bail};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use crate::indexer::documents::Documents;
use crate::indexer::indices::Index;

/// Indices the sync commands handle.
pub const SUPPORTED: [Index; 3] = [Index::Anime, Index::Episodes, Index::Users];

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

/// One side's view of an entity: its version and whether it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `version` (PostgreSQL) or `aggregateVersion` (index).
    pub version: i64,
    /// Soft-deleted row, or tombstone document.
    pub deleted: bool,
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
}

impl Drift {
    /// Whether the index matches PostgreSQL.
    pub fn in_sync(&self) -> bool {
        self.missing.is_empty()
            && self.stale.is_empty()
            && self.orphaned.is_empty()
            && self.ahead.is_empty()
    }

    /// Ids to write from PostgreSQL (missing and stale).
    fn to_write(&self) -> Vec<String> {
        self.missing.iter().chain(&self.stale).cloned().collect()
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
                "index {} is not supported by the sync commands yet (only anime, episodes, users)",
                index.name()
            );
        }
        Ok(())
    }

    /// The table of `index` (only supported ones).
    fn table(index: Index) -> &'static str {
        match index {
            Index::Anime => "anime",
            Index::Users => "users",
            _ => "episodes",
        }
    }

    /// The SQL selecting rows of `index`: those with ids in `$3`, or (`$3` null) a page of
    /// `$2` rows after id `$1` (the empty string starts).
    fn select(index: Index) -> String {
        let columns = match index {
            Index::Anime => "title, synopsis, genres, status, release_year",
            // Never the email: it is not indexed.
            Index::Users => {
                // floor, not a cast (which rounds): the API puts `timestamp_millis()` (truncated) of
                // the same column in its events, and repaired documents must equal indexed ones.
                "name, role, floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"
            }
            _ => {
                "anime_id::text AS anime_id, number, title, duration_seconds, \
                 (air_date - DATE '1970-01-01') AS air_days"
            }
        };
        let table = Self::table(index);
        let deleted = match index {
            Index::Users => "false",
            _ => "deleted_at IS NOT NULL",
        };
        format!(
            "SELECT id::text AS id, version, {deleted} AS deleted, \
             floor(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, {columns} \
             FROM {table} WHERE ($3::text[] IS NULL AND id::text > $1) OR id::text = ANY($3) \
             ORDER BY id::text LIMIT $2"
        )
    }

    /// One page of rows of `index` mapped to documents: those with `ids`, or (`ids =
    /// None`) the next `batch` rows after id `after` in id order.
    async fn page(
        &self,
        index: Index,
        after: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<(String, Entry, Document)>> {
        let rows = sqlx::query(&Self::select(index))
            .bind(after)
            .bind(i64::try_from(self.batch).unwrap_or(i64::MAX))
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .with_context(|| format!("reading {}", index.name()))?;
        rows.iter().map(|row| self.map_row(index, row)).collect()
    }

    /// Every row of `index` as an entry, with progress.
    async fn entries(&self, index: Index) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        let mut after = String::new();
        loop {
            let page = self.page(index, &after, None).await?;
            let n = page.len();
            if let Some((id, _, _)) = page.last() {
                after = id.clone();
            }
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

    /// The row as the indexer would have indexed its latest event.
    fn map_row(
        &self,
        index: Index,
        row: &sqlx::postgres::PgRow,
    ) -> Result<(String, Entry, Document)> {
        let id: String = row.try_get("id")?;
        let version: i64 = row.try_get("version")?;
        let deleted: bool = row.try_get("deleted")?;
        let ts: i64 = row.try_get("updated_ms")?;
        let entry = Entry { version, deleted };
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
                self.docs
                    .anime(envelope(id.clone(), version, ts, event_type, data))
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
            _ => {
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
                self.docs
                    .episode(envelope(id.clone(), version, ts, event_type, data))
            }
        }
        .pop()
        .context("the mapping gives one document")?;
        Ok((id, entry, doc))
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
    async fn documents(&self, target: &str) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": self.batch,
                "sort": [{ "id": "asc" }],
                "_source": ["aggregateVersion", "deleted"],
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
                let entry = Entry {
                    version: hit["_source"]["aggregateVersion"].as_i64().unwrap_or(0),
                    deleted: hit["_source"]["deleted"].as_bool().unwrap_or(false),
                };
                out.insert(id, entry);
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
        let target = index.alias(&self.prefix);
        self.refresh(&target).await?;
        let rows = self.entries(index).await?;
        let docs = self.documents(&target).await?;
        let drift = compare(&target, &rows, &docs);
        self.note(format_args!(
            "{target}: {} rows, {} documents; missing {}, stale {}, orphaned {}, ahead {}",
            drift.rows,
            drift.documents,
            drift.missing.len(),
            drift.stale.len(),
            drift.orphaned.len(),
            drift.ahead.len()
        ));
        Ok(drift)
    }

    /// Writes what `drift` lists (missing, stale, orphaned) into its target.
    pub async fn repair(&self, index: Index, drift: &Drift) -> Result<Repaired> {
        Self::check(index)?;
        let mut docs = Vec::new();
        for ids in drift.to_write().chunks(self.batch.max(1)) {
            let page = self.page(index, "", Some(ids)).await?;
            docs.extend(page.into_iter().map(|(_, _, d)| d));
        }
        let orphans = self.documents_of(&drift.target, &drift.orphaned).await?;
        docs.extend(
            orphans
                .into_iter()
                .map(|(id, version)| Document::soft_delete(drift.target.clone(), id, version)),
        );
        for doc in &mut docs {
            doc.index = drift.target.clone();
        }
        let repaired = self.write(&docs).await?;
        self.note(format_args!(
            "{}: repaired {} documents, {} failed",
            drift.target,
            repaired.written,
            repaired.failed.len()
        ));
        Ok(repaired)
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

    async fn write(&self, docs: &[Document]) -> Result<Repaired> {
        let sink = SearchSink::new(
            BulkService::new(self.search.clone()),
            BulkLimits {
                max_docs: self.batch.max(1),
                max_bytes: 5 * 1024 * 1024,
            },
        );
        let mut repaired = Repaired::default();
        for (doc, outcome) in docs.iter().zip(sink.write(docs).await) {
            match outcome {
                Outcome::Done | Outcome::AlreadyApplied => repaired.written += 1,
                Outcome::Unavailable(e) => bail!("search engine unavailable: {e}"),
                Outcome::Retry(e) | Outcome::Permanent(e) => {
                    repaired.failed.push(format!("{}: {e}", doc.id));
                }
            }
        }
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
        let (mut loaded, mut failed, mut after) = (0, Vec::new(), String::new());
        loop {
            let page = self.page(index, &after, None).await?;
            let n = page.len();
            if let Some((id, _, _)) = page.last() {
                after = id.clone();
            }
            let mut docs: Vec<Document> = page.into_iter().map(|(_, _, d)| d).collect();
            for doc in &mut docs {
                doc.index = new.to_owned();
            }
            let r = self.write(&docs).await?;
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
}
