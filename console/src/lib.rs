//! The operators' console (port 8080): pipelines and their lag, dead letters grouped by
//! cause, redrive jobs with their outcome, purge of what is resolved, skipping a poison
//! record, the registry's schemas, search sync (verify, repair, reindex), an audit log of
//! every write. Server-rendered HTML with
//! a few lines of JavaScript (polling), nothing fetched from elsewhere at run time. See
//! `docs/console.md`.
//!
//! Guarantees: pages read PostgreSQL (the dead-letter index) and Kafka's offsets, never a
//! full scan of a topic; a redrive job sends only the letters indexed below the end offsets
//! seen when it was created and resumes after a restart; a purge deletes only what the
//! engine's replay marks cover; every write is confirmed, CSRF-checked and audited.
//!
//! Layout (one purpose per file):
//! - [`config`]: the typed configuration and the pipeline specifications.
//! - [`error`]: the crate's [`Error`], shown as a page with its status.
//! - [`auth`]: sign-in with the API's tokens, sessions, CSRF, the [`auth::Operator`] extractor.
//! - [`pipelines`]: lag from committed offsets and watermarks, health, rates, lag history.
//! - [`index`]: the PostgreSQL index of dead letters, its consumer and its queries.
//! - [`jobs`]: redrive jobs on the streams dead-letter engine, and purge.
//! - [`audit`]: the audit log.
//! - [`sync`]: search sync runs (verify, repair, reindex) on the `anineplus-sync` library.
//! - [`html`]: escaping and the layout; `web`: the routes and pages (pipelines, dead
//!   letters, jobs, schemas, audit), one file each.
//!
//! Start with [`run`] (binds the configured address) or [`serve`] (an already bound
//! listener, e.g. port 0 in tests).

pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod html;
pub mod index;
pub mod jobs;
pub mod pipelines;
pub mod sync;
mod web;

use std::sync::Arc;

use anineplus_api::auth::jwt::TokenAuthority;
use anineplus_schemas::Codec;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{ConsoleConfig, PipelineSpec};
pub use error::{Error, Result};

/// The console's shared state.
#[derive(Debug)]
pub struct Console {
    /// The configuration.
    pub config: ConsoleConfig,
    /// The console's database.
    pub pool: PgPool,
    /// Signed-in operators.
    pub sessions: auth::Sessions,
    /// The pipelines' latest samples.
    pub watch: Arc<pipelines::Watch>,
    /// Redrive jobs in the background.
    pub runner: jobs::Runner,
    /// Search sync runs (verify, repair, reindex) in the background.
    pub syncs: Arc<sync::Syncs>,
    /// The registry codec (inspection).
    pub codec: Codec,
    /// HTTP client (the API's `login`).
    pub http: reqwest::Client,
}

impl auth::HasSessions for Console {
    fn sessions(&self) -> &auth::Sessions {
        &self.sessions
    }
}

/// The PostgreSQL schema of the console's tables and of its migrations' bookkeeping, so that
/// it can share the API's database without touching the API's tables or migrations.
pub const SCHEMA: &str = "console";

/// A pool on `database_url` whose connections work in [`SCHEMA`] (created when missing).
pub async fn connect(database_url: &str) -> Result<PgPool> {
    let options: PgConnectOptions = database_url.parse()?;
    let mut first = PgConnection::connect_with(&options).await?;
    let created = first
        .execute(format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}").as_str())
        .await;
    match created {
        Ok(_) => {}
        // Two processes creating it at once: PostgreSQL's IF NOT EXISTS is not atomic, the
        // loser gets a unique violation on the catalogue, and the schema is there.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
        Err(e) => return Err(e.into()),
    }
    first.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.options([("search_path", SCHEMA)]))
        .await?)
}

/// Binds `config.listen` and serves until `shutdown`.
pub async fn run(config: ConsoleConfig, shutdown: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "console listening");
    serve(config, listener, shutdown).await
}

/// Serves on `listener` until `shutdown`: migrates the database, starts the dead-letter
/// index, the pipelines' sampling and the jobs left running, then the pages; drains the
/// jobs (each stops between two records) before returning.
pub async fn serve(
    config: ConsoleConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let pool = connect(&config.database_url).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let tokens = TokenAuthority::hs256(
        config.jwt_secret.as_bytes(),
        &config.jwt_issuer,
        &config.jwt_audience,
        0,
    );
    let watch = Arc::new(pipelines::Watch::new(
        &config.kafka_brokers,
        &config.topic_prefix,
        config.pipelines.clone(),
    ));
    let background = shutdown.child_token();
    let runner = jobs::Runner::new(pool.clone(), &config.kafka_brokers, background.clone());
    let indexer = index::Indexer {
        brokers: config.kafka_brokers.clone(),
        topics: config
            .pipelines
            .iter()
            .map(|p| (p.name.clone(), config.dlq_topic(&p.name)))
            .collect(),
        pool: pool.clone(),
    };
    let index_task = tokio::spawn(indexer.run(background.clone()));
    let watch_task = tokio::spawn(watch.clone().run(config.poll_interval, background.clone()));
    let resumed = runner.resume().await?;
    if resumed > 0 {
        tracing::info!(jobs = resumed, "redrive jobs resumed");
    }
    let console = Arc::new(Console {
        sessions: auth::Sessions::new(tokens, config.session_ttl, config.secure_cookies),
        codec: Codec::new(&config.schema_registry_url),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config(format!("an HTTP client: {e}")))?,
        config,
        pool,
        watch,
        runner: runner.clone(),
        syncs: Arc::new(sync::Syncs::default()),
    });
    let app = web::router(console);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    background.cancel();
    runner.wait().await;
    let _ = index_task.await;
    let _ = watch_task.await;
    Ok(())
}
