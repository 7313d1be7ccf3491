//! The index of the dead letters in PostgreSQL, fed as they arrive by [`Indexer::run`]: a
//! consumer of every watched pipeline's `<pipeline>.dlq` topic, assigned (no group) from the
//! positions stored with the rows, so each dead letter is indexed once whatever the
//! restarts. Pages group and filter it ([`groups`], [`letters`]) and never scan a topic.

use std::collections::HashMap;
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_streams::dead_letter::header;
use anineplus_streams::dlq::{self, DeadLetterRecord};
use anineplus_streams::record::RawRecord;
use chrono::{DateTime, NaiveDateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{PgPool, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Error, Result};

/// Which dead letters of a pipeline a page or a job is about; empty fields match all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Selection {
    /// The pipeline.
    pub pipeline: String,
    /// One error fingerprint (a group).
    pub fingerprint: String,
    /// `retryable`, `permanent`, `unavailable`.
    pub class: String,
    /// The exact record key.
    pub key: String,
    /// The exact original topic (with the prefix).
    pub original_topic: String,
    /// Failed at or after (`YYYY-MM-DDTHH:MM`, UTC).
    pub since: String,
    /// Failed before (`YYYY-MM-DDTHH:MM`, UTC).
    pub until: String,
}

fn parse_time(name: &str, text: &str) -> Result<Option<DateTime<Utc>>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            Error::BadRequest(format!(
                "{name} {text:?} is not a time like 2026-12-07T01:30 (UTC)"
            ))
        })?;
    Ok(Some(parsed.and_utc()))
}

impl Selection {
    /// Checks the fields; a bad class or time is the operator's to fix.
    pub fn validate(&self) -> Result<()> {
        if !["", "retryable", "permanent", "unavailable"].contains(&self.class.as_str()) {
            return Err(Error::BadRequest(format!(
                "class {:?} is not one of retryable, permanent, unavailable",
                self.class
            )));
        }
        parse_time("since", &self.since)?;
        parse_time("until", &self.until)?;
        Ok(())
    }

    /// The selection as a URL query.
    pub fn query(&self) -> String {
        let pairs = [
            ("pipeline", &self.pipeline),
            ("fingerprint", &self.fingerprint),
            ("class", &self.class),
            ("key", &self.key),
            ("original_topic", &self.original_topic),
            ("since", &self.since),
            ("until", &self.until),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", crate::html::query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Human words for the selection.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("pipeline {}", self.pipeline)];
        for (name, v) in [
            ("group", &self.fingerprint),
            ("class", &self.class),
            ("key", &self.key),
            ("original topic", &self.original_topic),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                parts.push(format!("{name} {v:?}"));
            }
        }
        parts.join(", ")
    }

    /// `WHERE …` of the index rows selected (`d` is `console_dead_letters`).
    pub fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>) -> Result<()> {
        self.validate()?;
        q.push(" WHERE d.pipeline = ")
            .push_bind(self.pipeline.clone());
        for (column, value) in [
            ("d.fingerprint", &self.fingerprint),
            ("d.error_class", &self.class),
            ("d.record_key", &self.key),
            ("d.original_topic", &self.original_topic),
        ] {
            if !value.is_empty() {
                q.push(format!(" AND {column} = ")).push_bind(value.clone());
            }
        }
        if let Some(t) = parse_time("since", &self.since)? {
            q.push(" AND d.failed_at >= ").push_bind(t);
        }
        if let Some(t) = parse_time("until", &self.until)? {
            q.push(" AND d.failed_at < ").push_bind(t);
        }
        Ok(())
    }
}

/// One group of dead letters: one fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Group {
    /// `class: normalised message`.
    pub fingerprint: String,
    /// The error class.
    pub error_class: String,
    /// One of its messages, as it was.
    pub sample: String,
    /// Dead letters in the group.
    pub count: i64,
    /// Of which no redrive job has sent yet.
    pub open: i64,
    /// Oldest failure.
    pub oldest: Option<DateTime<Utc>>,
    /// Newest failure.
    pub newest: Option<DateTime<Utc>>,
}

