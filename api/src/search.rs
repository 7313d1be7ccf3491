//! The seam of `searchAnime`: a [`SearchBackend`] answers a text query with a page of anime.
//!
//! Today [`PostgresSearch`] serves it (`ILIKE` on title and synopsis). When the search
//! indexer keeps the index in step, an index-backed implementation replaces it at start-up
//! without touching the GraphQL layer.

use sqlx::PgPool;

use crate::Result;
use crate::domain::{Anime, Page};

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

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_are_literal() {
        assert_eq!(super::like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
