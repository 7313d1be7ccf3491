//! The runtime's own stateful operators, as [`Processor`]s over a keyed topic whose
//! values are JSON (the runtime's internal topics: a step upstream keyed them with
//! [`Output::json`]).
//!
//! [`Aggregate`] is `group_by_key` followed by `aggregate` (an initial value and an adder),
//! `count` or `reduce`, optionally over [`Windows`] with a grace period, emitting on change
//! (every commit, the keys that changed) or on window close. The record's key is the
//! group's key; its Kafka timestamp is its event time.

use std::marker::PhantomData;
use std::sync::Arc;

use anineplus_schemas::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::processor::{Emit, Output, Processor, Record, Undecodable};
use super::store::{StateValue, Store};
use super::window::Windows;

/// When an aggregate sends its results on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// At every commit, for each key (and window) that changed: its latest value.
    OnChange,
    /// Once per window, when it closes (windowed aggregates only; others emit on change).
    OnClose,
}

/// One result of an aggregate, handed to its result function.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregated<'a, S> {
    /// The group's key.
    pub key: &'a str,
    /// The window `[start, end)`, for a windowed aggregate.
    pub window: Option<(i64, i64)>,
    /// The aggregate.
    pub value: &'a S,
    /// Whether the window is closed (a final value).
    pub closed: bool,
    /// The task's stream time.
    pub stream_time: i64,
}

