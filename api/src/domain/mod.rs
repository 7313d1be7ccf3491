//! The domain: its types and the [`Domain`] service that owns every transaction.
//!
//! Each write runs in one PostgreSQL transaction that changes its rows (incrementing their
//! `version`) and appends one outbox row, so a failed mutation writes nothing and a
//! committed one always has its event. The aggregate row is written (and so locked) before
//! the outbox row is appended: two writes of one aggregate therefore get outbox ids in
//! commit order, which is the order the relay publishes.
//!
//! Files: [`model`] (rows and enums), [`validate`] (input rules), one file per
//! aggregate holding its `impl Domain` block, and `analytics` (the reads of the analytics
//! pipeline's statistics: [`Domain::trending_anime`], [`Domain::subscription_counts`]).

mod analytics;
mod anime;
pub use analytics::{HOUR_MS, MAX_TRENDING_BUCKETS, Trending, TrendingWindow};
pub(crate) use anime::{ANIME_COLUMNS, live_anime_in_order};
pub use anime::{AnimeChange, NewAnime};
pub use comments::CommentTarget;
pub use episodes::{EpisodeChange, EpisodeFields};
mod comments;
mod episodes;
mod found;
pub use found::{FoundEntities, FoundEntity};
pub mod model;
mod organizations;
mod subscriptions;
mod users;
pub mod validate;

pub use model::*;

use sqlx::PgPool;

use crate::auth::Viewer;
use crate::auth::jwt::TokenAuthority;
use crate::cache::ReadCache;
use crate::search::SearchBackend;

/// Who asks, and under which correlation id: passed to every domain call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated user, or anonymous.
    pub viewer: Viewer,
    /// The request's correlation id, carried into events.
    pub correlation_id: String,
}

/// The domain service: reads, writes and their authorization rules.
#[derive(Clone)]
pub struct Domain {
    pub(crate) pool: PgPool,
    pub(crate) tokens: TokenAuthority,
    pub(crate) admin_emails: Vec<String>,
    pub(crate) cache: ReadCache,
    pub(crate) search: std::sync::Arc<dyn SearchBackend>,
    pub(crate) max_page_size: usize,
    pub(crate) logs: Option<crate::logs::LogStore>,
    pub(crate) stats: Option<crate::stats::StatsStore>,
}

impl Domain {
    /// A domain service over `pool`.
    pub fn new(
        pool: PgPool,
        tokens: TokenAuthority,
        admin_emails: Vec<String>,
        cache: ReadCache,
        search: std::sync::Arc<dyn SearchBackend>,
        max_page_size: usize,
    ) -> Self {
        Self {
            pool,
            tokens,
            admin_emails,
            cache,
            search,
            max_page_size,
            logs: None,
            stats: None,
        }
    }

    /// Serves the admin `logs` query from `store`.
    pub fn with_logs(mut self, store: crate::logs::LogStore) -> Self {
        self.logs = Some(store);
        self
    }

    /// The log records `query` selects (admins only), in time order.
    pub async fn logs(
        &self,
        viewer: &crate::auth::Viewer,
        query: &anineplus_connectors::log_search::LogQuery,
    ) -> crate::Result<Vec<anineplus_connectors::log_search::LogHit>> {
        viewer.require_role(model::Role::Admin, "only admins read logs")?;
        let store = self
            .logs
            .as_ref()
            .ok_or_else(|| crate::Error::Internal("no log store configured".into()))?;
        store.find(query).await
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The token authority.
    pub fn tokens(&self) -> &TokenAuthority {
        &self.tokens
    }

    /// Checks a requested page size against the cap; `None` means the default (20).
    pub fn page_size(&self, first: Option<i32>) -> crate::Result<i64> {
        validate::page_size(first, self.max_page_size)
    }
}
