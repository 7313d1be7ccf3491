//! Outbox rows: appended in the caller's transaction, read and marked by the relay.

use anineplus_schemas::events::EventData;
use anineplus_schemas::{Envelope, TopicValue};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Result;

/// The `source` of every envelope this process writes.
pub const SOURCE: &str = "anineplus-api";

/// An event ready for the outbox: its row's fields, the envelope already serialised.
#[derive(Debug)]
pub struct Pending {
    topic: &'static str,
    aggregate_id: String,
    version: i64,
    event_type: String,
    correlation_id: String,
    payload: serde_json::Value,
}

impl Pending {
    /// The event `data` of `aggregate_id` at `version`, in an envelope of its own id and
    /// timestamp.
    pub fn new<D>(aggregate_id: Uuid, version: i64, correlation_id: &str, data: D) -> Result<Self>
    where
        D: EventData,
        Envelope<D>: TopicValue,
    {
        let envelope = Envelope {
            event_id: Uuid::new_v4().to_string(),
            event_type: data.event_type().to_owned(),
            timestamp: chrono::Utc::now().timestamp_millis(),
            source: SOURCE.to_owned(),
            version: 1,
            correlation_id: Some(correlation_id.to_owned()),
            causation_id: None,
            aggregate_id: aggregate_id.to_string(),
            aggregate_version: version,
            data,
        };
        let payload = serde_json::to_value(&envelope)
            .map_err(|e| crate::Error::Internal(format!("outbox payload: {e}")))?;
        Ok(Self {
            topic: <Envelope<D> as TopicValue>::TOPIC.name(),
            aggregate_id: envelope.aggregate_id,
            version,
            event_type: envelope.event_type,
            correlation_id: correlation_id.to_owned(),
            payload,
        })
    }

    /// For a write and its event in ONE statement (no `BEGIN`/`COMMIT` round trips): the
    /// data-modifying CTE `appended`, which appends this event once per row of `from` (a
    /// CTE of the same statement that writes at most one row: no row written, no event),
    /// with its parameters numbered from `$first`. The statement's final `SELECT` must call
    /// [`Pending::notify`] and read `appended` (e.g. `SELECT ..., <notify> FROM c, appended`);
    /// bind the parameters with [`Pending::bind`] after the statement's own.
    pub fn cte(first: usize, from: &str) -> String {
        let p = |i: usize| first + i;
        format!(
            "appended AS (INSERT INTO outbox (topic, aggregate_id, aggregate_version, event_type, \
             correlation_id, payload) SELECT ${}, ${}, ${}, ${}, ${}, ${} FROM {from} RETURNING id)",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        )
    }

    /// The notification of a [`Pending::cte`] numbered from `$first` (delivered at commit).
    pub fn notify(first: usize) -> String {
        format!("pg_notify(${}, '')", first + 6)
    }

    /// Binds the parameters of [`Pending::cte`] and [`Pending::notify`].
    pub fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.topic)
            .bind(self.aggregate_id)
            .bind(self.version)
            .bind(self.event_type)
            .bind(self.correlation_id)
            .bind(self.payload)
            .bind(super::CHANNEL)
    }
}

/// Appends the event `data` of `aggregate_id` at `version` to the outbox, inside the
/// caller's transaction, and notifies the relay (delivered at commit).
pub async fn append<D>(
    tx: &mut PgConnection,
    aggregate_id: Uuid,
    version: i64,
    correlation_id: &str,
    data: D,
) -> Result<()>
where
    D: EventData,
    Envelope<D>: TopicValue,
{
    let event = Pending::new(aggregate_id, version, correlation_id, data)?;
    // One round trip: the row and the notification (delivered at commit).
    let _: (bool,) = event
        .bind(sqlx::query_as(
            "WITH appended AS (INSERT INTO outbox (topic, aggregate_id, aggregate_version, \
             event_type, correlation_id, payload) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id) \
             SELECT pg_notify($7, '') IS NULL FROM appended",
        ))
        .fetch_one(&mut *tx)
        .await?;
    Ok(())
}

/// An unpublished outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEvent {
    /// Row id: the publication order.
    pub id: i64,
    /// Topic name (without prefix).
    pub topic: String,
    /// Record key.
    pub aggregate_id: String,
    /// `event-type` header.
    pub event_type: String,
    /// `correlation-id` header.
    pub correlation_id: Option<String>,
    /// The envelope as JSON.
    pub payload: serde_json::Value,
}

/// The oldest unpublished rows, at most `limit`, in id order.
pub async fn pending(pool: &PgPool, limit: i64) -> Result<Vec<OutboxEvent>> {
    Ok(sqlx::query_as(
        "SELECT id, topic, aggregate_id, event_type, correlation_id, payload FROM outbox \
         WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Marks rows published.
pub async fn mark_published(pool: &PgPool, ids: &[i64]) -> Result<()> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// Parks a row that can never be published, with why: it leaves the pending rows (the
/// rows after it go on) and stays, unpruned, for an operator.
pub async fn park(pool: &PgPool, id: i64, reason: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET failed_at = now(), failure = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes rows published more than `retention_secs` ago; returns how many.
pub async fn prune(pool: &PgPool, retention_secs: u64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL \
         AND published_at < now() - make_interval(secs => $1)",
    )
    .bind(retention_secs as f64)
    .execute(pool)
    .await?
    .rows_affected())
}

/// The outbox's state at a glance: see [`backlog`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Rows waiting to be published (parked ones excluded).
    pub pending: i64,
    /// Age of the oldest pending row, seconds (0 when none).
    pub oldest_age_secs: f64,
    /// Parked rows: they can never be published as they are.
    pub parked: i64,
}

/// Pending rows, the age of the oldest, and parked rows.
pub async fn backlog(pool: &PgPool) -> Result<Backlog> {
    let (pending, age, parked): (i64, Option<f64>, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE failed_at IS NULL), \
         EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL))::float8, \
         count(*) FILTER (WHERE failed_at IS NOT NULL) \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        pending,
        oldest_age_secs: age.unwrap_or(0.0).max(0.0),
        parked,
    })
}