type Adder<A, S> = Arc<dyn Fn(S, &A) -> S + Send + Sync>;
type Results<S> = Arc<dyn Fn(&Aggregated<'_, S>) -> Vec<Output> + Send + Sync>;

/// `group_by_key` + `aggregate` / `count` / `reduce` (see the module header).
pub struct Aggregate<A, S> {
    store: String,
    input: String,
    outputs: Vec<String>,
    windows: Option<Windows>,
    late_topic: Option<String>,
    mode: EmitMode,
    init: Arc<dyn Fn() -> S + Send + Sync>,
    add: Adder<A, S>,
    results: Results<S>,
    input_type: PhantomData<fn(A)>,
}

/// Order-preserving text of a window start (negative starts too).
fn start_key(start: i64) -> String {
    format!("{:016x}", (start as u64) ^ (1 << 63))
}

fn parse_start(text: &str) -> Option<i64> {
    u64::from_str_radix(text, 16)
        .ok()
        .map(|u| (u ^ (1 << 63)) as i64)
}

impl<A: DeserializeOwned + 'static, S: StateValue> Aggregate<A, S> {
    /// Aggregates the values of `input` per key in store `store`: `init()` then `add` for
    /// each value. Results go nowhere until [`Aggregate::to`].
    pub fn new(
        store: &str,
        input: &str,
        init: impl Fn() -> S + Send + Sync + 'static,
        add: impl Fn(S, &A) -> S + Send + Sync + 'static,
    ) -> Self {
        Aggregate {
            store: store.to_owned(),
            input: input.to_owned(),
            outputs: Vec::new(),
            windows: None,
            late_topic: None,
            mode: EmitMode::OnChange,
            init: Arc::new(init),
            add: Arc::new(add),
            results: Arc::new(|_| Vec::new()),
            input_type: PhantomData,
        }
    }

    /// Aggregates per window of event time.
    pub fn windowed(mut self, windows: Windows) -> Self {
        self.windows = Some(windows);
        self
    }

    /// Sends late records (after their window closed) to `topic`, as they came.
    pub fn late_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_owned());
        self.outputs.push(topic.to_owned());
        self
    }

    /// When results are sent on.
    pub fn emit(mut self, mode: EmitMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sends each result as the records `results` makes of it, to `topics`.
    pub fn to(
        mut self,
        topics: &[&str],
        results: impl Fn(&Aggregated<'_, S>) -> Vec<Output> + Send + Sync + 'static,
    ) -> Self {
        self.outputs.extend(topics.iter().map(|t| (*t).to_owned()));
        self.results = Arc::new(results);
        self
    }

    fn key_of(&self, key: &str, start: Option<i64>) -> String {
        match start {
            Some(start) => format!("w|{}|{key}", start_key(start)),
            None => format!("k|{key}"),
        }
    }

    fn result(&self, stored: &str, value: &S, stream_time: i64, out: &mut Emit) {
        let (key, window) = match stored.strip_prefix("w|") {
            Some(rest) => {
                let (start, key) = rest.split_once('|').unwrap_or((rest, ""));
                let start = parse_start(start).unwrap_or_default();
                let w = self
                    .windows
                    .expect("windowed keys only in windowed aggregates");
                (key, Some((start, w.end(start))))
            }
            None => (stored.strip_prefix("k|").unwrap_or(stored), None),
        };
        let closed = match (self.windows, window) {
            (Some(w), Some((start, _))) => w.is_closed(start, stream_time),
            _ => false,
        };
        for record in (self.results)(&Aggregated {
            key,
            window,
            value,
            closed,
            stream_time,
        }) {
            out.send(record);
        }
    }
}

/// `count`: the number of records per key (and window).
pub fn count(store: &str, input: &str) -> Aggregate<serde::de::IgnoredAny, i64> {
    Aggregate::new(store, input, || 0, |n, _| n + 1)
}

/// `reduce`: the values per key (and window) combined with `combine`, the first as it is.
pub fn reduce<A: StateValue + DeserializeOwned>(
    store: &str,
    input: &str,
    combine: impl Fn(A, &A) -> A + Send + Sync + 'static,
) -> Aggregate<A, Option<A>> {
    Aggregate::new(
        store,
        input,
        || None,
        move |acc: Option<A>, v: &A| {
            Some(match acc {
                None => v.clone(),
                Some(acc) => combine(acc, v),
            })
        },
    )
}

impl<A, S> Processor for Aggregate<A, S>
where
    A: DeserializeOwned + Send + 'static,
    S: StateValue + Serialize,
{
    type Input = A;
    type State = S;

    fn store(&self) -> &str {
        &self.store
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.input.clone()]
    }

    fn outputs(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn decode(&self, _codec: &Codec, _topic: &str, value: &[u8]) -> Result<A, Undecodable> {
        serde_json::from_slice(value).map_err(|e| Undecodable::permanent(format!("JSON: {e}")))
    }

    fn process(&self, record: Record<'_, A>, store: &mut Store<S>, out: &mut Emit) {
        let key = record.key_str();
        let Some(windows) = self.windows else {
            let stored = self.key_of(&key, None);
            let current = store.get(&stored).cloned().unwrap_or_else(|| (self.init)());
            store.put(stored, (self.add)(current, &record.value));
            store.observe_time(record.timestamp);
            return;
        };
        store.observe_time(record.timestamp);
        let now = store.stream_time();
        let mut taken = false;
        for start in windows.starts(record.timestamp) {
            if windows.is_closed(start, now) {
                continue;
            }
            taken = true;
            let stored = self.key_of(&key, Some(start));
            let current = store.get(&stored).cloned().unwrap_or_else(|| (self.init)());
            store.put(stored, (self.add)(current, &record.value));
        }
        if !taken {
            out.late();
            if let Some(topic) = &self.late_topic {
                out.send(Output {
                    topic: topic.clone(),
                    key: record.key.map(<[u8]>::to_vec),
                    partition: None,
                    value: Some(record.bytes.to_vec()),
                    timestamp: Some(record.timestamp),
                    headers: None,
                });
            }
        }
    }

    fn flush(&self, store: &mut Store<S>, out: &mut Emit) {
        let now = store.stream_time();
        let closed_mode = self.mode == EmitMode::OnClose && self.windows.is_some();
        if !closed_mode {
            let dirty: Vec<String> = store.dirty().map(str::to_owned).collect();
            for key in dirty {
                if let Some(value) = store.get(&key).cloned() {
                    self.result(&key, &value, now, out);
                }
            }
        }
        // Closed windows leave the store (their last value was sent; later records are late).
        if let Some(windows) = self.windows {
            for (key, value) in store.range("w|", "w}") {
                let start = key
                    .strip_prefix("w|")
                    .and_then(|r| r.split_once('|'))
                    .and_then(|(s, _)| parse_start(s));
                let Some(start) = start else { continue };
                if !windows.is_closed(start, now) {
                    break; // keys are in start order
                }
                if closed_mode {
                    self.result(&key, &value, now, out);
                }
                store.delete(&key);
            }
        }
    }
}

/// How a join's input decodes one value of its topic.
pub type Decode<T> = Arc<dyn Fn(&Codec, &[u8]) -> Result<T, Undecodable> + Send + Sync>;

/// Values of a topic as JSON (the runtime's internal topics).
pub fn json<T: DeserializeOwned + 'static>() -> Decode<T> {
    Arc::new(|_codec: &Codec, bytes: &[u8]| {
        serde_json::from_slice(bytes).map_err(|e| Undecodable::permanent(format!("JSON: {e}")))
    })
}

