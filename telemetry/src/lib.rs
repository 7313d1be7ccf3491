//! Telemetry: what every binary of the workspace sets up the same way at start.
//!
//! - [`init_logging`] / [`init_logging_with`]: JSON log lines (one object per event, with the
//!   current span, no span list) filtered by `RUST_LOG` (or an explicit filter); services log
//!   to stdout, command-line tools to stderr ([`Output`]), since their stdout carries the
//!   command's results;
//! - [`ship`]: the `tracing` layer that also ships every event to the `logs` topic (Avro
//!   through the registry) from a bounded queue, never blocking, never shipping its own or
//!   librdkafka's events, redacting secrets; [`init_logging_shipped`] installs it beside the
//!   JSON lines; [`init_service_logging`] is what services call (JSON lines, shipping
//!   unless turned off, the shipper's counters in Prometheus' process-wide registry);
//! - [`shutdown_on_signal`]: a [`CancellationToken`] cancelled on the first SIGINT or SIGTERM
//!   (SIGINT alone where there is no SIGTERM), which services pass to their run loop to drain
//!   and exit.

pub mod ship;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Standard output: services.
    Stdout,
    /// Standard error: command-line tools, whose stdout is their result.
    Stderr,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filter is not a valid `RUST_LOG` directive list.
    #[error("log filter {filter:?}: {source}")]
    Filter {
        /// The filter given.
        filter: String,
        /// Why it does not parse.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed.
    #[error("logging already set up: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// JSON logs filtered by `RUST_LOG` when it is set (and valid), else by `default`.
pub fn init_logging(default: &str, output: Output) -> Result<(), Error> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => parse(default)?,
    };
    install(filter, output)
}

/// JSON logs filtered by `filter` (a `RUST_LOG` directive list), e.g. a `--log` flag's value.
pub fn init_logging_with(filter: &str, output: Output) -> Result<(), Error> {
    install(parse(filter)?, output)
}

fn parse(filter: &str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(filter).map_err(|source| Error::Filter {
        filter: filter.to_owned(),
        source,
    })
}

/// JSON logs as [`init_logging`], and every event that passes the filter shipped through
/// `ship` too (see [`ship`]); run the matching [`ship::Shipper`] on the runtime.
pub fn init_logging_shipped(
    default: &str,
    output: Output,
    ship: ship::ShipLayer,
) -> Result<(), Error> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => parse(default)?,
    };
    install_with(filter, output, Some(ship))
}

/// A service's logging once set up by [`init_service_logging`]: the shipper's counters, and
/// its drain to flush at exit.
#[derive(Debug)]
pub struct ServiceLogging {
    stats: Option<Arc<ship::ShipStats>>,
    stop: CancellationToken,
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl ServiceLogging {
    /// The shipper's counters (`None` when shipping is off).
    pub fn stats(&self) -> Option<&Arc<ship::ShipStats>> {
        self.stats.as_ref()
    }

    /// Ships what is still queued, flushes the producer (up to 5 s) and stops shipping:
    /// call it once the service has stopped.
    pub async fn finish(self) {
        self.stop.cancel();
        if let Some(drain) = self.drain {
            let _ = drain.await;
        }
    }
}

/// A service's logging: JSON lines to stdout as [`init_logging`], and, when `ship` is
/// given, every event shipped to the `logs` topic too (see [`ship`]): the drain spawned
/// on the current Tokio runtime, its counters (`logs_shipped_total`, `logs_dropped_total`)
/// registered in the process-wide Prometheus registry that every `/metrics` includes.
pub fn init_service_logging(
    default: &str,
    ship: Option<ship::ShipConfig>,
) -> Result<ServiceLogging, Error> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => parse(default)?,
    };
    service_logging(filter, ship)
}

/// [`init_service_logging`] with exactly `filter` (`RUST_LOG` not consulted): for a
/// binary whose own flag holds the filter (the registry's `--log`).
pub fn init_service_logging_with(
    filter: &str,
    ship: Option<ship::ShipConfig>,
) -> Result<ServiceLogging, Error> {
    service_logging(parse(filter)?, ship)
}

fn service_logging(
    filter: EnvFilter,
    ship: Option<ship::ShipConfig>,
) -> Result<ServiceLogging, Error> {
    let Some(config) = ship else {
        install(filter, Output::Stdout)?;
        return Ok(ServiceLogging {
            stats: None,
            stop: CancellationToken::new(),
            drain: None,
        });
    };
    let (layer, shipper, stats) = ship::layer(config);
    install_with(filter, Output::Stdout, Some(layer))?;
    if let Err(e) = stats.register(prometheus::default_registry()) {
        tracing::warn!(error = %e, "log shipping counters not exposed");
    }
    let stop = CancellationToken::new();
    let drain = tokio::spawn(shipper.run(stop.clone()));
    Ok(ServiceLogging {
        stats: Some(stats),
        stop,
        drain: Some(drain),
    })
}

fn install(filter: EnvFilter, output: Output) -> Result<(), Error> {
    install_with(filter, output, None)
}

fn install_with(
    filter: EnvFilter,
    output: Output,
    ship: Option<ship::ShipLayer>,
) -> Result<(), Error> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false);
    let registry = tracing_subscriber::registry().with(filter);
    match output {
        Output::Stdout => registry.with(lines).with(ship).try_init()?,
        Output::Stderr => registry
            .with(lines.with_writer(std::io::stderr))
            .with(ship)
            .try_init()?,
    }
    Ok(())
}

/// A token cancelled on the first SIGINT or SIGTERM (logged), from a task spawned on the
/// current Tokio runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutdown requested: draining");
        cancel.cancel();
    });
    token
}

/// Waits for SIGINT or SIGTERM.
async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_reported_with_its_text() {
        let e = init_logging_with("info,[", Output::Stderr).unwrap_err();
        assert!(e.to_string().contains("info,["), "{e}");
    }
}
