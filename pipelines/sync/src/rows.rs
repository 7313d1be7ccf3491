//! The rows side: the SQL selecting each table's rows (keyset pages in primary-key order,
//! or by ids) and the entries and documents they give.

use std::collections::BTreeMap;

use anineplus_connectors::search_sink::Document;
use anineplus_indexer::indices::Index;
use sqlx::types::Uuid;

use crate::drift::Entry;
use crate::{Error, PROGRESS_EVERY, Result, SearchSync};

impl SearchSync {
    /// The table of `index` (only supported ones).
    pub(crate) fn table(index: Index) -> &'static str {
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
    pub(crate) fn select(index: Index, by_ids: bool) -> String {
        let columns = match index {
            // With its episodes (id, version, deleted) for the denormalised `episodes` map.
            Index::Anime => {
                "title, synopsis, genres, status, release_year, alternative_titles, coalesce((SELECT json_agg( \
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
    pub(crate) async fn page(
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
            .map_err(|source| Error::Database {
                context: format!("reading {}", index.name()),
                source,
            })?;
        rows.iter().map(|row| self.map_row(index, row)).collect()
    }

    /// The id after which the page following `page` starts.
    pub(crate) fn next_after(page: &[(String, Entry, Vec<Document>)]) -> Result<Option<Uuid>> {
        page.last()
            .map(|(id, _, _)| {
                Uuid::parse_str(id).map_err(|e| Error::mapping(format!("a row id is a UUID: {e}")))
            })
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

    /// The rows of `index` with `ids`, mapped to documents, in chunks of `batch`.
    pub(crate) async fn rows_by_id(
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
}
