//! Search sync from the console: `verify`, `repair` and `reindex` of one index against
//! PostgreSQL, on the `anineplus-sync` library (the same code as `anineplus-search`), one
//! run at a time per index, in the background, with its latest progress line.
//!
//! - **verify** reads; **repair** verifies, then writes what drifted; **reindex** builds the
//!   next generation and switches the alias. Repair and reindex are confirmed first and
//!   audited when they end (with the documents written).
//! - Runs live in memory: a console restart forgets them (a run cut short by a restart is
//!   harmless: verify and repair are idempotent, and a reindex that did not switch its
//!   alias leaves the old generation serving; `anineplus-search reindex` cleans up).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anineplus_schemas::indices::Index;
use anineplus_sync::SearchSync;
use sqlx::PgPool;

use crate::audit;
use crate::auth::Operator;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Compare the index with PostgreSQL.
    Verify,
    /// Verify, then write what drifted.
    Repair,
    /// Build the next generation from PostgreSQL and switch the alias to it.
    Reindex,
}

impl Action {
    /// Its name in forms, pages and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Verify => "verify",
            Action::Repair => "repair",
            Action::Reindex => "reindex",
        }
    }

    /// Parses a form's value.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "verify" => Some(Action::Verify),
            "repair" => Some(Action::Repair),
            "reindex" => Some(Action::Reindex),
            _ => None,
        }
    }

    /// Whether it writes (confirmed and audited).
    pub fn writes(self) -> bool {
        self != Action::Verify
    }
}

/// One run's state.
#[derive(Debug, Clone)]
pub struct Run {
    /// What it does.
    pub action: Action,
    /// Who started it.
    pub by: String,
    /// When (ms since the epoch).
    pub started_ms: i64,
    /// Its latest progress line.
    pub progress: Arc<Mutex<String>>,
    /// `None` while it runs; then its summary, or why it failed.
    pub outcome: Option<Result<String, String>>,
}

/// The runs, the latest per index.
#[derive(Debug, Default)]
pub struct Syncs {
    runs: Mutex<BTreeMap<&'static str, Run>>,
}

/// Where a run reads and writes.
#[derive(Debug, Clone)]
pub struct Target {
    /// PostgreSQL of the API (its tables are the source of truth).
    pub database_url: String,
    /// The search engine.
    pub search_url: String,
    /// The indices' prefix.
    pub index_prefix: String,
}

impl Syncs {
    /// The latest run of every index that had one.
    pub fn latest(&self) -> BTreeMap<&'static str, Run> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts `action` on `index` in the background; refused while a run of that index
    /// is still going.
    pub fn start(
        self: &Arc<Self>,
        target: Target,
        pool: PgPool,
        who: Operator,
        index: Index,
        action: Action,
    ) -> Result<(), String> {
        let progress = Arc::new(Mutex::new("connecting".to_owned()));
        {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(run) = runs.get(index.name())
                && run.outcome.is_none()
            {
                return Err(format!(
                    "a {} of {} is still running",
                    run.action.as_str(),
                    index.name()
                ));
            }
            runs.insert(
                index.name(),
                Run {
                    action,
                    by: who.actor(),
                    started_ms: now_ms(),
                    progress: progress.clone(),
                    outcome: None,
                },
            );
        }
        let syncs = self.clone();
        tokio::spawn(async move {
            let outcome = run(&target, index, action, progress).await;
            if action.writes() {
                let (records, detail) = match &outcome {
                    Ok((written, summary)) => (*written, summary.clone()),
                    Err(e) => (0, format!("failed: {e}")),
                };
                if let Err(e) =
                    audit::record(&pool, &who, action.as_str(), index.name(), records, &detail)
                        .await
                {
                    tracing::warn!(error = %e, "auditing a search sync");
                }
            }
            match &outcome {
                Ok((_, summary)) => {
                    tracing::info!(index = index.name(), action = action.as_str(), %summary, "search sync done")
                }
                Err(e) => {
                    tracing::warn!(index = index.name(), action = action.as_str(), error = %e, "search sync failed")
                }
            }
            let mut runs = syncs.runs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(run) = runs.get_mut(index.name()) {
                run.outcome = Some(outcome.map(|(_, summary)| summary));
            }
        });
        Ok(())
    }
}

/// Runs `action`; the documents written and a summary.
async fn run(
    target: &Target,
    index: Index,
    action: Action,
    progress: Arc<Mutex<String>>,
) -> Result<(u64, String), String> {
    let mut sync = SearchSync::connect(
        &target.database_url,
        &target.search_url,
        &target.index_prefix,
    )
    .await
    .map_err(|e| e.to_string())?;
    sync.progress = false;
    sync.progress_line = Some(progress);
    match action {
        Action::Verify => {
            let drift = sync.verify(index).await.map_err(|e| e.to_string())?;
            Ok((0, summary(&drift)))
        }
        Action::Repair => {
            let drift = sync.verify(index).await.map_err(|e| e.to_string())?;
            if drift.in_sync() {
                return Ok((0, format!("nothing to repair: {}", summary(&drift))));
            }
            let repaired = sync
                .repair(index, &drift)
                .await
                .map_err(|e| e.to_string())?;
            let mut text = format!(
                "{} written, {} refused; before: {}",
                repaired.written,
                repaired.failed.len(),
                summary(&drift)
            );
            if let Some(first) = repaired.failed.first() {
                text.push_str(&format!("; first refusal: {first}"));
            }
            Ok((repaired.written as u64, text))
        }
        Action::Reindex => {
            let generation = sync
                .reindex(index, false)
                .await
                .map_err(|e| e.to_string())?;
            Ok((0, format!("the alias now points to {generation}")))
        }
    }
}

/// A drift in one line.
fn summary(drift: &anineplus_sync::Drift) -> String {
    if drift.in_sync() {
        return format!(
            "in sync: {} rows, {} documents",
            drift.rows, drift.documents
        );
    }
    let mut parts = Vec::new();
    for (what, ids) in [
        ("missing", &drift.missing),
        ("stale", &drift.stale),
        ("orphaned", &drift.orphaned),
        ("ahead", &drift.ahead),
        ("denormalised", &drift.denormalised),
    ] {
        if !ids.is_empty() {
            let first: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
            parts.push(format!("{} {what} ({}…)", ids.len(), first.join(", ")));
        }
    }
    format!(
        "drift: {}; {} rows, {} documents",
        parts.join(", "),
        drift.rows,
        drift.documents
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_only_verify_reads() {
        for a in [Action::Verify, Action::Repair, Action::Reindex] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("drop"), None);
        assert!(!Action::Verify.writes());
        assert!(Action::Repair.writes() && Action::Reindex.writes());
    }

    #[test]
    fn a_drift_is_summarised_with_its_first_ids() {
        let drift = anineplus_sync::Drift {
            rows: 3,
            documents: 2,
            missing: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(
            summary(&drift),
            "drift: 1 missing (a…); 3 rows, 2 documents"
        );
        let clean = anineplus_sync::Drift {
            rows: 2,
            documents: 2,
            ..Default::default()
        };
        assert_eq!(summary(&clean), "in sync: 2 rows, 2 documents");
    }
}
