//! Search sync: verification, repair and reindex of the search indices against PostgreSQL
//! (the source of truth), binary `anineplus-search`; [`SearchSync`] holds both connections.
//!
//! - [`SearchSync::verify`]: reads every row (ids, versions, deleted flags) in primary-key order
//!   with keyset pagination on the key (each page an index range scan) and every document of the index (`id`, `aggregateVersion`, `deleted`) with
//!   `search_after` on `id`, and reports the [`Drift`]; every drifted id is read again
//!   (document, then row) so that writes during the scans are not reported as drift
//!   ([`SearchSync::verify_target`]).
//! - [`SearchSync::repair`]: writes the drifted documents from their rows, built with the
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
//! - [`SearchSync::reindex`]: builds `<alias>-v<N+1>` from PostgreSQL, catches it up (verify +
//!   repair against the new generation), switches the alias in one
//!   `_aliases` request, then runs verify + repair against the alias (the indexer writes
//!   through the alias, so whatever it wrote to the old generation during the copy is in
//!   PostgreSQL and is repaired from there), then deletes the old generation.
//!
//! Supported indices: all of them ([`SUPPORTED`]). How a row becomes a document:
//! - `anime`, `episodes`: the row as its `*.updated` (or `*.deleted`) event;
//! - `users`: the row as its `user.created` (no email), a deleted row as `user.deleted`;
//! - `comments` (`SearchSync::comment_document`): `comment.created`, then, if the row was
//!   moderated, the fields of its `comment.moderated` merged in, as the indexer's partial
//!   update does; a deleted row (`deleted_at`) its `comment.deleted` tombstone;
//! - `organizations` (`SearchSync::organization_document`): `organization.created` with
//!   its member entries replaced by the `organization_members` rows at the row's version
//!   (the write lists them as the indexer does: owner first, then by user id).
//!
//! Progress goes to stderr (and to [`SearchSync::progress_line`] when set). Failures are
//! [`Error`]s.
//!
//! Layout, one module per job: `rows` (the SQL per table, keyset pages), `rebuild`
//! (documents from rows), `engine` (raw engine HTTP: scans, `_mget`, aliases, bulk writes),
//! `drift` ([`Entry`], [`Drift`], [`compare`], verify), `repair`, `reindex`, `error`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anineplus_connectors::search;
use anineplus_indexer::documents::Documents;
use anineplus_indexer::indices::Index;
use elasticsearch::Elasticsearch;
use sqlx::PgPool;

mod drift;
mod engine;
mod error;
mod rebuild;
mod reindex;
mod repair;
mod rows;

pub use drift::{Drift, Entry, compare};
pub use error::{Error, Result};
pub use repair::Repaired;

/// Indices the sync commands handle.
pub const SUPPORTED: [Index; 5] = [
    Index::Anime,
    Index::Episodes,
    Index::Comments,
    Index::Users,
    Index::Organizations,
];

/// Progress is printed every this many rows or documents.
pub(crate) const PROGRESS_EVERY: usize = 5_000;

/// Where the sync commands read and write.
#[derive(Debug, Clone)]
pub struct SearchSync {
    pool: PgPool,
    search: Elasticsearch,
    prefix: String,
    docs: Documents,
    /// Rows or documents per page and per bulk.
    pub batch: usize,
    /// Print progress on stderr.
    pub progress: bool,
    /// When set, the latest progress line is also kept here (the console shows it while
    /// a verify, repair or reindex runs).
    pub progress_line: Option<Arc<Mutex<String>>>,
}

impl SearchSync {
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
            .map_err(|source| Error::Database {
                context: format!("PostgreSQL at {database_url}"),
                source,
            })?;
        let search = search::client(elasticsearch_url, Duration::from_secs(60))?;
        Ok(SearchSync {
            pool,
            search,
            prefix: prefix.to_owned(),
            docs: Documents::new(prefix),
            batch: 1000,
            progress: true,
            progress_line: None,
        })
    }

    pub(crate) fn note(&self, message: impl std::fmt::Display) {
        if self.progress {
            eprintln!("{message}");
        }
        if let Some(line) = &self.progress_line {
            *line.lock().unwrap_or_else(|e| e.into_inner()) = message.to_string();
        }
    }

    pub(crate) fn check(index: Index) -> Result<()> {
        if !SUPPORTED.contains(&index) {
            return Err(Error::Unsupported(index.name()));
        }
        Ok(())
    }
}
