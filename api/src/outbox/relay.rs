//! The outbox relay: publishes unpublished outbox rows to Kafka, in id order, and marks
//! them published.
//!
//! - **One publisher at a time.** Several API instances may run; each relay tries to take
//!   a session advisory lock (`pg_try_advisory_lock`) on a connection of its own. Only the
//!   holder publishes, so rows leave in id order and per-aggregate order holds (the domain
//!   appends an aggregate's rows in commit order). The others retry at the poll interval and
//!   take over when the holder's session ends. The holder checks, on its lock session,
//!   that it still holds the lock before **every** batch (full batches of a catch-up
//!   included) and stops at once when it does not: after a lost session at most the batch
//!   already handed to Kafka completes (records cannot be taken back; consumers are
//!   idempotent on `aggregateVersion`), and no new batch starts until the lock is taken again.
//! - **Low latency.** It waits on `LISTEN/NOTIFY` (the domain notifies in each write's
//!   transaction), with a slow fallback poll. A task reads the notifications as they
//!   arrive and folds them into one pending wake-up, so a burst never becomes a queue of
//!   empty passes.
//! - **Bounded table.** Published rows older than the retention are pruned on a timer,
//!   also while full batches keep coming.
//! - **Never loses, never blocks writers.** A row is marked only after the idempotent
//!   producer confirmed its delivery; Kafka being down only delays publication: the relay
//!   retries with exponential backoff and catches up. A retried batch may re-send records
//!   whose acknowledgement was lost: delivery is at least once, and consumers are idempotent
//!   on `aggregateVersion`.
//! - **One bad row never blocks the rest.** A row that can never be published as it is
//!   (its payload does not fit its topic's schema, a topic the outbox does not carry, a
//!   record Kafka refuses for its size or form) is parked: `failed_at` and `failure` set,
//!   an error logged with the row's id, `api_outbox_relay_parked_total` counted and
//!   `api_outbox_parked` showing it; the rows after it are published. Failures that may
//!   pass (registry or Kafka unreachable) stop the batch and are retried, never parked.
//! - **Drains on shutdown** for at most the configured time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_connectors::kafka;
use anineplus_schemas::{Codec, EncodeError, Topic};
use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::{self, OutboxEvent};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// Advisory lock key of the relay's leadership ("outbox" in ASCII), per database.
pub const LEADER_LOCK: i64 = 0x6f7574626f78;

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Topic name prefix.
    pub topic_prefix: String,
    /// Rows per batch.
    pub batch: i64,
    /// Fallback poll interval (and leadership retry interval).
    pub poll: Duration,
    /// Retention of published rows, seconds.
    pub retention_secs: u64,
    /// How often published rows are pruned.
    pub prune_every: Duration,
    /// Longest drain at shutdown.
    pub drain: Duration,
}

/// Publishes the outbox to Kafka.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    producer: kafka::Producer,
    codec: Codec,
    settings: RelaySettings,
    metrics: Metrics,
}

