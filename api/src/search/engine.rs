//! The seam of `searchAnime`: a [`SearchBackend`] answers a text query with a page of anime.
//!
//! Two implementations, chosen at start-up by `SEARCH_BACKEND`:
//! - [`ElasticsearchSearch`] (`index`, the default): relevance search in the alias
//!   `<INDEX_PREFIX>-anime` that the search indexer keeps in step with the `anime` topic;
//!   the page's rows are then read from PostgreSQL by id, in hit order.
//! - [`PostgresSearch`] (`postgres`): `ILIKE` on title and synopsis; no indexer needed and
//!   read-your-writes, but a scan per search.

use std::time::Duration;

use elasticsearch::{Elasticsearch, SearchParts};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Anime, Page, live_anime_in_order};
use crate::{Error, Result};

/// The API's one client of the search engine at `url` (each request bounded by `timeout`),
/// shared by `searchAnime`, the admin `logs` query and the analytics reads.
pub fn engine_client(url: &str, timeout: Duration) -> Result<Elasticsearch> {
    anineplus_connectors::search::client(url, timeout).map_err(|e| Error::Internal(e.to_string()))
}

/// A boxed future: keeps the trait object safe without a macro.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Answers anime searches.
pub trait SearchBackend: Send + Sync {
    /// A page of live anime matching `query`, best first, with the total count.
    fn search_anime<'a>(
        &'a self,
        query: &'a str,
        offset: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Page<Anime>>>;
}

/// Search served from PostgreSQL: case-insensitive substring match on title and synopsis,
/// title matches first.
#[derive(Debug, Clone)]
pub struct PostgresSearch {
    pool: PgPool,
}

impl PostgresSearch {
    /// Searches the anime table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// `query` as a literal `ILIKE` pattern: `%`, `_` and `\` match themselves.
fn like_pattern(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 2);
    out.push('%');
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl SearchBackend for PostgresSearch {
    fn search_anime<'a>(
        &'a self,
        query: &'a str,
        offset: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Page<Anime>>> {
        Box::pin(async move {
            let pattern = like_pattern(query.trim());
            let condition = "deleted_at IS NULL AND (title ILIKE $1 OR synopsis ILIKE $1)";
            let total: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM anime WHERE {condition}"))
                    .bind(&pattern)
                    .fetch_one(&self.pool)
                    .await?;
            let items = sqlx::query_as(&format!(
                "SELECT {} FROM anime WHERE {condition} \
                 ORDER BY (title ILIKE $1) DESC, title, id OFFSET $2 LIMIT $3",
                crate::domain::ANIME_COLUMNS
            ))
            .bind(&pattern)
            .bind(offset)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(Page {
                items,
                offset,
                total,
            })
        })
    }
}

/// Deepest reachable hit: the engine's default `index.max_result_window`.
pub const MAX_RESULT_WINDOW: i64 = 10_000;

/// Search served from the index the search indexer keeps (`<prefix>-anime`).
///
/// The engine ranks and counts; the nodes are the PostgreSQL rows of the hits' ids, in hit
/// order, so clients always get the authoritative row (never a document a few events
/// behind), and an id whose row is gone or soft-deleted (the indexer has not caught up
/// yet) is dropped from the page. Cursors are the offsets every list of the API uses.
#[derive(Debug, Clone)]
pub struct ElasticsearchSearch {
    client: Elasticsearch,
    url: String,
    alias: String,
    pool: PgPool,
    fallback: Option<PostgresSearch>,
}

impl ElasticsearchSearch {
    /// Searches the alias `<index_prefix>-anime` with `client` (the API's engine client,
    /// [`engine_client`], at `url`), loading rows from `pool`.
    pub fn new(client: Elasticsearch, url: &str, index_prefix: &str, pool: PgPool) -> Self {
        Self {
            client,
            url: url.to_owned(),
            alias: anineplus_schemas::indices::Index::Anime.alias(index_prefix),
            pool,
            fallback: None,
        }
    }

    /// Answers from PostgreSQL ([`PostgresSearch`]) when the engine is unreachable or
    /// failing, instead of an `INTERNAL` error.
    pub fn with_postgres_fallback(mut self) -> Self {
        self.fallback = Some(PostgresSearch::new(self.pool.clone()));
        self
    }

