//! Redrive jobs on the streams dead-letter engine ([`anineplus_streams::dlq::replay_with`]).
//!
//! A job is created from a [`Selection`] once the index has read the dead-letter topic up
//! to the end offsets of that moment: the letters then indexed, selected and not sent by an
//! earlier job are its letters, frozen in `console_redrive_letters`. So a job never reads
//! its own output: the records that fail again land after those ends as new dead letters,
//! carrying the job's id in their `redrive-id` header. [`Runner`] sends the letters in
//! batches through the engine (rate-capped, each with the job's redrive id), marking each
//! batch sent in PostgreSQL; jobs still `running` when the console stops resume at start
//! from the first letter not marked (a batch cut short by a crash may be sent twice, which
//! the idempotent pipelines absorb). `returned` counts the dead letters carrying the job's
//! id; `succeeded` is `sent - returned`: sent and not back (so far). Kafka or PostgreSQL
//! away pauses a job (it tries again every 5 s from where it stopped); a letter is in one
//! running job at most: a job selects only letters no job sent and no running job holds.

use std::sync::Arc;
use std::time::Duration;

use anineplus_streams::dlq::{self, ReplayOptions};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, QueryBuilder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::index::{self, Selection};
use crate::{Error, Result};

/// Letters per batch: sent, then marked.
const BATCH: i64 = 200;

/// Pause before a job tries again after a transient failure.
const RETRY: Duration = Duration::from_secs(5);

/// Letters still open: no job sent them, and no running job is about to.
const OPEN: &str = " AND d.redriven_by IS NULL AND NOT EXISTS (SELECT 1 FROM console_redrive_letters r \
    JOIN console_redrive_jobs j ON j.id = r.job_id WHERE j.status = 'running' AND r.sent_at IS NULL \
    AND j.topic = d.topic AND r.partition = d.partition AND r.\"offset\" = d.\"offset\")";

/// One job and its counts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Job {
    /// Its id: the `redrive-id` header of what it sends.
    pub id: Uuid,
    /// The pipeline.
    pub pipeline: String,
    /// Its dead-letter topic.
    pub topic: String,
    /// The selection, as words.
    pub selection: String,
    /// Rate cap.
    pub max_per_second: i32,
    /// `running`, `done`, `failed`.
    pub status: String,
    /// Letters selected.
    pub total: i64,
    /// Letters sent.
    pub sent: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Dead letters that came back with its id.
    pub returned: i64,
}

impl Job {
    /// Sent and not back (so far).
    pub fn succeeded(&self) -> i64 {
        (self.sent - self.returned).max(0)
    }
}

const JOB_COLUMNS: &str = "j.id, j.pipeline, j.topic, j.selection, j.max_per_second, j.status, j.total, j.sent, \
    j.error, j.created_by, j.created_at, j.finished_at, \
    (SELECT count(*) FROM console_dead_letters d WHERE d.redrive_id = j.id) AS returned";

/// One job.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Job> {
    sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM console_redrive_jobs j WHERE j.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no redrive job {id}")))
}

