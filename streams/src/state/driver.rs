//! [`StateDriver`]: runs a [`Processor`] in memory, commit by commit, for unit tests of
//! stateful operators and of their recovery: what a commit sends, what the changelog
//! holds, and the state a fresh instance restores from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anineplus_schemas::Codec;
use serde::Serialize;

use super::processor::{Output, Processor};
use super::store::Store;
use super::tasks::{Consumed, Tasks};

/// A processor run in memory (see the module header).
pub struct StateDriver<P: Processor> {
    tasks: Tasks<P>,
    codec: Codec,
    next: BTreeMap<(String, i32), i64>,
    changelog: Vec<Output>,
    outputs: Vec<Output>,
    late: u64,
}

impl<P: Processor> StateDriver<P> {
    /// A driver of `processor` (Avro inputs decode through `codec`'s prepared schemas).
    pub fn new(processor: P, codec: Codec) -> Self {
        let tasks = Tasks::new(
            Arc::new(processor),
            "test",
            "changelog".to_owned(),
            "test.dlq".to_owned(),
        );
        StateDriver {
            tasks,
            codec,
            next: BTreeMap::new(),
            changelog: Vec::new(),
            outputs: Vec::new(),
            late: 0,
        }
    }

    /// Feeds one record of `value` bytes to task `partition`.
    pub fn pipe(&mut self, topic: &str, partition: i32, key: &str, value: &[u8], timestamp: i64) {
        let offset = self.next.entry((topic.to_owned(), partition)).or_insert(0);
        let at = *offset;
        *offset += 1;
        let record = Consumed {
            topic,
            partition,
            offset: at,
            key: Some(key.as_bytes()),
            value: Some(value),
            timestamp,
            headers: &[],
        };
        if let Err(e) = self.tasks.process(&self.codec, record) {
            panic!("a retryable decode failure in the driver: {}", e.reason);
        }
    }

    /// Feeds one record of `value` as JSON (an internal topic's record).
    pub fn pipe_json(
        &mut self,
        topic: &str,
        partition: i32,
        key: &str,
        value: &impl Serialize,
        timestamp: i64,
    ) {
        let bytes = serde_json::to_vec(value).expect("values serialise");
        self.pipe(topic, partition, key, &bytes, timestamp);
    }

    /// Commits: flushes every task; returns the records this commit sent.
    pub fn commit(&mut self) -> Vec<Output> {
        let prepared = self.tasks.prepare();
        self.tasks.committed();
        self.late += prepared.late;
        self.changelog.extend(prepared.changelog);
        self.outputs.extend(prepared.outputs.iter().cloned());
        prepared.outputs
    }

    /// Abandons what was processed since the last commit (an aborted transaction).
    pub fn abort(&mut self) {
        self.tasks.aborted();
    }

    /// A fresh instance of `processor` with every task restored from the changelog, as a
    /// restarted or reassigned instance starts; what was not committed is gone.
    pub fn restart(self, processor: P) -> Self {
        let mut tasks = Tasks::new(
            Arc::new(processor),
            "test",
            "changelog".to_owned(),
            "test.dlq".to_owned(),
        );
        for record in &self.changelog {
            tasks
                .restore(
                    record.partition.expect("changelog records name their task"),
                    record.key.as_deref().unwrap_or_default(),
                    record.value.as_deref(),
                )
                .expect("the driver's changelog restores");
        }
        StateDriver {
            tasks,
            codec: self.codec,
            next: self.next,
            changelog: self.changelog,
            outputs: self.outputs,
            late: self.late,
        }
    }

    /// The store of task `partition`.
    pub fn store(&mut self, partition: i32) -> &Store<P::State> {
        self.tasks.store(partition)
    }

    /// Every record committed so far, in order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// The changelog records committed so far.
    pub fn changelog(&self) -> &[Output] {
        &self.changelog
    }

    /// Late records counted so far.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Records dead-lettered by the last commit are among [`StateDriver::outputs`], to the
    /// topic `test.dlq`.
    pub fn dead_letters(&self) -> Vec<&Output> {
        self.outputs
            .iter()
            .filter(|o| o.topic == "test.dlq")
            .collect()
    }

    /// Task count.
    pub fn tasks(&self) -> usize {
        self.tasks.stores().len()
    }
}
