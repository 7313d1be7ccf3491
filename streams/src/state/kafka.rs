//! [`StatefulPipeline`]: runs a [`Processor`] as a consumer group on Kafka, at least once
//! or exactly once ([`Guarantee`]).
//!
//! One lane: a consumer of the processor's inputs and one producer, on a thread of their
//! own (every call here is a blocking librdkafka call; the processor's work is a few
//! microseconds per record). Records are processed in partition order; every
//! [`StatefulConfig::commit_interval`] (or every [`StatefulConfig::commit_records`]
//! records, 10,000 by default) the lane commits:
//!
//! - **exactly once**: the commit's outputs, its changelog records and the consumer's
//!   offsets (`send_offsets_to_transaction` with the group's metadata) go in one Kafka
//!   transaction of a producer whose `transactional.id` is `<group>-<instance>`; a
//!   restarted instance with the same id fences its predecessor and aborts what it left
//!   open. Errors as librdkafka classifies them: retriable → commit again (3 times);
//!   abortable or fatal (fenced, timed out by the broker) → the commit is abandoned: the
//!   state written since the last commit is dropped, the producer is replaced (the new one,
//!   with the same transactional id, aborts the open transaction when it starts: an abort
//!   by the failed producer may itself fail, or hang while the brokers are away) and the
//!   consumer rewinds to the committed offsets. Seeks and the new producer happen on the
//!   lane's loop, never inside a rebalance callback. Readers of the outputs use
//!   `isolation.level=read_committed`. A transaction of the lane's id that its
//!   coordinator left hanging (a restarted broker that skipped its markers,
//!   `docs/state.md`) is completed by [`mend_hanging`] before each new producer starts,
//!   before the first transaction after consumer errors, and whenever a consumer is given
//!   up.
//! - **at least once**: the outputs are produced (idempotent producer) and confirmed, then
//!   the changelog records, then the offsets are committed (outputs first: a store never
//!   holds an effect whose output was lost). A crash in between replays the records
//!   since the last commit against a store that already holds their effect: at most the
//!   records of one commit (at most [`StatefulConfig::commit_records`]) per crash and
//!   step are applied twice.
//!
//! State: one in-memory [`Store`](super::Store) per task (input partition), backed by the
//! compacted topic `<pipeline>-<store>-changelog` (partition `p` holds task `p`'s
//! records). A task assigned to this instance is restored before any of its records is
//! processed: its input partitions are paused, the changelog partition is read from the
//! start up to its end (`read_committed`: what committed transactions wrote) in batches,
//! and the consumer keeps polling in between, so the instance stays in the group however
//! long the restore takes; then the partitions are resumed and sought to the group's
//! committed offsets. Only records of restored tasks are processed: one of a partition
//! still restoring is read again after its restore, one of a partition revoked meanwhile
//! is left to its new owner (an empty store would otherwise count from zero again). On
//! revoke, the lane commits first, then drops the revoked tasks' stores; when the
//! assignment was lost (the group moved on without this instance) it abandons what was
//! not committed instead, and replaces its consumer before reading on.
//!
//! Membership is static (`group.instance.id` = `<group>-<instance>`): an instance restarted
//! after a crash gets its tasks back without a rebalance and without waiting for the old
//! session to time out; one that stops for good hands its tasks over when its session
//! (10 s) times out.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_connectors::Outcome;
use anineplus_connectors::kafka;
use anineplus_connectors::kafka::transactions;
use anineplus_schemas::{Codec, wire};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::processor::{Output, Processor};
use super::tasks::{Consumed, Tasks};
use crate::metrics::Metrics;
use crate::runtime::PipelineConfig;
use crate::{Error, Result};

/// What a stateful pipeline guarantees (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs and state are confirmed before the offsets are committed.
    AtLeastOnce,
    /// Outputs, state and offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

impl FromStr for Guarantee {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "at_least_once" => Ok(Guarantee::AtLeastOnce),
            "exactly_once" => Ok(Guarantee::ExactlyOnce),
            other => Err(format!("{other:?}: expected at_least_once or exactly_once")),
        }
    }
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guarantee::AtLeastOnce => "at_least_once",
            Guarantee::ExactlyOnce => "exactly_once",
        })
    }
}

/// How a stateful pipeline runs.
#[derive(Debug, Clone)]
pub struct StatefulConfig {
    /// Name, brokers, group, topic prefix and creation settings (batching and retry
    /// settings do not apply: a stateful lane processes records one at a time and
    /// dead-letters what does not decode).
    pub pipeline: PipelineConfig,
    /// At least once or exactly once.
    pub guarantee: Guarantee,
    /// How often the lane commits (100 ms by default).
    pub commit_interval: Duration,
    /// Most records a commit holds, whatever the interval (10,000 by default): a lane
    /// catching up on a backlog processes thousands of records per interval, and at least
    /// once a crash applies one commit's records twice.
    pub commit_records: usize,
    /// This instance's id, unique in the group and stable across its restarts: the
    /// transactional id is `<group>-<instance>`, so a restarted instance fences the one it
    /// replaces at once (another id waits for the old transaction's timeout, 10 s).
    pub instance: String,
}

