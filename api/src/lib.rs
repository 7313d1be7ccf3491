//! API: the GraphQL API process (axum + async-graphql, port 3000). It stores writes in
//! PostgreSQL and publishes one Avro event per change through a transactional outbox.
//!
//! A request goes `http` → `graphql` → `domain`: the HTTP edge checks size, credentials,
//! rate limits and correlation id; thin resolvers call the [`domain::Domain`], which owns
//! every transaction and writes each change's rows and its outbox row together; the
//! [`outbox::OutboxRelay`], a task of the same process, publishes those rows to Kafka.
//!
//! Layout (one purpose per file):
//! - [`config`]: the typed configuration (clap, environment variables, dev defaults).
//! - [`error`]: the crate's [`Error`] and the stable `extensions.code` values.
//! - [`auth`]: JWTs (`jwt`; RS256 keys from a JWKS URL in `jwks`), argon2id passwords
//!   (`password`), the [`auth::Viewer`].
//! - [`domain`]: rows and enums (`model`), input rules (`validate`), and one file per
//!   aggregate (users, anime, episodes, comments, organizations, subscriptions).
//! - [`outbox`]: appending rows (`store`) and the relay (`relay`: leader election by
//!   advisory lock, LISTEN/NOTIFY, idempotent producer, backoff, pruning, drain).
//! - [`graphql`]: the schema: roots, object types, inputs, Relay pages, document limits,
//!   and what one operation may use while it runs (resolver cap, `_entities` cost).
//! - [`http`]: router, GraphQL endpoint, correlation ids, health and metrics, security
//!   headers and CORS.
//! - [`search`]: anime search and autocomplete ([`search::SearchBackend`]): the indexer's search
//!   index (default) or PostgreSQL.
//! - [`logs`]: the admin-only `logs` query's store, the log pipeline's daily indices.
//! - [`stats`]: the store of `trendingAnime` and `subscriptionCounts`, the analytics
//!   pipeline's index `<INDEX_PREFIX>-anime-stats`.
//! - [`cache`]: Redis cache-aside of hot reads; [`ratelimit`]: the Redis rate limiter
//!   (requests per client and user, password checks per client and account);
//!   [`metrics`]: Prometheus metrics.
//!
//! Start with [`run`] (binds the configured address) or [`serve`] (an already bound
//! listener, e.g. port 0 in tests).

pub mod auth;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod search;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anineplus_schemas::Codec;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::{Error, ErrorCode, Result};

use crate::auth::jwt::TokenAuthority;
use crate::outbox::relay::{RelaySettings, TOPICS};

/// The embedded migrations (`api/migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The `searchAnime` backend `config` asks for; the `index` one searches with `engine`.
fn search_backend(
    config: &Config,
    pool: &sqlx::PgPool,
    engine: &elasticsearch::Elasticsearch,
) -> Arc<dyn search::SearchBackend> {
    match config.search_backend {
        config::SearchBackendKind::Postgres => {
            tracing::info!("searchAnime served from PostgreSQL");
            Arc::new(search::PostgresSearch::new(pool.clone()))
        }
        config::SearchBackendKind::Index => {
            let mut backend = search::ElasticsearchSearch::new(
                engine.clone(),
                &config.search.search_url,
                &config.index_prefix,
                pool.clone(),
            );
            if config.search_fallback_postgres {
                backend = backend.with_postgres_fallback();
            }
            tracing::info!(
                url = %config.search.search_url,
                alias = backend.alias(),
                fallback = config.search_fallback_postgres,
                "searchAnime served from the search index"
            );
            Arc::new(backend)
        }
    }
}

/// Binds `config.listen` and serves until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    serve(config, listener, shutdown).await
}

