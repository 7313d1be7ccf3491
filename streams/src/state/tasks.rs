//! [`Tasks`]: what a stateful lane holds between two commits, whatever runs it (Kafka, or
//! the in-memory driver): one [`Store`] per task (input partition), the next offset of
//! every partition processed, and the records to send at the commit.
//!
//! A commit is prepared ([`Tasks::prepare`]: each task flushed, its store's writes turned
//! into changelog records for the task's partition of `<pipeline>-<store>-changelog`),
//! then either confirmed ([`Tasks::committed`]: the stores take their writes) or abandoned
//! ([`Tasks::aborted`]: the stores drop them and the positions go back to the last
//! commit, where the lane rewinds its consumer).

use std::collections::BTreeMap;
use std::sync::Arc;

use anineplus_schemas::Codec;

use super::processor::{Emit, Output, Processor, Record, Undecodable};
use super::store::Store;
use crate::dead_letter::{DeadLetter, now_ms};
use crate::failure::Failure;
use crate::record::RawRecord;

/// A consumed record, as bytes (borrowed from the consumer's message or the driver).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consumed<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) timestamp: i64,
    pub(crate) headers: &'a [(String, Vec<u8>)],
}

/// What one commit sends: outputs, changelog records, and the offsets it moves to.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) outputs: Vec<Output>,
    pub(crate) changelog: Vec<Output>,
    /// Per partition processed since the last commit: the next offset to consume.
    pub(crate) offsets: Vec<(String, i32, i64)>,
    pub(crate) late: u64,
    pub(crate) dead_lettered: u64,
}

impl Prepared {
    /// Whether the commit would send or move anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.changelog.is_empty() && self.offsets.is_empty()
    }
}

/// The state of a stateful lane between commits (see the module header).
pub(crate) struct Tasks<P: Processor> {
    pub(crate) processor: Arc<P>,
    pipeline: String,
    changelog: String,
    dlq: String,
    stores: BTreeMap<i32, Store<P::State>>,
    /// Next offset per partition, as of the last commit.
    committed: BTreeMap<(String, i32), i64>,
    /// Next offset per partition processed since the last commit.
    positions: BTreeMap<(String, i32), i64>,
    emit: Emit,
    dead_lettered: u64,
    /// Records processed since the last commit.
    pub(crate) uncommitted: usize,
}

impl<P: Processor> Tasks<P> {
    pub(crate) fn new(processor: Arc<P>, pipeline: &str, changelog: String, dlq: String) -> Self {
        Tasks {
            processor,
            pipeline: pipeline.to_owned(),
            changelog,
            dlq,
            stores: BTreeMap::new(),
            committed: BTreeMap::new(),
            positions: BTreeMap::new(),
            emit: Emit::default(),
            dead_lettered: 0,
            uncommitted: 0,
        }
    }

    /// The store of task `partition` (empty when new).
    pub(crate) fn store(&mut self, partition: i32) -> &mut Store<P::State> {
        self.stores.entry(partition).or_default()
    }

    /// The stores, by task.
    pub(crate) fn stores(&self) -> &BTreeMap<i32, Store<P::State>> {
        &self.stores
    }

    /// Processes one record. A value that does not decode is dead-lettered (in the same
    /// commit); one that may decode later is handed back (`Err`) untouched.
    pub(crate) fn process(
        &mut self,
        codec: &Codec,
        record: Consumed<'_>,
    ) -> Result<(), Undecodable> {
        let bytes = record.value.unwrap_or_default();
        match self.processor.decode(codec, record.topic, bytes) {
            Ok(value) => {
                let store = self.stores.entry(record.partition).or_default();
                self.processor.process(
                    Record {
                        topic: record.topic,
                        partition: record.partition,
                        offset: record.offset,
                        key: record.key,
                        timestamp: record.timestamp,
                        bytes,
                        value,
                    },
                    store,
                    &mut self.emit,
                );
            }
            Err(e) if e.retryable => return Err(e),
            Err(e) => self.dead_letter(record, &e.reason),
        }
        self.positions.insert(
            (record.topic.to_owned(), record.partition),
            record.offset + 1,
        );
        self.uncommitted += 1;
        Ok(())
    }

    fn dead_letter(&mut self, record: Consumed<'_>, reason: &str) {
        tracing::warn!(
            topic = record.topic, partition = record.partition, offset = record.offset,
            to = %self.dlq, reason, "record failed to decode; dead-lettered"
        );
        let raw = RawRecord {
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.map(<[u8]>::to_vec),
            payload: record.value.map(<[u8]>::to_vec),
            headers: record.headers.to_vec(),
        };
        let letter = DeadLetter {
            pipeline: self.pipeline.clone(),
            failure: Failure::permanent(format!("decoding: {reason}")),
            attempts: 1,
            now_ms: now_ms(),
            record: raw,
        };
        self.emit.send(Output {
            topic: self.dlq.clone(),
            key: letter.record.key.clone(),
            partition: None,
            value: letter.record.payload.clone(),
            timestamp: None,
            headers: Some(letter.headers(None)),
        });
        self.dead_lettered += 1;
    }

    /// Flushes every task and collects what the commit sends.
    pub(crate) fn prepare(&mut self) -> Prepared {
        for store in self.stores.values_mut() {
            self.processor.flush(store, &mut self.emit);
        }
        let mut changelog = Vec::new();
        for (partition, store) in &self.stores {
            for (key, value) in store.changes() {
                changelog.push(Output {
                    topic: self.changelog.clone(),
                    key: Some(key),
                    partition: Some(*partition),
                    value,
                    timestamp: None,
                    headers: None,
                });
            }
        }
        let emit = std::mem::take(&mut self.emit);
        Prepared {
            outputs: emit.records,
            changelog,
            offsets: self
                .positions
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect(),
            late: emit.late,
            dead_lettered: std::mem::take(&mut self.dead_lettered),
        }
    }

    /// The prepared commit is durable.
    pub(crate) fn committed(&mut self) {
        for store in self.stores.values_mut() {
            store.commit();
        }
        self.committed.extend(std::mem::take(&mut self.positions));
        self.uncommitted = 0;
    }

    /// The commit (or the records since the last one) is abandoned: the state is the last
    /// commit's again. Returns where each partition processed since then must be read from
    /// again (its last committed offset; `None`: never committed here, ask the group).
    pub(crate) fn aborted(&mut self) -> Vec<(String, i32, Option<i64>)> {
        for store in self.stores.values_mut() {
            store.abort();
        }
        self.emit = Emit::default();
        self.dead_lettered = 0;
        self.uncommitted = 0;
        std::mem::take(&mut self.positions)
            .into_keys()
            .map(|(t, p)| {
                let at = self.committed.get(&(t.clone(), p)).copied();
                (t, p, at)
            })
            .collect()
    }

    /// Applies changelog records read back to task `partition`'s store.
    pub(crate) fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        self.stores
            .entry(partition)
            .or_default()
            .restore(key, value)
    }

    /// Tasks that moved to another instance: their stores go (a new owner restores them
    /// from the changelog).
    pub(crate) fn revoke(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.stores.remove(p);
        }
        self.committed.retain(|(_, p), _| !partitions.contains(p));
    }
}