/// The latest jobs, newest first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<Job>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM console_redrive_jobs j ORDER BY j.created_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// What a job of `selection` would send where: `(original topic, letters)` of the open
/// (not yet redriven) selected letters.
pub async fn preview(pool: &PgPool, selection: &Selection) -> Result<Vec<(String, i64)>> {
    let mut q = QueryBuilder::new("SELECT d.original_topic, count(*) FROM console_dead_letters d");
    selection.push_where(&mut q)?;
    q.push(OPEN);
    q.push(" GROUP BY d.original_topic ORDER BY d.original_topic");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// Waits (up to 15 s) until the index has read `topic` up to its current end offsets.
async fn wait_for_index(pool: &PgPool, brokers: &str, topic: &str) -> Result<()> {
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    let ends = tokio::task::spawn_blocking(move || dlq::end_offsets(&b, &t))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    for _ in 0..75 {
        if index::caught_up(pool, topic, &ends).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::Task(format!(
        "the dead-letter index is behind {topic}'s end offsets after 15 s; try again"
    )))
}

/// Creates a job of `selection` on `topic` (see the module header); returns it.
pub async fn create(
    pool: &PgPool,
    brokers: &str,
    topic: &str,
    selection: &Selection,
    max_per_second: u32,
    created_by: &str,
) -> Result<Job> {
    selection.validate()?;
    if max_per_second == 0 {
        return Err(Error::BadRequest(
            "the rate cap must be at least 1 record per second".into(),
        ));
    }
    wait_for_index(pool, brokers, topic).await?;
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO console_redrive_jobs (id, pipeline, topic, selection, max_per_second, status, total, created_by) \
         VALUES ($1, $2, $3, $4, $5, 'running', 0, $6)",
    )
    .bind(id)
    .bind(&selection.pipeline)
    .bind(topic)
    .bind(selection.describe())
    .bind(max_per_second as i32)
    .bind(created_by)
    .execute(&mut *tx)
    .await?;
    let mut q = QueryBuilder::new(
        "INSERT INTO console_redrive_letters (job_id, partition, \"offset\") SELECT ",
    );
    q.push_bind(id)
        .push(", d.partition, d.\"offset\" FROM console_dead_letters d");
    selection.push_where(&mut q)?;
    q.push(" AND d.topic = ").push_bind(topic.to_owned());
    q.push(OPEN);
    let total = q.build().execute(&mut *tx).await?.rows_affected();
    if total == 0 {
        return Err(Error::BadRequest(format!(
            "no open dead letter matches {}",
            selection.describe()
        )));
    }
    sqlx::query("UPDATE console_redrive_jobs SET total = $2 WHERE id = $1")
        .bind(id)
        .bind(total as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    get(pool, id).await
}

/// Runs jobs in the background, one task each.
#[derive(Debug, Clone)]
pub struct Runner {
    pool: PgPool,
    brokers: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Runner {
    /// A runner stopping its jobs (between records) on `stop`.
    pub fn new(pool: PgPool, brokers: &str, stop: CancellationToken) -> Self {
        Runner {
            pool,
            brokers: brokers.to_owned(),
            stop,
            tasks: TaskTracker::new(),
        }
    }

    /// Starts the jobs left `running` by a previous run of the console.
    pub async fn resume(&self) -> Result<usize> {
        let ids: Vec<(Uuid,)> =
            sqlx::query_as("SELECT id FROM console_redrive_jobs WHERE status = 'running'")
                .fetch_all(&self.pool)
                .await?;
        for (id,) in &ids {
            tracing::info!(job = %id, "resuming redrive job");
            self.start(*id);
        }
        Ok(ids.len())
    }

    /// Runs job `id` in the background.
    pub fn start(&self, id: Uuid) {
        let runner = self.clone();
        self.tasks.spawn(async move {
            let mut outcome = runner.run(id).await;
            // Kafka or PostgreSQL away: the job waits and goes on where it stopped (the
            // letters not marked sent), as after a restart; only its own faults fail it.
            while let Err(e) = &outcome
                && e.is_transient()
            {
                tracing::warn!(job = %id, error = %e, "redrive job: retrying in 5 s");
                tokio::select! {
                    () = runner.stop.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
                outcome = runner.run(id).await;
            }
            let (status, error) = match &outcome {
                Ok(true) => ("done", None),
                Ok(false) => return, // stopped: resumes at the next start
                Err(e) => ("failed", Some(e.to_string())),
            };
            if let Some(e) = &error {
                tracing::warn!(job = %id, error = %e, "redrive job failed");
            }
            let updated = sqlx::query(
                "UPDATE console_redrive_jobs SET status = $2, error = $3, finished_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .execute(&runner.pool)
            .await;
            if let Err(e) = updated {
                tracing::warn!(job = %id, error = %e, "redrive job: status not stored");
            }
        });
    }

    /// Waits for the jobs' tasks after `stop`.
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Sends the job's letters not yet sent; `Ok(true)` once all are, `Ok(false)` when
    /// stopped first.
    async fn run(&self, id: Uuid) -> Result<bool> {
        let job = get(&self.pool, id).await?;
        let options = ReplayOptions {
            redrive_id: Some(id.to_string()),
            max_per_second: Some(job.max_per_second as u32),
            stop: Some(self.stop.clone()),
        };
        loop {
            if self.stop.is_cancelled() {
                return Ok(false);
            }
            let positions: Vec<(i32, i64)> = sqlx::query_as(
                "SELECT partition, \"offset\" FROM console_redrive_letters WHERE job_id = $1 AND sent_at IS NULL \
                 ORDER BY partition, \"offset\" LIMIT $2",
            )
            .bind(id)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            if positions.is_empty() {
                return Ok(true);
            }
            let (brokers, topic, wanted) =
                (self.brokers.clone(), job.topic.clone(), positions.clone());
            let letters =
                tokio::task::spawn_blocking(move || dlq::fetch(&brokers, &topic, &wanted))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))??;
            let report = dlq::replay_with(&self.brokers, &letters, &options, |_, _| {}).await?;
            let sent: Vec<(i32, i64)> = letters
                .iter()
                .take(report.sent as usize)
                .map(|l| (l.raw.partition, l.raw.offset))
                .collect();
            // Letters gone from the topic (purged meanwhile) count as handled, not sent.
            let stopped = (report.sent as usize) < letters.len();
            let handled: Vec<(i32, i64)> = if stopped { sent.clone() } else { positions };
            let mut tx = self.pool.begin().await?;
            for (p, o) in &handled {
                sqlx::query(
                    "UPDATE console_redrive_letters SET sent_at = now() WHERE job_id = $1 AND partition = $2 AND \"offset\" = $3",
                )
                .bind(id)
                .bind(p)
                .bind(o)
                .execute(&mut *tx)
                .await?;
            }
            for (p, o) in &sent {
                sqlx::query(
                    "UPDATE console_dead_letters SET redriven_by = $1 WHERE topic = $2 AND partition = $3 AND \"offset\" = $4",
                )
                .bind(id)
                .bind(&job.topic)
                .bind(p)
                .bind(o)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE console_redrive_jobs SET sent = sent + $2 WHERE id = $1")
                .bind(id)
                .bind(sent.len() as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            if stopped {
                return Ok(false);
            }
        }
    }
}

/// Moves the engine's replay marks of `topic` over every letter a job sent, in whatever
/// order the jobs ran ([`dlq::mark_replayed_at`]).
async fn mark_redriven(pool: &PgPool, brokers: &str, topic: &str) -> Result<()> {
    let positions: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, \"offset\" FROM console_dead_letters WHERE topic = $1 AND redriven_by IS NOT NULL",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?;
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || dlq::mark_replayed_at(&b, &t, &positions))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    Ok(())
}

/// Purges what is resolved in `topic` through the engine ([`dlq::purge`]: below the replay
/// marks only, moved first over every letter a job sent), then drops those rows from the
/// index; returns the engine's count.
pub async fn purge_resolved(pool: &PgPool, brokers: &str, topic: &str) -> Result<dlq::Purge> {
    mark_redriven(pool, brokers, topic).await?;
    let done = dlq::purge(brokers, topic).await?;
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    let ends = tokio::task::spawn_blocking(move || dlq::end_offsets(&b, &t))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    index::forget_below(pool, topic, &ends).await?;
    Ok(done)
}

/// What [`purge_resolved`] would delete now (the marks moved over what the jobs sent).
pub async fn purge_plan(pool: &PgPool, brokers: &str, topic: &str) -> Result<dlq::Purge> {
    mark_redriven(pool, brokers, topic).await?;
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    Ok(
        tokio::task::spawn_blocking(move || dlq::purge_dry_run(&b, &t))
            .await
            .map_err(|e| Error::Task(e.to_string()))??,
    )
}

/// Shared handle.
pub type SharedRunner = Arc<Runner>;