/// Serves on `listener` until `shutdown`: migrates the database, registers the topics'
/// schemas (refusing to start when the registry rejects one), starts the outbox relay and
/// the HTTP server; on shutdown stops accepting, finishes requests, then drains the relay.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let config = config
        .validate()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&config.database_url)
        .await?;
    MIGRATOR.run(&pool).await?;

    let codec = Codec::new(&config.registry.registry_url);
    for topic in TOPICS {
        codec.register(topic).await.map_err(|e| {
            Error::Internal(format!(
                "the schema registry at {} did not accept the schema of topic {topic}: {e}",
                codec.registry().url()
            ))
        })?;
    }

    let redis = redis::Client::open(config.redis_url.as_str())?;
    let redis = redis::aio::ConnectionManager::new(redis).await?;
    let producer = anineplus_connectors::kafka::Producer::new(&config.kafka.brokers)?;
    let metrics = metrics::Metrics::new();
    let background = CancellationToken::new();
    let mut tokens = TokenAuthority::hs256(
        config.jwt_secret().as_bytes(),
        &config.jwt_issuer,
        &config.jwt_audience,
        config.jwt_ttl_secs,
    );
    if let Some(url) = &config.jwt_jwks_url {
        let jwks = auth::jwks::Jwks::new(url);
        let keys = jwks.refresh().await?;
        tracing::info!(%url, keys, "RS256 tokens accepted with the keys of the JWKS");
        tokio::spawn(jwks.clone().run(
            Duration::from_secs(config.jwt_jwks_refresh_secs.max(10)),
            background.clone(),
        ));
        tokens = tokens.with_jwks(jwks);
    }
    let redis_timeout = Duration::from_millis(config.redis_timeout_ms);
    let cache = cache::ReadCache::new(
        redis.clone(),
        &config.redis_key_prefix,
        config.cache_ttl_secs,
        redis_timeout,
    );
    let engine = search::engine_client(
        &config.search.search_url,
        Duration::from_millis(config.search_timeout_ms),
    )?;
    let domain = domain::Domain::new(
        pool.clone(),
        tokens,
        config.admin_emails.clone(),
        cache,
        search_backend(&config, &pool, &engine),
        config.max_page_size,
    )
    .with_logs(logs::LogStore::new(
        engine.clone(),
        &config.log_index_prefix,
    ))
    .with_stats(stats::StatsStore::new(engine, &config.index_prefix));
    let schema = graphql::build(
        domain.clone(),
        graphql::SchemaOptions {
            max_depth: config.max_depth,
            max_complexity: config.max_complexity,
            introspection: config.is_dev(),
        },
    );
    let state = http::AppState::new(http::Shared {
        schema,
        domain,
        limiter: ratelimit::RateLimiter::new(
            redis.clone(),
            &config.redis_key_prefix,
            config.rate_limit_requests,
            config.rate_limit_window_secs,
            config.rate_limit_fail,
            redis_timeout,
        )
        .with_password_limits(ratelimit::PasswordLimits {
            per_client: config.rate_limit_password_checks,
            free_failures: config.rate_limit_login_failures,
            backoff_ms: config.rate_limit_login_backoff_ms,
            max_backoff_ms: config.rate_limit_login_max_backoff_secs * 1000,
        }),
        metrics: metrics.clone(),
        limits: graphql::limits::DocumentLimits {
            max_aliases: config.max_aliases,
            max_operations: config.max_operations,
            max_entities: config.max_entities,
            max_complexity: config.max_complexity,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            resolver_concurrency: config.resolver_concurrency,
        },
        documents: Default::default(),
        max_batch: config.max_operations,
        dev: config.is_dev(),
        health: Arc::new(http::health::Probes {
            pool: pool.clone(),
            redis,
            redis_required: config.rate_limit_fail == config::FailPolicy::Closed,
            producer: producer.clone(),
            registry_url: config.registry.registry_url.clone(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| Error::Internal(e.to_string()))?,
        }),
    });

    let relay_stop = CancellationToken::new();
    let relay = outbox::OutboxRelay::new(
        pool.clone(),
        producer,
        codec,
        RelaySettings {
            topic_prefix: config.kafka_topic_prefix.clone(),
            batch: config.outbox_batch,
            poll: config.outbox_poll(),
            retention_secs: config.outbox_retention_secs,
            prune_every: Duration::from_secs(config.outbox_prune_secs),
            drain: Duration::from_secs(config.outbox_drain_secs),
        },
        metrics,
    );
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));

    let app = http::router(state, &config);
    let address = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(%address, env = ?config.env, "anineplus-api listening");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .map_err(|e| Error::Internal(format!("http server: {e}")));
    relay_stop.cancel();
    background.cancel();
    let _ = relay_task.await;
    pool.close().await;
    tracing::info!("anineplus-api stopped");
    served
}