/// The groups of the selected dead letters, largest first.
pub async fn groups(pool: &PgPool, selection: &Selection) -> Result<Vec<Group>> {
    let mut q = QueryBuilder::new(
        "SELECT d.fingerprint, min(d.error_class) AS error_class, min(d.error_message) AS sample, \
         count(*) AS count, count(*) FILTER (WHERE d.redriven_by IS NULL) AS open, \
         min(d.failed_at) AS oldest, max(d.failed_at) AS newest FROM console_dead_letters d",
    );
    selection.push_where(&mut q)?;
    q.push(" GROUP BY d.fingerprint ORDER BY count(*) DESC, d.fingerprint LIMIT 500");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// One indexed dead letter.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Letter {
    /// Its dead-letter topic.
    pub topic: String,
    /// Partition there.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
    /// Record key.
    pub record_key: String,
    /// Error class.
    pub error_class: String,
    /// Error message.
    pub error_message: String,
    /// Original topic.
    pub original_topic: String,
    /// Attempts.
    pub attempts: Option<i32>,
    /// Last failure.
    pub failed_at: Option<DateTime<Utc>>,
    /// The redrive job that sent the record it came back from, if any.
    pub redrive_id: Option<Uuid>,
    /// The redrive job that sent it, if any.
    pub redriven_by: Option<Uuid>,
}

const LETTER_COLUMNS: &str = "d.topic, d.partition, d.\"offset\", d.record_key, d.error_class, \
    d.error_message, d.original_topic, d.attempts, d.failed_at, d.redrive_id, d.redriven_by";

/// The first `limit` selected dead letters, oldest offset first.
pub async fn letters(pool: &PgPool, selection: &Selection, limit: i64) -> Result<Vec<Letter>> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {LETTER_COLUMNS} FROM console_dead_letters d"
    ));
    selection.push_where(&mut q)?;
    q.push(" ORDER BY d.partition, d.\"offset\" LIMIT ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// The dead letters that came back carrying redrive id `job`.
pub async fn returned(pool: &PgPool, job: Uuid, limit: i64) -> Result<Vec<Letter>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {LETTER_COLUMNS} FROM console_dead_letters d WHERE d.redrive_id = $1 \
         ORDER BY d.partition, d.\"offset\" LIMIT $2"
    ))
    .bind(job)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Whether the index has read `topic` up to `ends` (`(partition, low, high)`).
pub async fn caught_up(pool: &PgPool, topic: &str, ends: &[(i32, i64, i64)]) -> Result<bool> {
    let positions: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
        "SELECT partition, next_offset FROM console_index_positions WHERE topic = $1",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(ends
        .iter()
        .all(|(p, low, high)| high <= low || positions.get(p).is_some_and(|next| next >= high)))
}