impl StatefulConfig {
    /// A configuration with a 100 ms commit interval (10,000 records at most), instance `0`.
    pub fn new(pipeline: PipelineConfig, guarantee: Guarantee) -> Self {
        StatefulConfig {
            pipeline,
            guarantee,
            commit_interval: Duration::from_millis(100),
            commit_records: 10_000,
            instance: "0".to_owned(),
        }
    }

    /// The producer's transactional id (exactly once): `<group>-<instance>`.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.pipeline.group, self.instance)
    }

    /// The changelog topic of `store`: `<prefix><pipeline>-<store>-changelog`.
    pub fn changelog(&self, store: &str) -> String {
        format!(
            "{}{}-{store}-changelog",
            self.pipeline.topic_prefix, self.pipeline.name
        )
    }
}

/// A processor bound to its configuration, ready to run.
pub struct StatefulPipeline<P: Processor> {
    config: Arc<StatefulConfig>,
    processor: Arc<P>,
    codec: Codec,
    metrics: Arc<Metrics>,
}

/// Changelog records applied between two polls of the group's consumer while restoring.
const RESTORE_CHUNK: usize = 10_000;

/// How long a commit waits for its records' acknowledgements before it is abandoned.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

impl<P: Processor> StatefulPipeline<P> {
    /// A pipeline running `processor`, decoding through `codec`.
    pub fn new(config: StatefulConfig, processor: P, codec: Codec) -> Self {
        let metrics = Arc::new(Metrics::new(&config.pipeline.name));
        StatefulPipeline {
            config: Arc::new(config),
            processor: Arc::new(processor),
            codec,
            metrics,
        }
    }

    /// The metrics, to serve or inspect.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown`, then commits what it processed and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        // The brokers may be away or still starting: wait for them like the lane does.
        loop {
            match self.create_topics().await {
                Ok(()) => break,
                Err(Error::Kafka(e))
                    if matches!(kafka::produce_outcome(&e), Outcome::Unavailable(_)) =>
                {
                    tracing::warn!(
                        pipeline = %self.config.pipeline.name, error = %e,
                        "creating the topics: the brokers do not answer, retrying in 1 s"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (stop, shutdown) = (stop.clone(), shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.store(true, Ordering::Release);
            })
        };
        let runtime = tokio::runtime::Handle::current();
        let lane = Lane {
            config: self.config.clone(),
            processor: self.processor.clone(),
            codec: self.codec.clone(),
            metrics: self.metrics.clone(),
            runtime,
            stop,
        };
        self.metrics.set_ready(true);
        tracing::info!(
            pipeline = %self.config.pipeline.name, group = %self.config.pipeline.group,
            guarantee = %self.config.guarantee, inputs = ?self.processor.inputs(),
            "stateful pipeline running"
        );
        let result = tokio::task::spawn_blocking(move || lane.run())
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        watcher.abort();
        self.metrics.set_ready(false);
        if let Err(e) = &result {
            self.metrics.fail_lane("main", &e.to_string());
        }
        tracing::info!(pipeline = %self.config.pipeline.name, "stateful pipeline stopped");
        result
    }

    /// Creates the inputs, outputs, changelog and dead-letter topics when missing, and
    /// checks that the inputs and the changelog are co-partitioned.
    async fn create_topics(&self) -> Result<()> {
        let p = &self.config.pipeline;
        let admin: AdminClient<DefaultClientContext> =
            kafka::producer_config(&p.brokers).create()?;
        let changelog = self.config.changelog(self.processor.store());
        let mut topics: Vec<NewTopic<'_>> = Vec::new();
        let inputs = self.processor.inputs();
        let outputs = self.processor.outputs();
        let dlq = p.topics().dlq();
        let replication = || TopicReplication::Fixed(p.topic_replication);
        for name in inputs.iter().chain(&outputs) {
            topics.push(NewTopic::new(name, p.topic_partitions, replication()));
        }
        let dlq_retention = p
            .dlq_retention
            .map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string());
        topics.push(
            NewTopic::new(&dlq, p.topic_partitions, replication())
                .set("retention.ms", &dlq_retention),
        );
        // Partitions of the changelog: the inputs' (checked below).
        let partitions = self.partitions(&admin, &inputs).await?;
        let want = partitions.first().map_or(p.topic_partitions, |(_, n)| *n);
        topics.push(
            NewTopic::new(&changelog, want, replication())
                .set("cleanup.policy", "compact")
                .set("min.compaction.lag.ms", "0"),
        );
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&topics, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::Topic {
                        topic,
                        reason: format!("creating it: {code}"),
                    });
                }
            }
        }
        let mut all = inputs.clone();
        all.push(changelog);
        let counts = self.partitions(&admin, &all).await?;
        let first = counts.first().map(|(_, n)| *n);
        if let Some((topic, n)) = counts.iter().find(|(_, n)| Some(*n) != first) {
            return Err(Error::Topic {
                topic: topic.clone(),
                reason: format!(
                    "has {n} partitions where the other inputs and the changelog have {}: a \
                     stateful step needs co-partitioned inputs (the same partition count, \
                     keyed alike); repartition the input through a topic of {} partitions",
                    first.unwrap_or_default(),
                    first.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// The partition count of each topic that exists (missing ones are left out).
    async fn partitions(
        &self,
        admin: &AdminClient<DefaultClientContext>,
        topics: &[String],
    ) -> Result<Vec<(String, i32)>> {
        let client = admin.inner();
        let mut out = Vec::new();
        for topic in topics {
            let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for t in metadata.topics() {
                if t.error().is_none() && !t.partitions().is_empty() {
                    out.push((t.name().to_owned(), t.partitions().len() as i32));
                }
            }
        }
        Ok(out)
    }
}

/// The consumer's context: lag from statistics, commit on revoke, restore on assign.
struct StateContext<P: Processor> {
    engine: Arc<Mutex<Engine<P>>>,
    metrics: Arc<Metrics>,
    /// Partitions assigned and not restored yet.
    assigned: Arc<Mutex<Vec<(String, i32)>>>,
}

impl<P: Processor> ClientContext for StateContext<P> {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.set_lag(name, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl<P: Processor> ConsumerContext for StateContext<P> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let partitions: Vec<i32> = revoked.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(
                ?partitions,
                "tasks revoked: committing, then dropping their state"
            );
            let mut engine = self.engine.lock().expect("engine poisoned");
            if consumer.assignment_lost() {
                // The group moved on without us (a session that timed out, a coordinator
                // that went away): the partitions may have another owner already, and a
                // commit would be fenced anyway. What was not committed is redone, by a new
                // consumer: a static member whose session timed out can be left out of the
                // group for good by the one that lost it (librdkafka #3437; seen in CI: a
                // lane never assigned again after a broker restart longer than its session).
                tracing::warn!(
                    "assignment lost: abandoning what was not committed; a new consumer rejoins"
                );
                engine.abandon();
                engine.rebuild_consumer = Some("its assignment was lost");
            } else if let Err(e) = engine.commit(consumer) {
                tracing::warn!(error = %e, "commit on revoke failed; the new owner redoes it");
                engine.abandon();
            }
            engine.tasks.revoke(&partitions);
            engine.ready.retain(|p| !partitions.contains(p));
            self.assigned
                .lock()
                .expect("assigned poisoned")
                .retain(|(_, p)| !partitions.contains(p));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            if assigned.count() == 0 {
                return;
            }
            // Nothing of a task is processed before its state is restored.
            if let Err(e) = consumer.pause(assigned) {
                tracing::warn!(error = %e, "pausing assigned partitions for their restore");
            }
            let list: Vec<(String, i32)> = assigned
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            tracing::info!(partitions = ?list, "tasks assigned: restoring their state");
            self.assigned
                .lock()
                .expect("assigned poisoned")
                .extend(list);
        }
    }
}

/// The changelog reader's context: the end of a partition is how a restore knows it is
/// done, not an error (librdkafka also reports it as a client error, which the default
/// context logs at ERROR, once per partition and restore).
struct ChangelogReader;

impl ClientContext for ChangelogReader {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::Global(RDKafkaErrorCode::PartitionEOF) | KafkaError::PartitionEOF(_) => {
                tracing::debug!(%reason, "changelog partition read to its end");
            }
            error => tracing::warn!(%error, %reason, "reading a changelog"),
        }
    }
}

