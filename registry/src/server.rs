//! Starting and stopping the server: connect and migrate, bind, serve until cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Access;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::reload::Hangups;
use crate::store::Store;

/// Connects to the configured database and applies the migrations.
pub async fn connect(config: &Config) -> Result<Registry> {
    let store = Store::connect(
        &config.database_url,
        config.database_max_connections,
        config.database_acquire_timeout(),
    )
    .await
    .map_err(|e| match e {
        Error::Store(reason) => Error::DatabaseUnreachable {
            url: config.redacted_database_url(),
            reason: reason.to_string(),
        },
        other => other,
    })?;
    Ok(Registry::new(store, config.default_compatibility).with_limits(config.limits()))
}

/// Serves the REST API on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    access: Arc<Access>,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, crate::http::router(registry, access))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The whole server: load the users file (refusing to start without one: writes are never
/// open to anonymous callers) and watch it ([`crate::reload`]), connect, migrate, listen on `config.listen`, serve until `shutdown`,
/// close the pool.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let access = Arc::new(config.access()?);
    // The watcher stops with the server, and on any early return (the guard cancels it).
    let watching = shutdown.child_token();
    let stop_watching = watching.clone().drop_guard();
    let watcher = config.auth_file.clone().map(|path| {
        tokio::spawn(crate::reload::watch(
            Arc::clone(&access),
            path,
            Duration::from_secs(config.auth_reload_secs),
            Hangups::listen(),
            watching,
        ))
    });
    let registry = connect(&config).await?;
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = %config.redacted_database_url(),
        default_compatibility = %config.default_compatibility,
        anonymous_read = access.anonymous_read(),
        users = access.user_count(),
        auth_reload_secs = config.auth_reload_secs,
        "schema registry listening"
    );
    let served = serve(listener, registry.clone(), access, shutdown.clone()).await;
    drop(stop_watching);
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    registry.store().pool().close().await;
    tracing::info!("schema registry stopped");
    served
}