impl OutboxRelay {
    /// A relay over `pool`, publishing with `producer`.
    pub fn new(
        pool: PgPool,
        producer: kafka::Producer,
        codec: Codec,
        settings: RelaySettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            pool,
            producer,
            codec,
            settings,
            metrics,
        }
    }

    /// Runs until `shutdown`, then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.backoff();
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => backoff = self.backoff(),
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, ?delay, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Takes the leadership when free and publishes while holding it; returns when
    /// shutdown is requested, when the leadership could not be taken (after a pause), or
    /// (as an error) when it was lost.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<()> {
        // The lock session is a connection of its own, outside the pool: it lives exactly
        // as long as this leadership, and closing it releases the lock.
        let mut lock = self.pool.acquire().await?.detach();
        let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut lock)
            .await?;
        if !leader {
            let _ = lock.close().await;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
            return Ok(());
        }
        tracing::info!("outbox relay is the leader");
        let result = self.publish_while_leader(&mut lock, shutdown).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LEADER_LOCK)
            .execute(&mut lock)
            .await;
        let _ = lock.close().await;
        result
    }

    /// Fails unless the session `lock` still holds the leader lock. Checked before every
    /// batch, full or not: once the session is gone (terminated, network cut, server
    /// restart) another relay may lead, so no new batch may start. A session-level
    /// advisory lock is held until its session ends or unlocks it, and only [`Self::lead`]
    /// unlocks, so a session that answers still holds it: one round trip, instead of a
    /// read of `pg_locks` (which takes every lock-manager partition of the server, on
    /// every batch, from every writer's way).
    async fn check_leader(&self, lock: &mut PgConnection) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(lock)
            .await
            .map(drop)
            .map_err(|e| Error::Internal(format!("the outbox relay lost its lock session: {e}")))
    }

    async fn publish_while_leader(
        &self,
        lock: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(super::CHANNEL).await?;
        let wake = Arc::new(Notify::new());
        let listening = CancellationToken::new();
        let _stop_listening = listening.clone().drop_guard();
        tokio::spawn(listen(listener, wake.clone(), listening));
        let mut backoff = self.backoff();
        let mut last_prune = Instant::now();
        loop {
            self.check_leader(lock).await?;
            // Shutdown interrupts a batch stuck on an unreachable broker: nothing of it was
            // marked, so the drain (or the next leader) sends it again.
            let published = tokio::select! {
                result = self.publish_pending() => result,
                _ = shutdown.cancelled() => Ok(false),
            };
            let more = match published {
                Ok(full) => {
                    backoff = self.backoff();
                    full
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, ?delay, "outbox publish failed; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    false
                }
            };
            if shutdown.is_cancelled() {
                self.drain(lock).await;
                return Ok(());
            }
            // Pruning is due by time, backlog or not: a long catch-up must not let the
            // published rows grow without bound.
            if last_prune.elapsed() >= self.settings.prune_every {
                last_prune = Instant::now();
                match store::prune(&self.pool, self.settings.retention_secs).await {
                    Ok(n) if n > 0 => tracing::debug!(rows = n, "pruned published outbox rows"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Publishes what is left, for at most the drain time, while still the leader.
    async fn drain(&self, lock: &mut PgConnection) {
        let deadline = Instant::now() + self.settings.drain;
        while Instant::now() < deadline {
            if let Err(e) = self.check_leader(lock).await {
                tracing::warn!(error = %e, "outbox drain stopped");
                return;
            }
            match tokio::time::timeout_at(deadline.into(), self.publish_pending()).await {
                Ok(Ok(true)) => continue,
                Ok(Ok(false)) => {
                    tracing::info!("outbox relay drained");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "outbox drain failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => break,
            }
        }
        tracing::warn!(
            "outbox relay stopped before the outbox was empty; the next start publishes the rest"
        );
    }

    /// Publishes one batch; returns whether the batch was full (more may wait). The
    /// caller checks the leadership first. A row that can never be published is parked
    /// (see [`Unsent::Unpublishable`]) and the rows after it go on; a failure that may pass
    /// (registry or Kafka unreachable) ends the batch there, to be retried.
    async fn publish_pending(&self) -> Result<bool> {
        let rows = store::pending(&self.pool, self.settings.batch).await?;
        self.metrics.relay_reads.inc();
        if rows.is_empty() {
            return Ok(false);
        }
        let full = rows.len() as i64 == self.settings.batch;
        let mut deliveries = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for row in &rows {
            match self.send(row).await {
                Ok(delivery) => deliveries.push((row, delivery)),
                Err(Unsent::Unpublishable(reason)) => self.park(row, &reason).await?,
                Err(Unsent::Later(e)) => {
                    first_error = Some(e);
                    break;
                }
            }
        }
        // Mark the prefix that Kafka confirmed; stop at the first failure that may pass,
        // so nothing after it is marked ahead of it.
        let mut delivered = Vec::with_capacity(deliveries.len());
        for (row, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) if first_error.is_none() => delivered.push(row.id),
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) if first_error.is_none() && kafka::refuses_record(&e) => {
                    self.park(row, &format!("kafka refused the record: {e}"))
                        .await?;
                }
                Ok(Err((e, _))) => {
                    first_error.get_or_insert(Error::Kafka(e));
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Internal("delivery cancelled".into()));
                }
            }
        }
        if !delivered.is_empty() {
            store::mark_published(&self.pool, &delivered).await?;
            self.metrics.relay_published.inc_by(delivered.len() as u64);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(full),
        }
    }

    /// Parks a row that can never be published, with why, and says so loudly.
    async fn park(&self, row: &OutboxEvent, reason: &str) -> Result<()> {
        tracing::error!(
            outbox_id = row.id, topic = %row.topic, aggregate_id = %row.aggregate_id,
            event_type = %row.event_type, reason,
            "outbox row can never be published as it is: parked (failed_at set); \
             the rows after it go on"
        );
        store::park(&self.pool, row.id, reason).await?;
        self.metrics.relay_parked.inc();
        Ok(())
    }

    async fn send(&self, row: &OutboxEvent) -> std::result::Result<kafka::Delivering, Unsent> {
        let Some(topic) = Topic::from_name(&row.topic).filter(|t| t.is_aggregate()) else {
            return Err(Unsent::Unpublishable(format!(
                "topic {:?} is not one the outbox carries",
                row.topic
            )));
        };
        let value = match self.codec.encode_json(topic, &row.payload).await {
            Ok(bytes) => bytes,
            Err(e @ EncodeError::Value { .. }) => {
                return Err(Unsent::Unpublishable(format!(
                    "payload does not fit the {} schema: {e}",
                    topic.name()
                )));
            }
            Err(e) => return Err(Unsent::Later(e.into())),
        };
        let topic_name = format!("{}{}", self.settings.topic_prefix, topic.name());
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "event-type",
            value: Some(row.event_type.as_bytes()),
        });
        if let Some(cid) = &row.correlation_id {
            headers = headers.insert(Header {
                key: "correlation-id",
                value: Some(cid.as_bytes()),
            });
        }
        let record = FutureRecord::to(&topic_name)
            .key(row.aggregate_id.as_bytes())
            .payload(&value)
            .headers(headers);
        match self.producer.send_result(record) {
            Ok(delivery) => Ok(delivery),
            Err((e, _)) if kafka::refuses_record(&e) => Err(Unsent::Unpublishable(format!(
                "kafka refused the record: {e}"
            ))),
            Err((e, _)) => Err(Unsent::Later(Error::Kafka(e))),
        }
    }
}

/// Why a row was not handed to Kafka.
enum Unsent {
    /// It never can be as it is (a payload that does not fit its topic's schema, a topic
    /// the outbox does not carry, a record Kafka refuses): parked, the rows after it go on.
    Unpublishable(String),
    /// It may be later (the registry or Kafka unreachable, the producer's queue full): the
    /// batch stops here and is retried with backoff.
    Later(Error),
}

/// Reads the relay's notifications as they arrive and folds them into `wake`, which keeps
/// at most one pending wake-up: however many writes commit during a long batch, they cost
/// one pass afterwards, and nothing queues up in the connection or in the server's
/// notification queue. A lost connection is re-established by the listener; the relay's
/// poll covers what was missed meanwhile.
async fn listen(mut listener: PgListener, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            received = listener.recv() => match received {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox notifications interrupted; reconnecting");
                    wake.notify_one();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    }
}

/// The aggregate topics the API writes: their schemas are registered at start.
pub const TOPICS: [Topic; 6] = [
    Topic::User,
    Topic::Organization,
    Topic::Anime,
    Topic::Episode,
    Topic::Comment,
    Topic::Subscription,
];