impl ConsumerContext for ChangelogReader {}

/// The processor's state and the producer that commits it.
struct Engine<P: Processor> {
    tasks: Tasks<P>,
    producer: kafka::Producer,
    guarantee: Guarantee,
    config: Arc<StatefulConfig>,
    metrics: Arc<Metrics>,
    /// Whether a transaction is open (exactly once).
    open: bool,
    /// Partitions to read again from their last commit, after an abandoned commit: the
    /// lane seeks them before its next poll (never inside a rebalance callback).
    rewind: Vec<(String, i32, Option<i64>)>,
    /// Whether the producer must be replaced before the next transaction (its last one
    /// could not be committed or aborted).
    replace_producer: bool,
    /// Tasks assigned here and restored: only their records are processed. A record of
    /// any other partition (one whose restore has not run yet, or one revoked while its
    /// records were already fetched) would start from an empty store and write wrong
    /// state to the changelog.
    ready: BTreeSet<i32>,
    /// Why the consumer must be replaced, when it must (its assignment was lost, or a
    /// rewind could not find where to go back to).
    rebuild_consumer: Option<&'static str>,
    /// Every topic a transaction of the lane may write (outputs, changelog, dead letters,
    /// the group's offsets): where [`mend_hanging`] looks.
    written: Vec<String>,
    /// Whether to look for hanging transactions before the next one begins (set by
    /// consumer errors: a broker away and back).
    mend_due: bool,
}

fn producer_for(
    config: &StatefulConfig,
    written: &[String],
    metrics: &Metrics,
) -> Result<kafka::Producer> {
    let p = &config.pipeline;
    let mut client = kafka::producer_config(&p.brokers);
    if config.guarantee == Guarantee::ExactlyOnce {
        client
            .set("transactional.id", config.transactional_id())
            .set("transaction.timeout.ms", "10000")
            // librdkafka wants deliveries bounded by the transaction's own timeout.
            .set("message.timeout.ms", "10000");
    }
    let producer = kafka::Producer::create(&client)?;
    if config.guarantee == Guarantee::ExactlyOnce {
        // Before this producer bumps the epoch: the coordinator still says what the last
        // transaction of the id became.
        // (A transaction the coordinator still drives is one `init_transactions` aborts.)
        mend_hanging(config, written, &producer, metrics)?;
        producer.base().init_transactions(Duration::from_secs(30))?;
    }
    Ok(producer)
}