/// Drops the index rows of `topic` below each partition's start (`(partition, low, _)`):
/// what a purge deleted. Returns how many.
pub async fn forget_below(pool: &PgPool, topic: &str, ends: &[(i32, i64, i64)]) -> Result<u64> {
    let mut n = 0;
    for (p, low, _) in ends {
        n += sqlx::query("DELETE FROM console_dead_letters WHERE topic = $1 AND partition = $2 AND \"offset\" < $3")
            .bind(topic)
            .bind(p)
            .bind(low)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(n)
}

/// An index row of `letter`.
struct Row {
    pipeline: String,
    letter: DeadLetterRecord,
}

async fn store(pool: &PgPool, rows: &[Row]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let mut q = QueryBuilder::new(
        "INSERT INTO console_dead_letters (topic, partition, \"offset\", pipeline, record_key, \
         error_class, error_message, fingerprint, original_topic, attempts, failed_at, redrive_id, value_bytes) ",
    );
    q.push_values(rows, |mut b, row| {
        let l = &row.letter;
        let number = |name: &str| l.raw.header(name).and_then(|v| v.parse::<i64>().ok());
        b.push_bind(l.raw.topic.clone())
            .push_bind(l.raw.partition)
            .push_bind(l.raw.offset)
            .push_bind(row.pipeline.clone())
            .push_bind(l.key())
            .push_bind(l.class().to_owned())
            .push_bind(l.get(header::ERROR_MESSAGE).to_owned())
            .push_bind(l.fingerprint())
            .push_bind(l.original_topic().to_owned())
            .push_bind(number(header::ATTEMPTS).map(|n| n as i32))
            .push_bind(
                l.last_failure_ms()
                    .and_then(DateTime::from_timestamp_millis),
            )
            .push_bind(l.redrive_id().and_then(|id| Uuid::parse_str(id).ok()))
            .push_bind(l.raw.value().len() as i32);
    });
    q.push(" ON CONFLICT DO NOTHING");
    q.build().execute(&mut *tx).await?;
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for row in rows {
        let e = next
            .entry((row.letter.raw.topic.clone(), row.letter.raw.partition))
            .or_default();
        *e = (*e).max(row.letter.raw.offset + 1);
    }
    for ((topic, partition), offset) in next {
        sqlx::query(
            "INSERT INTO console_index_positions (topic, partition, next_offset) VALUES ($1, $2, $3) \
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = GREATEST(console_index_positions.next_offset, EXCLUDED.next_offset)",
        )
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The consumer feeding the index.
#[derive(Debug, Clone)]
pub struct Indexer {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// `(pipeline, dead-letter topic)` of every watched pipeline.
    pub topics: Vec<(String, String)>,
    /// The console's database.
    pub pool: PgPool,
}

impl Indexer {
    /// Indexes dead letters as they arrive until `stop`; a failure (Kafka or PostgreSQL
    /// away) is logged and retried from the stored positions.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.run_once(&stop).await {
                tracing::warn!(error = %e, "dead-letter index: retrying in 2 s");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }

    async fn run_once(&self, stop: &CancellationToken) -> Result<()> {
        let mut config = kafka::consumer_config(&self.brokers, "anineplus-console-index");
        config
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(config.create()?);
        let pipeline_of: HashMap<String, String> = self
            .topics
            .iter()
            .map(|(p, t)| (t.clone(), p.clone()))
            .collect();
        let mut assigned: Vec<(String, i32)> = Vec::new();
        let mut last_check = None::<std::time::Instant>;
        while !stop.is_cancelled() {
            if last_check.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                last_check = Some(std::time::Instant::now());
                self.assign(&consumer, &mut assigned).await?;
            }
            if assigned.is_empty() {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let c = consumer.clone();
            let batch = tokio::task::spawn_blocking(move || poll_batch(&c))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let rows: Vec<Row> = batch
                .into_iter()
                .map(|raw| Row {
                    pipeline: pipeline_of.get(&raw.topic).cloned().unwrap_or_default(),
                    letter: DeadLetterRecord { raw },
                })
                .collect();
            store(&self.pool, &rows).await?;
        }
        Ok(())
    }

    /// Assigns the partitions of the dead-letter topics that exist now, each from its
    /// stored position (new partitions from the start).
    async fn assign(
        &self,
        consumer: &std::sync::Arc<BaseConsumer>,
        assigned: &mut Vec<(String, i32)>,
    ) -> Result<()> {
        let mut found = Vec::new();
        for (_, topic) in &self.topics {
            let (c, t) = (consumer.clone(), topic.clone());
            let partitions = tokio::task::spawn_blocking(move || -> Result<Vec<i32>> {
                let metadata = c.fetch_metadata(Some(&t), Duration::from_secs(5))?;
                Ok(metadata
                    .topics()
                    .iter()
                    .filter(|m| m.error().is_none())
                    .flat_map(|m| m.partitions().iter().map(|p| p.id()))
                    .collect())
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            found.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
        }
        found.sort();
        if found == *assigned {
            return Ok(());
        }
        let positions: HashMap<(String, i32), i64> = sqlx::query_as::<_, (String, i32, i64)>(
            "SELECT topic, partition, next_offset FROM console_index_positions",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(t, p, o)| ((t, p), o))
        .collect();
        let mut list = TopicPartitionList::new();
        for (topic, p) in &found {
            let offset = positions
                .get(&(topic.clone(), *p))
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            list.add_partition_offset(topic, *p, offset)?;
        }
        consumer.assign(&list)?;
        *assigned = found;
        Ok(())
    }
}

/// Up to 500 records, or what arrives within 300 ms.
fn poll_batch(consumer: &BaseConsumer) -> Result<Vec<RawRecord>> {
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    let mut out = Vec::new();
    while out.len() < 500 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            Some(Ok(m)) => out.push(RawRecord::from_message(&m)),
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    Ok(out)
}

/// Reads one dead letter from its topic (the index keeps no payloads), or `NotFound`.
pub async fn read_one(
    brokers: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<DeadLetterRecord> {
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    let mut found = tokio::task::spawn_blocking(move || dlq::fetch(&b, &t, &[(partition, offset)]))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    found.pop().ok_or_else(|| {
        Error::NotFound(format!(
            "no dead letter at {topic}/{partition}/{offset} (purged?)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_check_their_fields_and_round_trip_as_a_query() {
        let s = Selection {
            pipeline: "indexer".into(),
            class: "permanent".into(),
            since: "2026-12-07T01:30".into(),
            ..Default::default()
        };
        assert!(s.validate().is_ok());
        assert_eq!(
            s.query(),
            "pipeline=indexer&class=permanent&since=2026-12-07T01%3A30"
        );
        let bad = Selection {
            class: "fatal".into(),
            ..s.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("not one of")
        );
        let bad = Selection {
            until: "yesterday".into(),
            ..s
        };
        assert!(bad.validate().unwrap_err().to_string().contains("until"));
    }
}