/// Values of a topic as Avro through the registry, in `V`'s schema.
pub fn avro<V: anineplus_schemas::TopicValue + 'static>() -> Decode<V> {
    Arc::new(|codec: &Codec, bytes: &[u8]| Ok(codec.decode_prepared::<V>(bytes)?))
}

/// One side of a join: a record of the table's topic or of the stream's.
#[derive(Debug)]
pub enum Side<T, S> {
    /// A table record: the key's latest value (`None`: deleted).
    Table(Option<T>),
    /// A stream record.
    Stream(S),
}

type Joiner<S, T> = Arc<dyn Fn(&str, S, Option<&T>) -> Vec<Output> + Send + Sync>;

/// A table from a topic (KTable: the latest value of each key, an empty value deleting
/// it) and a stream joined to it on the key (a left join: each stream record meets the
/// table's value of its key, or none). Both topics must be co-partitioned; records are
/// processed in the order they are consumed, so a stream record sees the table as of the
/// table records of its task consumed before it (no synchronisation on timestamps).
pub struct Join<T, S> {
    store: String,
    table: String,
    stream: String,
    outputs: Vec<String>,
    schemas: Vec<(String, anineplus_schemas::Topic)>,
    decode_table: Decode<T>,
    decode_stream: Decode<S>,
    joiner: Joiner<S, T>,
}

impl<T: StateValue, S: 'static> Join<T, S> {
    /// The table of `table` (decoded with `decode_table`) in store `store`, joined with
    /// the stream of `stream`; `joiner` makes the records of each stream record, sent to
    /// `outputs`.
    pub fn new(
        store: &str,
        (table, decode_table): (&str, Decode<T>),
        (stream, decode_stream): (&str, Decode<S>),
        outputs: &[&str],
        joiner: impl Fn(&str, S, Option<&T>) -> Vec<Output> + Send + Sync + 'static,
    ) -> Self {
        Join {
            store: store.to_owned(),
            table: table.to_owned(),
            stream: stream.to_owned(),
            outputs: outputs.iter().map(|t| (*t).to_owned()).collect(),
            schemas: Vec::new(),
            decode_table,
            decode_stream,
            joiner: Arc::new(joiner),
        }
    }

    /// Says that `topic`'s values are Avro of `schema` (the runtime then fetches writer
    /// schemas it does not know; see [`Processor::schema`]).
    pub fn avro_topic(mut self, topic: &str, schema: anineplus_schemas::Topic) -> Self {
        self.schemas.push((topic.to_owned(), schema));
        self
    }
}