/// [`producer_for`], tried again every second while the brokers do not answer (its
/// `init_transactions` times out), until `stop`.
fn producer_retrying(
    config: &StatefulConfig,
    written: &[String],
    metrics: &Metrics,
    stop: &AtomicBool,
) -> Result<kafka::Producer> {
    loop {
        match producer_for(config, written, metrics) {
            Ok(producer) => return Ok(producer),
            Err(e) if stop.load(Ordering::Acquire) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "a transactional producer: retrying in 1 s");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Completes the transactions of this instance's transactional id that hang on any of the
/// topics it writes (`kafka::transactions`: a coordinator that skipped their markers, see
/// docs/state.md), before a new producer starts, before the first transaction after
/// consumer errors (a broker away and back), and when a consumer is given up. A
/// coordinator still loading is asked again for up to [`MEND_WAIT`]; `Err` only while the
/// brokers cannot be reached (ask again once they are back); other failures are logged.
/// `Ok(false)`: the coordinator still drove a transaction of the id, nothing was looked at.
fn mend_hanging(
    config: &StatefulConfig,
    written: &[String],
    producer: &kafka::Producer,
    metrics: &Metrics,
) -> Result<bool> {
    let id = config.transactional_id();
    let started = Instant::now();
    loop {
        match transactions::mend(producer.base().client(), &id, written) {
            Ok(mended) => {
                for (txn, marker) in &mended.completed {
                    tracing::warn!(
                        topic = %txn.topic, partition = txn.partition, producer_id = txn.producer_id,
                        epoch = txn.producer_epoch, start_offset = txn.start_offset, ?marker,
                        transactional_id = %id,
                        "a hanging transaction completed: its coordinator had skipped this partition's marker"
                    );
                }
                for (topic, partition, code) in &mended.refused {
                    tracing::warn!(%topic, partition, code, transactional_id = %id, "completing a hanging transaction: the leader refused the marker");
                }
                Metrics::add(&metrics.hanging_completed, mended.completed.len() as u64);
                return Ok(!mended.deferred);
            }
            Err(e) if e.is_unreachable() => {
                return Err(Error::Unavailable(format!(
                    "looking for hanging transactions of {id}: {e}"
                )));
            }
            // Loading after a restart: asked again, but not for ever (a coordinator that
            // never answers must not keep the lane from starting).
            Err(e @ transactions::Error::CoordinatorBusy(_)) if started.elapsed() < MEND_WAIT => {
                tracing::debug!(error = %e, transactional_id = %id, "looking for hanging transactions: asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                tracing::warn!(error = %e, transactional_id = %id, "looking for hanging transactions: skipped");
                return Ok(true);
            }
        }
    }
}

/// How long [`mend_hanging`] asks a coordinator that is not ready yet.
const MEND_WAIT: Duration = Duration::from_secs(15);

/// What went wrong with a commit.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error("{0}")]
    Abortable(String),
    #[error("fatal: {0}")]
    Fatal(String),
}

fn classify(e: &KafkaError) -> CommitError {
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => CommitError::Fatal(e.to_string()),
        _ => CommitError::Abortable(e.to_string()),
    }
}

impl<P: Processor> Engine<P> {
    fn begin(&mut self) -> std::result::Result<(), CommitError> {
        if self.guarantee == Guarantee::ExactlyOnce && !self.open {
            if self.mend_due {
                // A broker was away: before this producer writes again, while the
                // coordinator still says what its last transaction became (a later
                // marker of this producer would end a hanging one whatever that was).
                self.mend();
            }
            self.producer
                .base()
                .begin_transaction()
                .map_err(|e| classify(&e))?;
            self.open = true;
        }
        Ok(())
    }

    /// [`mend_hanging`] with the current producer; due again until it looked (the brokers
    /// away, or the coordinator still driving a transaction of the id).
    fn mend(&mut self) {
        match mend_hanging(&self.config, &self.written, &self.producer, &self.metrics) {
            Ok(done) => self.mend_due = !done,
            Err(e) => {
                tracing::warn!(error = %e, "looking for hanging transactions");
                self.mend_due = true;
            }
        }
    }

    /// Commits what was processed since the last commit (see the module header).
    fn commit<C: Consumer<StateContext<P>>>(
        &mut self,
        consumer: &C,
    ) -> std::result::Result<(), CommitError>
    where
        StateContext<P>: ConsumerContext,
    {
        let prepared = self.tasks.prepare();
        if prepared.is_empty() {
            self.tasks.committed();
            return Ok(());
        }
        let records = self.tasks.uncommitted as u64;
        tracing::debug!(
            records,
            outputs = prepared.outputs.len(),
            changelog = prepared.changelog.len(),
            "commit: begin"
        );
        self.begin()?;
        let mut offsets = TopicPartitionList::with_capacity(prepared.offsets.len());
        for (topic, partition, next) in &prepared.offsets {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        match self.guarantee {
            Guarantee::ExactlyOnce => {
                let deliveries =
                    self.produce(prepared.outputs.iter().chain(&prepared.changelog))?;
                // Acknowledged before the commit, so the flush inside `commit_transaction`
                // finds nothing in flight (waiting there beside the delivery thread cost
                // most of the lane's rate: docs/benchmarks.md).
                self.confirm(deliveries)?;
                tracing::debug!("commit: produced");
                let base = self.producer.base();
                if !prepared.offsets.is_empty() {
                    let metadata = consumer.group_metadata().ok_or_else(|| {
                        CommitError::Abortable("no consumer group metadata yet".to_owned())
                    })?;
                    base.send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(10))
                        .map_err(|e| classify(&e))?;
                    tracing::debug!("commit: offsets sent");
                }
                let mut attempt = 0;
                loop {
                    match base.commit_transaction(Duration::from_secs(10)) {
                        Ok(()) => break,
                        Err(KafkaError::Transaction(t)) if t.is_retriable() && attempt < 3 => {
                            attempt += 1;
                            tracing::warn!(error = %t, attempt, "commit_transaction: retrying");
                        }
                        Err(e) => return Err(classify(&e)),
                    }
                }
                self.open = false;
            }
            Guarantee::AtLeastOnce => {
                // The outputs are confirmed before the changelog, and both before the
                // offsets: a crash in between replays the records against a store without
                // their effect (the outputs are sent again, a duplicate), never against one
                // that has it while its outputs were lost (a processor that keeps state to
                // emit each change once would then emit nothing: lost for good).
                let outputs = self.produce(prepared.outputs.iter())?;
                self.confirm(outputs)?;
                let changelog = self.produce(prepared.changelog.iter())?;
                self.confirm(changelog)?;
                tracing::debug!("commit: produced and confirmed");
                if !prepared.offsets.is_empty() {
                    consumer
                        .commit(&offsets, CommitMode::Sync)
                        .map_err(|e| CommitError::Abortable(e.to_string()))?;
                }
            }
        }
        self.tasks.committed();
        tracing::debug!("commit: done");
        Metrics::add(&self.metrics.sunk, records);
        Metrics::add(&self.metrics.dead_lettered, prepared.dead_lettered);
        Metrics::add(&self.metrics.late, prepared.late);
        Metrics::add(&self.metrics.commits, 1);
        Ok(())
    }

    /// Produces records (in the open transaction when exactly once); the deliveries to
    /// confirm (at least once).
    fn produce<'a>(
        &self,
        records: impl Iterator<Item = &'a Output>,
    ) -> std::result::Result<Vec<kafka::Delivering>, CommitError> {
        let mut deliveries = Vec::new();
        for output in records {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output.topic);
            if let Some(key) = &output.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &output.value {
                record = record.payload(value.as_slice());
            }
            if let Some(p) = output.partition {
                record = record.partition(p);
            }
            if let Some(t) = output.timestamp {
                record = record.timestamp(t);
            }
            if let Some(h) = &output.headers {
                record = record.headers(h.clone());
            }
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(classify(&e)),
                }
            }
        }
        Ok(deliveries)
    }

    /// Waits until every one of `deliveries` is acknowledged, for at most
    /// [`CONFIRM_TIMEOUT`]. The delivery thread completes each future as its acknowledgement
    /// arrives; the producer's `flush` is not used: beside that thread it slept 100 ms per
    /// call (docs/benchmarks.md).
    fn confirm(&self, deliveries: Vec<kafka::Delivering>) -> std::result::Result<(), CommitError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let all = futures::future::join_all(deliveries);
        let results = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .block_on(async { tokio::time::timeout(CONFIRM_TIMEOUT, all).await })
                .map_err(|_| {
                    CommitError::Abortable(format!(
                        "records not acknowledged within {} s",
                        CONFIRM_TIMEOUT.as_secs()
                    ))
                })?,
            // Not on a runtime (never in the lane, which runs on one): no deadline but
            // librdkafka's `message.timeout.ms`.
            Err(_) => futures::executor::block_on(all),
        };
        for result in results {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(CommitError::Abortable(e.to_string())),
                Err(_) => return Err(CommitError::Abortable("delivery lost".to_owned())),
            }
        }
        Ok(())
    }

    /// Abandons what was processed since the last commit: drops the state written and
    /// notes the partitions to rewind to the last committed offsets (the lane seeks them,
    /// see [`Engine::recover`]). An open transaction is not aborted here: the producer is
    /// replaced, and the new one (same transactional id) aborts it when it starts, whatever
    /// state the old one was left in by the failure.
    fn abandon(&mut self) {
        Metrics::add(&self.metrics.aborts, 1);
        if self.guarantee == Guarantee::ExactlyOnce {
            self.replace_producer = true;
        }
        self.open = false;
        self.rewind.extend(self.tasks.aborted());
    }

    /// After an abandoned commit, before the next poll: a new transactional producer
    /// (fencing the old one and aborting its open transaction; tried again every second
    /// while the brokers do not answer, until `stop`), and the rewound partitions that are
    /// still assigned sought back to their last commit.
    fn recover<C: Consumer<StateContext<P>>>(
        &mut self,
        consumer: &C,
        stop: &AtomicBool,
    ) -> Result<()>
    where
        StateContext<P>: ConsumerContext,
    {
        if self.replace_producer {
            self.producer = producer_retrying(&self.config, &self.written, &self.metrics, stop)?;
            self.replace_producer = false;
            tracing::info!("a new transactional producer: the abandoned transaction is aborted");
        }
        if self.rewind.is_empty() {
            return Ok(());
        }
        let assigned = consumer.assignment().unwrap_or_default();
        let mut uncommitted = Vec::new();
        for (topic, partition, at) in std::mem::take(&mut self.rewind) {
            if assigned.find_partition(&topic, partition).is_none() {
                continue; // revoked meanwhile: its new owner starts at the committed offset
            }
            match at {
                Some(at) => {
                    if let Err(e) = consumer.seek(
                        &topic,
                        partition,
                        Offset::Offset(at),
                        Duration::from_secs(10),
                    ) {
                        tracing::warn!(error = %e, %topic, partition, "rewinding after an abandoned commit");
                    }
                }
                // Never committed by this instance: the group's committed offset (another
                // instance's), looked up from the coordinator.
                None => uncommitted.push((topic, partition)),
            }
        }
        if !seek_committed(consumer, &uncommitted) {
            self.rebuild_consumer = Some("no committed offsets to rewind to");
        }
        Ok(())
    }
}

