//! Search served from PostgreSQL (`SEARCH_BACKEND=postgres`, or the engine's fallback):
//! case-insensitive substring match on title, alternative titles and synopsis, title matches
//! first, with the
//! filters and sorts of the engine's search; no typo tolerance, highlights or facets.

use std::collections::HashMap;

use sqlx::PgPool;

use super::{AnimeSearch, BoxFuture, Facets, Highlight, SearchBackend, SearchResults, SearchSort};
use super::{Suggestion, Uuid};
use crate::Result;
use crate::domain::{Anime, Page};

/// Searches the anime table.
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

/// `query` as a literal `ILIKE` pattern inside `%…%`: `%`, `_` and `\` match themselves.
pub(crate) fn like_pattern(query: &str) -> String {
    format!("%{}%", like_literal(query))
}

fn like_literal(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `WHERE` of a search: live, matching ($1), and the filters ($2–$5).
const CONDITION: &str = "deleted_at IS NULL AND (title ILIKE $1 OR synopsis ILIKE $1 \
    OR EXISTS (SELECT 1 FROM unnest(alternative_titles) AS t WHERE t ILIKE $1)) \
    AND (cardinality($2::text[]) = 0 OR genres && $2) \
    AND (cardinality($3::text[]) = 0 OR status = ANY($3)) \
    AND ($4::int IS NULL OR release_year >= $4) AND ($5::int IS NULL OR release_year <= $5)";

impl SearchBackend for PostgresSearch {
    fn search_anime<'a>(&'a self, s: AnimeSearch<'a>) -> BoxFuture<'a, Result<SearchResults>> {
        Box::pin(async move {
            let pattern = like_pattern(s.query.trim());
            let status: Vec<&str> = s.filter.status.iter().map(|st| st.as_str()).collect();
            let order = match s.sort {
                SearchSort::Relevance => "(title ILIKE $1) DESC, title, id",
                SearchSort::Newest => "created_at DESC, id DESC",
                SearchSort::ReleaseYear => "release_year DESC NULLS LAST, title, id",
            };
            let total: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM anime WHERE {CONDITION}"))
                    .bind(&pattern)
                    .bind(&s.filter.genres)
                    .bind(&status)
                    .bind(s.filter.release_year_from)
                    .bind(s.filter.release_year_to)
                    .fetch_one(&self.pool)
                    .await?;
            let items: Vec<Anime> = sqlx::query_as(&format!(
                "SELECT {} FROM anime WHERE {CONDITION} ORDER BY {order} OFFSET $6 LIMIT $7",
                crate::domain::ANIME_COLUMNS
            ))
            .bind(&pattern)
            .bind(&s.filter.genres)
            .bind(&status)
            .bind(s.filter.release_year_from)
            .bind(s.filter.release_year_to)
            .bind(s.offset)
            .bind(s.limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(SearchResults {
                page: Page {
                    items,
                    offset: s.offset,
                    total,
                },
                highlights: HashMap::new(),
                facets: Facets::default(),
            })
        })
    }

    fn search_everything<'a>(
        &'a self,
        _search: super::EverythingSearch<'a>,
    ) -> BoxFuture<'a, Result<super::FoundPage>> {
        Box::pin(async move { Err(Self::everything_unsupported()) })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>>> {
        Box::pin(async move {
            let pattern = format!("{}%", like_literal(prefix.trim()));
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, title FROM anime WHERE deleted_at IS NULL AND title ILIKE $1 \
                 ORDER BY length(title), title, id LIMIT $2",
            )
            .bind(&pattern)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            let typed = prefix.trim().chars().count();
            Ok(rows
                .into_iter()
                .map(|(id, title)| {
                    let cut = title
                        .char_indices()
                        .nth(typed)
                        .map_or(title.len(), |(i, _)| i);
                    let snippet = format!(
                        "<em>{}</em>{}",
                        html_escape(&title[..cut]),
                        html_escape(&title[cut..])
                    );
                    Suggestion {
                        id,
                        title,
                        matched: Highlight {
                            field: "title".to_owned(),
                            snippet,
                        },
                    }
                })
                .collect())
        })
    }
}

impl PostgresSearch {
    /// Searching every kind needs the index: a clear error instead of a scan of five
    /// tables.
    pub(crate) fn everything_unsupported() -> crate::Error {
        crate::Error::Search(
            "search over every kind of entity needs the search index (SEARCH_BACKEND=index)"
                .to_owned(),
        )
    }
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, as the engine's `html` encoder does.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_literal() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(html_escape("<b>&'\""), "&lt;b&gt;&amp;&#x27;&quot;");
    }
}
