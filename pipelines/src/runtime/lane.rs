//! One consumer of a pipeline: reader and writer tasks joined by a one-batch channel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_connectors::{Outcome, kafka};
use anineplus_schemas::{Codec, wire};
use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use super::context::LaneContext;
use crate::Result;
use crate::dead_letter::{self, DeadLetter, header};
use crate::failure::{ErrorClass, Failure};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::record::RawRecord;
use crate::sink::Sink;
use crate::topology::Topology;

/// A consumed record with what the topology made of it.
struct Pending<T> {
    raw: RawRecord,
    items: std::result::Result<Vec<T>, Failure>,
}

pub(super) struct Lane<S: Sink> {
    level: usize,
    config: Arc<PipelineConfig>,
    topology: Arc<Topology<S>>,
    codec: Codec,
    metrics: Arc<Metrics>,
    consumer: Arc<StreamConsumer<LaneContext>>,
    tracker: Arc<Mutex<OffsetTracker>>,
    producer: FutureProducer,
}

impl<S: Sink> Lane<S> {
    /// Creates the lane's consumer and subscribes it.
    pub(super) fn start(
        level: usize,
        config: Arc<PipelineConfig>,
        topology: Arc<Topology<S>>,
        codec: Codec,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
        let (group, topics) = if level == 0 {
            (config.group.clone(), topology.topics())
        } else {
            (
                format!("{}.retry.{level}", config.group),
                vec![config.topics().retry(level)],
            )
        };
        let mut client = kafka::consumer_config(&config.brokers, &group);
        client.set("statistics.interval.ms", "5000");
        if level > 0 {
            // A retry lane waits up to its delay before a record; stay in the group meanwhile.
            let wait = config.retry.delays[level - 1] + Duration::from_secs(300);
            client.set("max.poll.interval.ms", wait.as_millis().to_string());
        }
        let consumer: StreamConsumer<LaneContext> = client.create_with_context(LaneContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
        })?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let producer: FutureProducer = kafka::producer_config(&config.brokers).create()?;
        Ok(Lane {
            level,
            config,
            topology,
            codec,
            metrics,
            consumer: Arc::new(consumer),
            tracker,
            producer,
        })
    }

    /// Runs until `shutdown`, drains, commits.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let lane = Arc::new(self);
        let (tx, mut rx) = mpsc::channel::<Vec<Pending<S::Item>>>(1);
        let writer = {
            let lane = lane.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                while let Some(batch) = rx.recv().await {
                    lane.settle(batch, &shutdown).await;
                }
            })
        };
        lane.read(tx, &shutdown).await;
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "lane writer panicked");
        }
        if let Err(e) = lane.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, level = lane.level, "final commit (nothing stored?)");
        }
        tracing::debug!(level = lane.level, "lane stopped");
    }

    async fn read(&self, tx: mpsc::Sender<Vec<Pending<S::Item>>>, shutdown: &CancellationToken) {
        let limits = self.config.batch;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        // One timer and one cancellation future for the whole loop: creating them per record
        // costs more than the record.
        let mut lingering = false;
        let linger = tokio::time::sleep(limits.linger);
        tokio::pin!(linger);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            let raw = tokio::select! {
                biased;
                _ = &mut cancelled => break,
                _ = &mut linger, if lingering => None,
                message = self.consumer.recv() => match message {
                    Ok(message) => Some(RawRecord::from_message(&message)),
                    Err(e) => {
                        tracing::warn!(error = %e, level = self.level, "consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            if let Some(raw) = raw {
                self.tracker.lock().expect("tracker poisoned").register(
                    &raw.topic,
                    raw.partition,
                    raw.offset,
                );
                Metrics::add(&self.metrics.consumed, 1);
                if self.level > 0 && !self.wait_until_due(&raw, shutdown).await {
                    break;
                }
                bytes += raw.value().len();
                let items = self.transform(&raw, shutdown).await;
                batch.push(Pending { raw, items });
                if !lingering {
                    lingering = true;
                    linger
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.linger);
                }
                if batch.len() < limits.max_records && bytes < limits.max_bytes {
                    continue;
                }
            }
            if !batch.is_empty() {
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    return;
                }
                bytes = 0;
            }
            lingering = false;
        }
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
    }

    /// Waits for a retry record's `not-before`; false when shut down meanwhile.
    async fn wait_until_due(&self, raw: &RawRecord, shutdown: &CancellationToken) -> bool {
        let due = raw
            .header(header::NOT_BEFORE)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default();
        let wait = due - dead_letter::now_ms();
        if wait <= 0 {
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => true,
        }
    }

    /// Decodes and applies the topology's step; a registry outage is retried in place.
    async fn transform(
        &self,
        raw: &RawRecord,
        shutdown: &CancellationToken,
    ) -> std::result::Result<Vec<S::Item>, Failure> {
        let origin;
        let topic = if self.level == 0 {
            &raw.topic
        } else {
            origin = raw.origin().topic;
            &origin
        };
        let Some(binding) = self.topology.bindings.get(topic) else {
            return Err(Failure::permanent(format!(
                "no source of this pipeline reads topic {topic}"
            )));
        };
        let bytes = raw.value();
        if let Ok((id, _)) = wire::split(bytes)
            && !self.codec.has_decoder(id, binding.schema)
        {
            let mut backoff = self.backoff();
            loop {
                match self.codec.prepare(id, binding.schema).await {
                    Ok(()) => break,
                    Err(e) if !e.is_retryable() => return Err(Failure::decode(&e)),
                    Err(e) => match backoff.next() {
                        Some(delay) if !shutdown.is_cancelled() => {
                            tracing::warn!(error = %e, "registry unavailable, retrying");
                            tokio::time::sleep(delay).await;
                        }
                        _ => return Err(Failure::decode(&e)),
                    },
                }
            }
        }
        (binding.step)(&self.codec, bytes).map_err(|e| Failure::decode(&e))
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<S> {
        let policy = &self.config.retry;
        ExponentialBuilder::default()
            .with_min_delay(policy.in_place_min_delay)
            .with_max_delay(policy.in_place_max_delay)
            .with_max_times(policy.in_place_attempts)
            .with_jitter()
            .build()
    }

    /// Writes a batch, retries what failed, routes what still fails, stores offsets.
    async fn settle(&self, batch: Vec<Pending<S::Item>>, shutdown: &CancellationToken) {
        let started = Instant::now();
        let mut owners = Vec::with_capacity(batch.len());
        let mut items = Vec::with_capacity(batch.len());
        let mut failures: Vec<Option<Failure>> = Vec::with_capacity(batch.len());
        let mut raws = Vec::with_capacity(batch.len());
        let mut attempts = vec![1u32; batch.len()];
        for (i, pending) in batch.into_iter().enumerate() {
            match pending.items {
                Ok(produced) => {
                    owners.extend(std::iter::repeat_n(i, produced.len()));
                    items.extend(produced);
                    failures.push(None);
                }
                Err(failure) => failures.push(Some(failure)),
            }
            raws.push(pending.raw);
        }
        let outcomes = self.write(&items, &owners, &mut attempts, shutdown).await;
        let Some(outcomes) = outcomes else {
            return; // shut down during an outage: nothing settled, nothing stored
        };
        for (outcome, owner) in outcomes.iter().zip(&owners) {
            if let Some(failure) = Failure::from_outcome(outcome) {
                let worse = failures[*owner]
                    .as_ref()
                    .is_none_or(|f| f.class == ErrorClass::Retryable);
                if worse {
                    failures[*owner] = Some(failure);
                }
            }
        }
        let mut stores = std::collections::BTreeMap::new();
        for ((raw, failure), attempts) in raws.into_iter().zip(failures).zip(attempts) {
            match failure {
                None => Metrics::add(&self.metrics.sunk, 1),
                Some(failure) => {
                    if !self
                        .dead_letter(raw.clone(), failure, attempts, shutdown)
                        .await
                    {
                        return;
                    }
                }
            }
            let watermark = self.tracker.lock().expect("tracker poisoned").complete(
                &raw.topic,
                raw.partition,
                raw.offset,
            );
            if let Some(next) = watermark {
                stores.insert((raw.topic, raw.partition), next);
            }
        }
        if !stores.is_empty() {
            // One entry per partition: the furthest watermark of this batch.
            let mut list = TopicPartitionList::with_capacity(stores.len());
            for ((topic, partition), next) in &stores {
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
            if let Err(e) = self.consumer.store_offsets(&list) {
                // A partition revoked meanwhile: its records are redelivered elsewhere.
                tracing::debug!(error = %e, "storing offsets failed");
            }
        }
        self.metrics.observe_batch(started.elapsed());
    }

    /// Writes `items`, retrying failed items in place. When every item is
    /// [`Outcome::Unavailable`] the sink is down: wait for it (bounded memory, nothing dead-lettered) until shutdown,
    /// which returns `None`.
    async fn write(
        &self,
        items: &[S::Item],
        owners: &[usize],
        attempts: &mut [u32],
        shutdown: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        if items.is_empty() {
            return Some(Vec::new());
        }
        let sink = &self.topology.sink;
        let mut outcomes = sink.write(items).await;
        let mut outage_delay = Duration::from_millis(500);
        while outcomes.iter().all(Outcome::is_unavailable) {
            tracing::warn!(
                reason = ?outcomes.first(),
                "sink unavailable for a whole batch; pausing consumption"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(outage_delay) => {}
            }
            outage_delay = (outage_delay * 2).min(Duration::from_secs(30));
            Metrics::add(&self.metrics.sink_retries, 1);
            outcomes = sink.write(items).await;
        }
        for delay in self.backoff() {
            let retry: Vec<usize> = (0..items.len())
                .filter(|i| outcomes[*i].is_retryable())
                .collect();
            if retry.is_empty() {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            Metrics::add(&self.metrics.sink_retries, retry.len() as u64);
            let subset: Vec<S::Item> = retry.iter().map(|i| items[*i].clone()).collect();
            let again = sink.write(&subset).await;
            for (i, outcome) in retry.into_iter().zip(again) {
                attempts[owners[i]] += 1;
                outcomes[i] = outcome;
            }
        }
        Some(outcomes)
    }

    /// Produces a failed record to its retry or dead-letter topic, until Kafka takes it;
    /// false when shut down first (the record stays unsettled).
    async fn dead_letter(
        &self,
        raw: RawRecord,
        failure: Failure,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        let now = dead_letter::now_ms();
        let topics = self.config.topics();
        let route = dead_letter::route(&topics, &self.config.retry, &failure, self.level, now);
        let attempts = raw.origin().attempts + attempts;
        tracing::warn!(
            topic = %raw.topic, partition = raw.partition, offset = raw.offset,
            to = %route.topic, class = failure.class.as_str(), reason = %failure.message,
            "record failed"
        );
        let letter = DeadLetter {
            pipeline: self.config.name.clone(),
            failure,
            attempts,
            now_ms: now,
            record: raw,
        };
        let headers = letter.headers(route.not_before_ms);
        loop {
            let mut record = FutureRecord::to(&route.topic).headers(headers.clone());
            if let Some(key) = &letter.record.key {
                record = record.key(key);
            }
            if let Some(payload) = &letter.record.payload {
                record = record.payload(payload);
            }
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return false,
                sent = self.producer.send(record, Duration::from_secs(30)) => sent,
            };
            match sent {
                Ok(_) => break,
                Err((e, _)) => {
                    tracing::error!(error = %e, topic = %route.topic, "could not produce a failed record; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if route.not_before_ms.is_some() {
            Metrics::add(&self.metrics.retried, 1);
        } else {
            Metrics::add(&self.metrics.dead_lettered, 1);
        }
        true
    }
}