/// Seeks `partitions` to the group's committed offsets (the start when a partition was
/// never committed: `auto.offset.reset` is `earliest`); librdkafka's logical
/// `Offset::Stored` is refused by `seek`, so the lookup is ours. One attempt (10 s): while
/// a rebalance waits for the lane's next poll the coordinator's answer can wait too, so a
/// retry loop here could wait for ever. `false` when the lookup failed: the lane then
/// replaces its consumer, whose assignment starts every partition at its committed offset.
fn seek_committed<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    partitions: &[(String, i32)],
) -> bool {
    if partitions.is_empty() {
        return true;
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    let committed = match consumer.committed_offsets(list, Duration::from_secs(10)) {
        Ok(committed) => committed,
        Err(e) => {
            // With `read_committed` the lookup waits while a transaction that wrote the
            // group's offsets is not complete: past the transaction timeout (10 s) it may
            // be a hanging one, which the lane mends when it gives the consumer up
            // (docs/state.md).
            tracing::warn!(
                error = %e,
                "looking up committed offsets failed: a new consumer rejoins the group (a transaction of this lane's that wrote the group's offsets and hangs is completed first)"
            );
            return false;
        }
    };
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(at) => Offset::Offset(at),
            _ => Offset::Beginning,
        };
        if let Err(err) = consumer.seek(e.topic(), e.partition(), at, Duration::from_secs(10)) {
            tracing::warn!(error = %err, topic = e.topic(), partition = e.partition(), ?at, "seeking to the committed offset");
        } else {
            tracing::debug!(
                topic = e.topic(),
                partition = e.partition(),
                ?at,
                "fetching from the committed offset"
            );
        }
    }
    true
}

