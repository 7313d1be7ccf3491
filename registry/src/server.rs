//! Starting and stopping the server: connect and migrate, bind, serve until cancelled.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::registry::Registry;
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
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, crate::http::router(registry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The whole server: connect, migrate, listen on `config.listen`, serve until `shutdown`,
/// close the pool.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let registry = connect(&config).await?;
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = %config.redacted_database_url(),
        default_compatibility = %config.default_compatibility,
        "schema registry listening"
    );
    let served = serve(listener, registry.clone(), shutdown).await;
    registry.store().pool().close().await;
    tracing::info!("schema registry stopped");
    served
}