impl<T: StateValue, S: Send + 'static> Processor for Join<T, S> {
    type Input = Side<T, S>;
    type State = T;

    fn store(&self) -> &str {
        &self.store
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.table.clone(), self.stream.clone()]
    }

    fn outputs(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn schema(&self, topic: &str) -> Option<anineplus_schemas::Topic> {
        self.schemas
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, s)| *s)
    }

    fn decode(&self, codec: &Codec, topic: &str, value: &[u8]) -> Result<Side<T, S>, Undecodable> {
        if topic == self.table {
            if value.is_empty() {
                return Ok(Side::Table(None));
            }
            Ok(Side::Table(Some((self.decode_table)(codec, value)?)))
        } else {
            Ok(Side::Stream((self.decode_stream)(codec, value)?))
        }
    }

    fn process(&self, record: Record<'_, Side<T, S>>, store: &mut Store<T>, out: &mut Emit) {
        let key = record.key_str();
        store.observe_time(record.timestamp);
        match record.value {
            Side::Table(Some(value)) => store.put(key, value),
            Side::Table(None) => store.delete(&key),
            Side::Stream(value) => {
                for output in (self.joiner)(&key, value, store.get(&key)) {
                    out.send(output);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::StateDriver;

    const H: i64 = 3_600_000;
    const MIN: i64 = 60_000;

    fn codec() -> Codec {
        Codec::new("http://127.0.0.1:1")
    }

    /// `(key, window start, count)` of each result record.
    fn counts(outputs: &[Output]) -> Vec<(String, i64, i64)> {
        outputs
            .iter()
            .filter(|o| o.topic == "out")
            .map(|o| serde_json::from_slice(o.value.as_deref().unwrap()).unwrap())
            .collect()
    }

    fn hourly() -> Aggregate<serde::de::IgnoredAny, i64> {
        count("counts", "in")
            .windowed(Windows::tumbling(
                Duration::from_secs(3600),
                Duration::from_secs(300),
            ))
            .late_to("late")
            .to(&["out"], |r| {
                let (start, _) = r.window.unwrap();
                vec![Output::json("out", r.key, &(r.key, start, *r.value), start)]
            })
    }

    #[test]
    fn counts_per_key_emit_the_changed_keys_once_per_commit_and_survive_a_restart() {
        let table = count("counts", "in").to(&["out"], |r| {
            vec![Output::json("out", r.key, &(r.key, 0, *r.value), 0)]
        });
        let mut driver = StateDriver::new(table, codec());
        for key in ["a", "b", "a"] {
            driver.pipe_json("in", 0, key, &1, 10);
        }
        let first = counts(&driver.commit());
        assert_eq!(first, [("a".into(), 0, 2), ("b".into(), 0, 1)]);
        assert!(driver.commit().is_empty(), "nothing changed");
        let mut driver = driver.restart(count("counts", "in").to(&["out"], |r| {
            vec![Output::json("out", r.key, &(r.key, 0, *r.value), 0)]
        }));
        driver.pipe_json("in", 0, "a", &1, 20);
        assert_eq!(counts(&driver.commit()), [("a".into(), 0, 3)]);
    }

    #[test]
    fn late_records_inside_the_grace_update_their_window_and_after_it_are_counted_and_sent_aside() {
        let mut driver = StateDriver::new(hourly(), codec());
        driver.pipe_json("in", 0, "x", &1, 10 * MIN);
        driver.pipe_json("in", 0, "x", &1, H + 2 * MIN); // stream time: 1 h 2 min
        driver.pipe_json("in", 0, "x", &1, 50 * MIN); // late, inside the 5 min grace
        assert_eq!(
            counts(&driver.commit()),
            [("x".into(), 0, 2), ("x".into(), H, 1)]
        );
        driver.pipe_json("in", 0, "x", &1, H + 6 * MIN); // closes the first window
        driver.pipe_json("in", 0, "x", &1, 30 * MIN); // after the grace: late
        let out = driver.commit();
        assert_eq!(counts(&out), [("x".into(), H, 2)]);
        assert_eq!(driver.late(), 1);
        let aside: Vec<_> = out.iter().filter(|o| o.topic == "late").collect();
        assert_eq!(aside.len(), 1, "{out:?}");
        assert_eq!(aside[0].value.as_deref(), Some(&b"1"[..]));
        assert_eq!(aside[0].timestamp, Some(30 * MIN));
        let windows: Vec<_> = driver
            .store(0)
            .entries()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            windows.len(),
            1,
            "the closed window left the store: {windows:?}"
        );
    }

    #[test]
    fn on_close_emits_each_window_once_when_it_closes() {
        let mut driver = StateDriver::new(hourly().emit(EmitMode::OnClose), codec());
        driver.pipe_json("in", 0, "x", &1, MIN);
        driver.pipe_json("in", 0, "x", &1, 2 * MIN);
        assert!(counts(&driver.commit()).is_empty());
        driver.pipe_json("in", 0, "y", &1, H + 5 * MIN);
        assert_eq!(counts(&driver.commit()), [("x".into(), 0, 2)]);
    }

    #[test]
    fn an_abort_drops_the_state_and_outputs_since_the_last_commit() {
        let mut driver = StateDriver::new(hourly(), codec());
        driver.pipe_json("in", 0, "x", &1, MIN);
        driver.commit();
        driver.pipe_json("in", 0, "x", &1, MIN);
        driver.pipe_json("in", 1, "x", &1, MIN);
        driver.abort();
        driver.pipe_json("in", 0, "x", &1, MIN);
        assert_eq!(counts(&driver.commit()), [("x".into(), 0, 2)]);
        assert_eq!(driver.tasks(), 2, "task 1 exists, empty");
        assert!(driver.store(1).is_empty());
    }

    #[test]
    fn a_value_that_does_not_decode_is_dead_lettered_with_its_reason() {
        let mut driver = StateDriver::new(hourly(), codec());
        driver.pipe("in", 0, "x", b"{not json", MIN);
        driver.pipe_json("in", 0, "x", &1, MIN);
        let out = driver.commit();
        assert_eq!(counts(&out), [("x".into(), 0, 1)]);
        let letters = driver.dead_letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].value.as_deref(), Some(&b"{not json"[..]));
    }

    #[test]
    fn a_stream_record_meets_the_tables_latest_value_of_its_key() {
        let join = Join::new(
            "titles",
            ("titles", json::<String>()),
            ("comments", json::<String>()),
            &["out"],
            |key, comment, title: Option<&String>| {
                let title = title.cloned().unwrap_or_else(|| "?".to_owned());
                vec![Output::json(
                    "out",
                    key,
                    &(key, 0, format!("{comment} on {title}").len() as i64),
                    0,
                )]
            },
        );
        let mut driver = StateDriver::new(join, codec());
        driver.pipe_json("comments", 0, "a1", &"early", 1);
        driver.pipe_json("titles", 0, "a1", &"Frieren", 2);
        driver.pipe_json("comments", 0, "a1", &"nice", 3);
        driver.pipe_json("titles", 0, "a1", &"Sousou no Frieren", 4);
        driver.pipe_json("comments", 0, "a1", &"nice", 5);
        driver.pipe("titles", 0, "a1", b"", 6);
        driver.pipe_json("comments", 0, "a1", &"gone", 7);
        let lengths: Vec<i64> = counts(&driver.commit())
            .into_iter()
            .map(|(_, _, n)| n)
            .collect();
        assert_eq!(
            lengths,
            [
                "early on ?".len() as i64,
                "nice on Frieren".len() as i64,
                "nice on Sousou no Frieren".len() as i64,
                "gone on ?".len() as i64,
            ]
        );
        let mut driver = driver.restart(Join::new(
            "titles",
            ("titles", json::<String>()),
            ("comments", json::<String>()),
            &["out"],
            |_, _, _: Option<&String>| Vec::new(),
        ));
        assert!(driver.store(0).is_empty(), "the tombstone restored too");
    }

    #[test]
    fn reduce_keeps_the_combined_value_per_key() {
        let max = reduce("max", "in", |a: i64, b: &i64| a.max(*b)).to(&["out"], |r| {
            vec![Output::json("out", r.key, &(r.key, 0, r.value.unwrap()), 0)]
        });
        let mut driver = StateDriver::new(max, codec());
        for v in [3, 9, 4] {
            driver.pipe_json("in", 2, "k", &v, 0);
        }
        assert_eq!(counts(&driver.commit()), [("k".into(), 0, 9)]);
    }
}