/// How a lane's consumer session ended.
enum Session {
    /// Asked to stop: everything processed was committed.
    Stopped,
    /// The consumer failed for good (why).
    Fatal(String),
}

/// The lane's thread (see the module header).
struct Lane<P: Processor> {
    config: Arc<StatefulConfig>,
    processor: Arc<P>,
    codec: Codec,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
}

impl<P: Processor> Lane<P> {
    fn run(self) -> Result<()> {
        let p = &self.config.pipeline;
        // Every line of the lane (its callbacks included) names its pipeline.
        let _span = tracing::info_span!("stateful", pipeline = %p.name).entered();
        let changelog = self.config.changelog(self.processor.store());
        let tasks = Tasks::new(
            self.processor.clone(),
            &p.name,
            changelog.clone(),
            p.topics().dlq(),
        );
        let mut written = self.processor.outputs();
        written.extend([
            changelog.clone(),
            p.topics().dlq(),
            transactions::OFFSETS_TOPIC.to_owned(),
        ]);
        let engine = Arc::new(Mutex::new(Engine {
            tasks,
            // The brokers may be away at start too: wait for them like a recovery does.
            producer: producer_retrying(&self.config, &written, &self.metrics, &self.stop)?,
            written,
            mend_due: false,
            guarantee: self.config.guarantee,
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            open: false,
            rewind: Vec::new(),
            replace_producer: false,
            ready: BTreeSet::new(),
            rebuild_consumer: None,
        }));
        // A fatal consumer error (e.g. the broker fencing this static member by its own
        // earlier incarnation after a coordinator failover) leaves the consumer unusable:
        // what it had not committed is abandoned, its tasks dropped, and a new consumer
        // joins the group (its tasks are restored from the changelog on assignment).
        loop {
            match self.session(&engine, &changelog)? {
                Session::Stopped => return Ok(()),
                Session::Fatal(reason) => {
                    tracing::error!(%reason, "consumer given up: a new consumer joins the group");
                    Metrics::add(&self.metrics.consumer_restarts, 1);
                    let mut engine = engine.lock().expect("engine poisoned");
                    if engine.tasks.uncommitted > 0 || engine.open {
                        engine.abandon();
                    }
                    if engine.guarantee == Guarantee::ExactlyOnce && !engine.replace_producer {
                        // A consumer given up because the group's offsets stayed unstable
                        // may be waiting on a hanging transaction of this very producer
                        // (a replaced producer looks before it starts).
                        engine.mend();
                    }
                    engine.rewind.clear();
                    let tasks: Vec<i32> = engine.tasks.stores().keys().copied().collect();
                    engine.tasks.revoke(&tasks);
                    engine.ready.clear();
                    engine.rebuild_consumer = None;
                    drop(engine);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// The lane with one consumer, until `stop` or until the consumer fails for good.
    fn session(&self, engine: &Arc<Mutex<Engine<P>>>, changelog: &str) -> Result<Session> {
        let p = &self.config.pipeline;
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let context = StateContext {
            engine: engine.clone(),
            metrics: self.metrics.clone(),
            assigned: assigned.clone(),
        };
        let mut client = kafka::consumer_config(&p.brokers, &p.group);
        client
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // Static membership: a restarted instance takes its tasks back at once instead
            // of waiting for its predecessor's session to time out.
            .set(
                "group.instance.id",
                format!("{}-{}", p.group, self.config.instance),
            )
            .set("statistics.interval.ms", "5000");
        for (k, v) in &p.consumer_overrides {
            client.set(k, v);
        }
        let consumer: BaseConsumer<StateContext<P>> = client.create_with_context(context)?;
        let inputs = self.processor.inputs();
        let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let mut last_commit = Instant::now();
        // While the brokers are away every poll reports the same error: one line per 10 s.
        let mut errors = kafka::ErrorLog::default();
        let interval = self.config.commit_interval;
        let most = self.config.commit_records.max(1);
        while !self.stop.load(Ordering::Acquire) {
            let pending: Vec<(String, i32)> =
                std::mem::take(&mut *assigned.lock().expect("assigned poisoned"));
            if !pending.is_empty() {
                self.restore(&consumer, engine, changelog, pending)?;
            }
            {
                // A commit abandoned in a rebalance callback: recover before reading on.
                let mut engine = engine.lock().expect("engine poisoned");
                if engine.replace_producer || !engine.rewind.is_empty() {
                    engine.recover(&consumer, &self.stop)?;
                }
                if let Some(reason) = engine.rebuild_consumer {
                    return Ok(Session::Fatal(reason.to_owned()));
                }
            }
            let polled = consumer.poll(Duration::from_millis(50));
            let mut engine_guard = engine.lock().expect("engine poisoned");
            match polled {
                None => {}
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Ok(Session::Fatal(e.to_string()));
                }
                Some(Err(e)) => {
                    let error = e.to_string();
                    engine_guard.mend_due = engine_guard.guarantee == Guarantee::ExactlyOnce;
                    if let Some(repeats) = errors.admit(&error, Instant::now()) {
                        tracing::warn!(%error, repeats, "consumer error (repeats of one error are logged every 10 s)");
                    }
                }
                Some(Ok(message)) if !engine_guard.ready.contains(&message.partition()) => {
                    // Not a restored task of ours: read it again once its restore has run
                    // (the assignment is pending), or leave it to its new owner.
                    let (topic, partition, offset) = (
                        message.topic().to_owned(),
                        message.partition(),
                        message.offset(),
                    );
                    drop(message);
                    let pending = assigned
                        .lock()
                        .expect("assigned poisoned")
                        .iter()
                        .any(|(t, p)| *t == topic && *p == partition);
                    if pending {
                        let _ = consumer.seek(
                            &topic,
                            partition,
                            Offset::Offset(offset),
                            Duration::from_secs(10),
                        );
                    } else {
                        tracing::debug!(%topic, partition, offset, "a record of a task not held here: skipped");
                    }
                }
                Some(Ok(message)) => {
                    self.metrics.count_consumed(1);
                    let headers: Vec<(String, Vec<u8>)> = message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let value = message.payload();
                    self.prepare_schema(message.topic(), value);
                    let record = Consumed {
                        topic: message.topic(),
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key(),
                        value,
                        timestamp: message.timestamp().to_millis().unwrap_or_default(),
                        headers: &headers,
                    };
                    if let Err(e) = engine_guard.tasks.process(&self.codec, record) {
                        // The registry is unreachable: read the record again in a while.
                        tracing::warn!(reason = %e.reason, "record cannot be decoded yet; retrying in 1 s");
                        let (topic, partition, offset) = (
                            message.topic().to_owned(),
                            message.partition(),
                            message.offset(),
                        );
                        drop(message);
                        let _ = consumer.seek(
                            &topic,
                            partition,
                            Offset::Offset(offset),
                            Duration::from_secs(10),
                        );
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            let due = engine_guard.tasks.uncommitted >= most
                || (engine_guard.tasks.uncommitted > 0 && last_commit.elapsed() >= interval);
            if due {
                self.commit_or_recover(&mut engine_guard, &consumer)?;
                last_commit = Instant::now();
                if let Some(reason) = engine_guard.rebuild_consumer {
                    return Ok(Session::Fatal(reason.to_owned()));
                }
            }
        }
        let mut engine_guard = engine.lock().expect("engine poisoned");
        self.commit_or_recover(&mut engine_guard, &consumer)?;
        drop(engine_guard);
        consumer.unsubscribe();
        Ok(Session::Stopped)
    }

    fn commit_or_recover(
        &self,
        engine: &mut Engine<P>,
        consumer: &BaseConsumer<StateContext<P>>,
    ) -> Result<()> {
        match engine.commit(consumer) {
            Ok(()) => Ok(()),
            Err(CommitError::Abortable(reason)) => {
                tracing::warn!(%reason, "commit failed: abandoned, rewinding to the last commit");
                engine.abandon();
                engine.recover(consumer, &self.stop)
            }
            Err(CommitError::Fatal(reason)) => {
                tracing::error!(%reason, "producer fenced or failed: a new producer, rewinding to the last commit");
                engine.abandon();
                engine.recover(consumer, &self.stop)
            }
        }
    }

    /// Fetches the writer schema of an Avro value the codec does not know yet.
    fn prepare_schema(&self, topic: &str, value: Option<&[u8]>) {
        let (Some(schema), Some(value)) = (self.processor.schema(topic), value) else {
            return;
        };
        let Ok((id, _)) = wire::split(value) else {
            return;
        };
        if !self.codec.has_decoder(id, schema) {
            let codec = self.codec.clone();
            if let Err(e) = self.runtime.block_on(codec.prepare(id, schema)) {
                tracing::warn!(error = %e, id, "fetching a writer schema");
            }
        }
    }

    /// Restores the tasks of newly assigned partitions from the changelog, polling the
    /// group's consumer between batches, then resumes their partitions.
    fn restore(
        &self,
        consumer: &BaseConsumer<StateContext<P>>,
        engine: &Arc<Mutex<Engine<P>>>,
        changelog: &str,
        assigned: Vec<(String, i32)>,
    ) -> Result<()> {
        let started = Instant::now();
        let tasks: BTreeSet<i32> = assigned.iter().map(|(_, p)| *p).collect();
        let p = &self.config.pipeline;
        let mut client = kafka::consumer_config(&p.brokers, &format!("{}.restore", p.group));
        client
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed");
        let reader: BaseConsumer<ChangelogReader> = client.create_with_context(ChangelogReader)?;
        let mut list = TopicPartitionList::new();
        for task in &tasks {
            list.add_partition_offset(changelog, *task, Offset::Beginning)?;
        }
        reader.assign(&list)?;
        let mut open: BTreeSet<i32> = tasks.clone();
        let mut restored: BTreeMap<i32, u64> = BTreeMap::new();
        while !open.is_empty() && !self.stop.load(Ordering::Acquire) {
            {
                let mut engine = engine.lock().expect("engine poisoned");
                for _ in 0..RESTORE_CHUNK {
                    match reader.poll(Duration::from_millis(100)) {
                        None => break,
                        Some(Ok(m)) => {
                            if let Err(reason) = engine.tasks.restore(
                                m.partition(),
                                m.key().unwrap_or_default(),
                                m.payload(),
                            ) {
                                return Err(Error::Topic {
                                    topic: changelog.to_owned(),
                                    reason: format!(
                                        "partition {} offset {}: {reason} (reset the pipeline's state: delete the changelog and its group's offsets)",
                                        m.partition(),
                                        m.offset()
                                    ),
                                });
                            }
                            *restored.entry(m.partition()).or_default() += 1;
                        }
                        Some(Err(KafkaError::PartitionEOF(partition))) => {
                            open.remove(&partition);
                            if open.is_empty() {
                                break;
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "reading the changelog"),
                    }
                }
            }
            // Stay in the group: serve its callbacks (the restoring partitions are paused).
            if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
                // A record of a task that is not restoring (theirs are paused): read it
                // again after the restore.
                let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                drop(m);
                let _ = consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                );
            }
        }
        let total: u64 = restored.values().sum();
        let seconds = started.elapsed().as_secs_f64();
        Metrics::add(&self.metrics.restored, total);
        self.metrics.restore_seconds.set(seconds);
        tracing::info!(
            tasks = ?tasks, records = total, seconds,
            "state restored from {changelog}"
        );
        let mut resume = TopicPartitionList::new();
        for (topic, partition) in &assigned {
            resume.add_partition(topic, *partition);
        }
        consumer.resume(&resume)?;
        // A pause from the rebalance callback races librdkafka's own start of the
        // partition's fetch: seen here, the incremental assign was applied after the
        // pause, which was lost (the partition was fetched during its restore); reported
        // upstream, the fetch start is dropped as outdated and the partition is never read
        // (librdkafka #2190, #5591). A seek after the resume puts the fetch where it must
        // be in both cases: the group's committed offset.
        let still = consumer.assignment().unwrap_or_default();
        let (restored, gone): (Vec<_>, Vec<_>) = assigned
            .into_iter()
            .partition(|(topic, partition)| still.find_partition(topic, *partition).is_some());
        let sought = seek_committed(consumer, &restored);
        let mut engine = engine.lock().expect("engine poisoned");
        if !sought {
            engine.rebuild_consumer = Some("no committed offsets to rewind to");
        }
        // Revoked during their restore: what was read of them goes.
        let gone: Vec<i32> = gone.iter().map(|(_, p)| *p).collect();
        engine.tasks.revoke(&gone);
        // A restore cut short by a stop leaves its tasks unready: their records are not
        // processed into a partial store (that once committed counts restarted from 0).
        if !self.stop.load(Ordering::Acquire) {
            engine.ready.extend(restored.iter().map(|(_, p)| *p));
        }
        Ok(())
    }
}
