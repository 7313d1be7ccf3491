//! The HTTP edge: the router ([`router`]), the GraphQL endpoint ([`graphql`]), correlation
//! ids ([`correlation`]), health ([`health`]) and the security layers ([`security`]).

pub mod correlation;
pub mod graphql;
pub mod health;
pub mod security;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::config::Config;
use crate::graphql::ApiSchema;
use crate::graphql::documents::DocumentCache;
use crate::graphql::limits::DocumentLimits;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// What every handler shares: one allocation, so handing it to a request (axum clones the
/// state for each) is a reference count, not a copy of the domain's keys and settings.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state of `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of an [`AppState`].
pub struct Shared {
    /// The GraphQL schema (holds the domain).
    pub schema: ApiSchema,
    /// The domain (token checks).
    pub domain: crate::domain::Domain,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Metrics.
    pub metrics: Metrics,
    /// Document limits.
    pub limits: DocumentLimits,
    /// Parsed documents of recent requests.
    pub documents: DocumentCache,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Dev mode (GraphiQL).
    pub dev: bool,
    /// Readiness probes.
    pub health: Arc<health::Probes>,
}

/// The router of the API.
pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .route("/graphql", get(graphql::graphiql).post(graphql::graphql))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(security::cors(config))
        .layer(axum::middleware::from_fn(security::headers))
        .layer(axum::middleware::from_fn(correlation::correlate))
        .with_state(state)
}
