//! The audit log: one row per write of the console (who, what, on what, how many records).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::Result;
use crate::auth::Operator;

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`user <id>`).
    pub actor: String,
    /// Their role.
    pub role: String,
    /// What: `redrive`, `purge`.
    pub action: String,
    /// On what (a topic, a job).
    pub target: String,
    /// How many records.
    pub records: i64,
    /// The details (the selection, the job id).
    pub detail: String,
}

/// Records a write.
pub async fn record(
    pool: &PgPool,
    who: &Operator,
    action: &str,
    target: &str,
    records: u64,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO console_audit (actor, role, action, target, records, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(who.actor())
    .bind(who.role.as_str())
    .bind(action)
    .bind(target)
    .bind(records as i64)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest `limit` entries, newest first.
pub async fn latest(pool: &PgPool, limit: i64) -> Result<Vec<Entry>> {
    Ok(sqlx::query_as(
        "SELECT at, actor, role, action, target, records, detail FROM console_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