    /// The alias searched.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The ranked live ids of a page and the total number of live matches.
    async fn hits(&self, query: &str, offset: i64, limit: i64) -> Result<(Vec<Uuid>, i64)> {
        let unavailable = |reason: String| {
            Error::Search(format!(
                "searching {} at {} failed: {reason}",
                self.alias, self.url
            ))
        };
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(search_body(query, offset, limit))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status_code().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| unavailable(format!("status {status}, unreadable body: {e}")))?;
        if !(200..300).contains(&status) {
            let error = &body["error"];
            let kind = error["type"].as_str().unwrap_or("unknown");
            let reason = error["reason"].as_str().unwrap_or_default();
            let hint = if kind == "index_not_found_exception" {
                " (is the indexer running with the same INDEX_PREFIX?)"
            } else {
                ""
            };
            return Err(unavailable(format!(
                "status {status}: {kind}: {reason}{hint}"
            )));
        }
        Ok(read_hits(&body))
    }
}

/// The search request of a page: `multi_match` over title (boosted), synopsis and genres,
/// wrapped by `live` so soft-deleted documents never match; ties broken by id so pages are
/// stable; only ids returned. An empty query matches every live anime.
pub fn search_body(query: &str, offset: i64, limit: i64) -> Value {
    let query = query.trim();
    let matching = if query.is_empty() {
        json!({ "match_all": {} })
    } else {
        json!({
            "multi_match": {
                "query": query,
                "fields": ["title^3", "synopsis", "genres"],
                "lenient": true,
            }
        })
    };
    json!({
        "query": anineplus_connectors::search_sink::live(matching),
        "from": offset,
        "size": limit,
        "track_total_hits": true,
        "sort": ["_score", { "id": "asc" }],
        "_source": false,
    })
}

/// The hit ids (those that are UUIDs) in order, and `hits.total.value`.
pub fn read_hits(body: &Value) -> (Vec<Uuid>, i64) {
    let total = &body["hits"]["total"];
    let total = total["value"].as_i64().or(total.as_i64()).unwrap_or(0);
    let ids = body["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str())
                .filter_map(|id| Uuid::parse_str(id).ok())
                .collect()
        })
        .unwrap_or_default();
    (ids, total)
}

impl SearchBackend for ElasticsearchSearch {
    fn search_anime<'a>(
        &'a self,
        query: &'a str,
        offset: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Page<Anime>>> {
        Box::pin(async move {
            if offset >= MAX_RESULT_WINDOW {
                return Err(Error::bad_input(format!(
                    "after: search results end at the {MAX_RESULT_WINDOW}th; refine the query"
                )));
            }
            let limit = limit.min(MAX_RESULT_WINDOW - offset);
            let (ids, total) = match self.hits(query, offset, limit).await {
                Ok(hits) => hits,
                Err(e) => match &self.fallback {
                    Some(fallback) => {
                        tracing::warn!(error = %e, "search engine failed; answering from PostgreSQL");
                        return fallback.search_anime(query, offset, limit).await;
                    }
                    None => {
                        tracing::error!(error = %e, "search engine failed");
                        return Err(e);
                    }
                },
            };
            let items = live_anime_in_order(&self.pool, &ids).await?;
            Ok(Page {
                items,
                offset,
                total,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_literal() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn searches_exclude_tombstones_and_page_by_offset() {
        let body = search_body(" frieren ", 20, 10);
        let must = &body["query"]["bool"]["must"][0]["multi_match"];
        assert_eq!(must["query"], json!("frieren"));
        assert_eq!(must["fields"][0], json!("title^3"));
        assert_eq!(
            body["query"]["bool"]["must_not"][0]["term"]["deleted"],
            json!(true)
        );
        assert_eq!(
            (body["from"].clone(), body["size"].clone()),
            (json!(20), json!(10))
        );
        assert!(search_body("  ", 0, 1)["query"]["bool"]["must"][0]["match_all"].is_object());
    }

    #[test]
    fn hits_keep_their_order_and_skip_foreign_ids() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let body = json!({"hits": {"total": {"value": 3, "relation": "eq"}, "hits": [
            {"_id": b.to_string()}, {"_id": "not-a-uuid"}, {"_id": a.to_string()}
        ]}});
        assert_eq!(read_hits(&body), (vec![b, a], 3));
    }
}
