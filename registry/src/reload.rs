//! Reading the users file again while the registry runs: on SIGHUP, and when the file's
//! modification time or size changes (checked every `REGISTRY_AUTH_RELOAD_SECS`). A file
//! that does not parse or validate keeps the users loaded before and logs why (the file, and
//! the line for a JSON error); a valid one replaces them in one step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::auth::Access;

/// What tells one version of the file from another without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// A stream of SIGHUPs, registered now (so a signal sent once the server answers is never
/// the default action, which ends the process); `None` where there are no such signals.
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts listening for SIGHUP.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Reloads `path` into `access` on SIGHUP and, unless `every` is zero, whenever its
/// modification time or size changes, checked every `every`; until `shutdown`.
pub async fn watch(
    access: Arc<Access>,
    path: PathBuf,
    every: Duration,
    mut hangups: Hangups,
    shutdown: CancellationToken,
) {
    let mut seen = stamp(&path);
    let mut ticks = (!every.is_zero()).then(|| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    let tick = async |ticks: &mut Option<tokio::time::Interval>| match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending::<()>().await,
    };
    loop {
        let cause = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hangups.next() => "SIGHUP",
            _ = tick(&mut ticks) => {
                let now = stamp(&path);
                if now == seen {
                    continue;
                }
                "the file changed"
            }
        };
        seen = stamp(&path);
        reload(&access, &path, cause);
    }
}

/// One reload of `path`, logged.
fn reload(access: &Access, path: &Path, cause: &str) {
    match access.reload(path) {
        Ok(users) => tracing::info!(
            file = %path.display(),
            users,
            cause,
            "users file reloaded: {users} users"
        ),
        Err(e) => tracing::error!(
            file = %path.display(),
            cause,
            kept_users = access.user_count(),
            "users file not reloaded, the users loaded before stay: {e}"
        ),
    }
}
