//! [`Store`]: the keyed state of one task (one input partition), in memory, with the
//! writes since the last commit kept apart so that an aborted transaction leaves the
//! committed state as it was.
//!
//! Every write is pending until [`Store::commit`]; reads see pending writes first. At a
//! commit the pending writes become the changelog records of the commit
//! ([`Store::changes`]: one record per key written, its final value or a tombstone), which
//! the runtime produces in the same transaction as the commit's outputs and offsets.
//! [`Store::abort`] drops them. [`Store::restore`] applies changelog records read back.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value a store can hold: written to its changelog as JSON.
pub trait StateValue: Serialize + DeserializeOwned + Clone + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> StateValue for T {}

/// The changelog key of a task's stream time (state keys are prefixed `s:`).
pub(crate) const STREAM_TIME_KEY: &[u8] = b"t";

/// The keyed state of one task (see the module header).
#[derive(Debug, Clone)]
pub struct Store<V> {
    committed: BTreeMap<String, V>,
    /// Writes since the last commit: a value, or `None` for a delete.
    pending: BTreeMap<String, Option<V>>,
    /// The task's stream time (largest event time seen), committed and pending.
    stream_time: i64,
    pending_stream_time: Option<i64>,
}

impl<V> Default for Store<V> {
    fn default() -> Self {
        Store {
            committed: BTreeMap::new(),
            pending: BTreeMap::new(),
            stream_time: i64::MIN,
            pending_stream_time: None,
        }
    }
}

impl<V: StateValue> Store<V> {
    /// The value of `key`, pending writes first.
    pub fn get(&self, key: &str) -> Option<&V> {
        match self.pending.get(key) {
            Some(pending) => pending.as_ref(),
            None => self.committed.get(key),
        }
    }

    /// Writes `value` under `key`.
    pub fn put(&mut self, key: impl Into<String>, value: V) {
        self.pending.insert(key.into(), Some(value));
    }

    /// Deletes `key` (a tombstone in the changelog).
    pub fn delete(&mut self, key: &str) {
        if self.get(key).is_some() {
            self.pending.insert(key.to_owned(), None);
        }
    }

    /// The keys in `[from, to)` with their values, pending writes applied, in key order.
    pub fn range(&self, from: &str, to: &str) -> Vec<(String, V)> {
        let mut out: BTreeMap<String, V> = self
            .committed
            .range(from.to_owned()..to.to_owned())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in self.pending.range(from.to_owned()..to.to_owned()) {
            match v {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        out.into_iter().collect()
    }

    /// Every key with its value (pending writes applied), in key order.
    pub fn entries(&self) -> Vec<(String, V)> {
        self.range("", "\u{10FFFF}")
    }

    /// The keys written since the last commit, in key order.
    pub fn dirty(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }

    /// Keys committed or pending.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The task's stream time: the largest event time it has seen (`i64::MIN` before any).
    pub fn stream_time(&self) -> i64 {
        self.pending_stream_time.unwrap_or(self.stream_time)
    }

    /// Advances the stream time to `at` if it is later.
    pub fn observe_time(&mut self, at: i64) {
        if at > self.stream_time() {
            self.pending_stream_time = Some(at);
        }
    }

    /// Whether anything was written since the last commit.
    pub fn has_changes(&self) -> bool {
        !self.pending.is_empty() || self.pending_stream_time.is_some()
    }

    /// The changelog records of the pending writes: `(key, Some(json))` or a tombstone.
    pub(crate) fn changes(&self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .pending
            .iter()
            .map(|(k, v)| {
                let key = format!("s:{k}").into_bytes();
                let value = v
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).expect("state values serialise"));
                (key, value)
            })
            .collect();
        if let Some(t) = self.pending_stream_time {
            out.push((STREAM_TIME_KEY.to_vec(), Some(t.to_string().into_bytes())));
        }
        out
    }

    /// The pending writes become the committed state.
    pub(crate) fn commit(&mut self) {
        for (k, v) in std::mem::take(&mut self.pending) {
            match v {
                Some(v) => self.committed.insert(k, v),
                None => self.committed.remove(&k),
            };
        }
        if let Some(t) = self.pending_stream_time.take() {
            self.stream_time = t;
        }
    }

    /// Drops the pending writes: the state is the last commit's again.
    pub(crate) fn abort(&mut self) {
        self.pending.clear();
        self.pending_stream_time = None;
    }

    /// Applies one changelog record read back (a later record of a key replaces an earlier
    /// one; a tombstone deletes). A record this store cannot read is an error: a changelog
    /// written by another version of the pipeline's state, to be reset, not guessed at.
    pub(crate) fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if key == STREAM_TIME_KEY {
            if let Some(t) = value
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
            {
                self.stream_time = t;
            }
            return Ok(());
        }
        let key = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix("s:"))
            .ok_or_else(|| {
                format!(
                    "changelog key {:?} is not a state key",
                    String::from_utf8_lossy(key)
                )
            })?;
        match value {
            None => {
                self.committed.remove(key);
            }
            Some(v) => {
                let v: V = serde_json::from_slice(v)
                    .map_err(|e| format!("changelog value of {key:?}: {e}"))?;
                self.committed.insert(key.to_owned(), v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_writes_are_read_first_and_dropped_by_an_abort() {
        let mut store = Store::<i64>::default();
        store.put("a", 1);
        store.commit();
        store.put("a", 2);
        store.put("b", 3);
        store.delete("a");
        assert_eq!(store.get("a"), None);
        assert_eq!(store.get("b"), Some(&3));
        store.abort();
        assert_eq!(store.get("a"), Some(&1));
        assert_eq!(store.get("b"), None);
        assert!(!store.has_changes());
    }

    #[test]
    fn a_commit_gives_one_changelog_record_per_key_and_restores_to_the_same_state() {
        let mut store = Store::<i64>::default();
        store.put("a", 1);
        store.put("a", 2);
        store.put("b", 5);
        store.observe_time(1_000);
        store.observe_time(900);
        let changes = store.changes();
        assert_eq!(changes.len(), 3, "a, b and the stream time: {changes:?}");
        store.commit();
        store.delete("b");
        let tombstones = store.changes();
        assert_eq!(tombstones, vec![(b"s:b".to_vec(), None)]);
        store.commit();

        let mut restored = Store::<i64>::default();
        for (k, v) in changes.iter().chain(&tombstones) {
            restored.restore(k, v.as_deref()).unwrap();
        }
        assert_eq!(restored.entries(), store.entries());
        assert_eq!(restored.stream_time(), 1_000);
        assert!(restored.restore(b"x", Some(b"1")).is_err());
        assert!(restored.restore(b"s:a", Some(b"\"text\"")).is_err());
    }

    #[test]
    fn ranges_apply_pending_writes() {
        let mut store = Store::<i64>::default();
        store.put("w|1", 1);
        store.put("w|2", 2);
        store.commit();
        store.put("w|3", 3);
        store.delete("w|1");
        let keys: Vec<_> = store
            .range("w|", "w}")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["w|2", "w|3"]);
        assert_eq!(store.len(), 2);
    }
}
