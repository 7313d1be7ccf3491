//! The topology builder: typed sources, stateless operators, one sink.
//!
//! A [`Stream<T>`] is a set of source topics, each with a step that turns one consumed
//! value into zero or more `T`s: the Avro decode of the topic's type, followed by the
//! operators applied so far (`map`, `filter`, `flat_map`, `branch`). Streams merge once
//! mapped to a common type (a topic in both streams gives the outputs of both, as after a
//! `branch`), and [`Stream::to`] closes the topology with a [`Sink`]. Operators are per
//! record, so a record's outputs depend on it alone and the runtime can settle (and store
//! the offset of) each consumed record independently.
//!
//! Not here yet: keyed state (aggregations, joins) needs state stores restored from
//! changelog topics, so that a restarted instance resumes with the state its committed
//! offsets imply; until then, state lives in the sink (versioned documents, scripts guarded
//! per source, as the search indexer's `denormalise` does).

use std::collections::HashMap;
use std::sync::Arc;

use anineplus_schemas::{Codec, DecodeError, Topic, TopicValue};

use crate::sink::Sink;

type Step<T> = Arc<dyn Fn(&Codec, &Input<'_>) -> Result<Vec<T>, DecodeError> + Send + Sync>;

/// Where a consumed record first entered the pipeline: its own coordinates, or for a
/// record of a retry topic (or a replayed dead letter) the original ones. Stable across
/// redeliveries, retries and replays: what a sink derives an idempotent id from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coordinates<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// What a step gets of one record: its value bytes and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The framed value.
    pub bytes: &'a [u8],
    /// The record's original coordinates.
    pub at: Coordinates<'a>,
}

/// A value with the coordinates of the record it was decoded from (see
/// [`Stream::topic_located`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Located<V> {
    /// The source topic.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The value.
    pub value: V,
}

/// One source topic and what becomes of its records: the schema its values are written
/// with, and the step turning one value into the stream's items.
pub struct Binding<T> {
    /// The schema the topic's values are written with.
    pub(crate) schema: Topic,
    pub(crate) step: Step<T>,
}

/// A stream of `T` fed by one or more topics.
pub struct Stream<T> {
    bindings: HashMap<String, Binding<T>>,
}

impl<V: TopicValue + Send + 'static> Stream<V> {
    /// The values of Kafka topic `name`, decoded as `V` (the registry's writer schema
    /// resolved into `V`'s schema), e.g. `Stream::<Envelope<AnimeData>>::topic("anime")`.
    pub fn topic(name: impl Into<String>) -> Self {
        let step: Step<V> = Arc::new(|codec: &Codec, input: &Input<'_>| {
            codec.decode_prepared::<V>(input.bytes).map(|v| vec![v])
        });
        Stream {
            bindings: HashMap::from([(
                name.into(),
                Binding {
                    schema: V::TOPIC,
                    step,
                },
            )]),
        }
    }

    /// The values of topic `name` as [`Stream::topic`], each with the coordinates of its
    /// record (the original ones for a retried or replayed record): for sinks whose ids
    /// come from where a record is, not from what it says.
    pub fn topic_located(name: impl Into<String>) -> Stream<Located<V>> {
        let name: String = name.into();
        let shared: Arc<str> = Arc::from(name.as_str());
        let step: Step<Located<V>> = Arc::new(move |codec: &Codec, input: &Input<'_>| {
            let value = codec.decode_prepared::<V>(input.bytes)?;
            let topic = if *shared == *input.at.topic {
                shared.clone()
            } else {
                Arc::from(input.at.topic)
            };
            Ok(vec![Located {
                topic,
                partition: input.at.partition,
                offset: input.at.offset,
                value,
            }])
        });
        Stream {
            bindings: HashMap::from([(
                name,
                Binding {
                    schema: V::TOPIC,
                    step,
                },
            )]),
        }
    }
}

impl<T: Send + 'static> Stream<T> {
    /// Applies `f` to every value, keeping zero or more outputs of each.
    pub fn flat_map<U, I, F>(self, f: F) -> Stream<U>
    where
        U: Send + 'static,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let bindings = self
            .bindings
            .into_iter()
            .map(|(name, b)| {
                let f = f.clone();
                let inner = b.step;
                let step: Step<U> = Arc::new(move |codec: &Codec, input: &Input<'_>| {
                    Ok(inner(codec, input)?
                        .into_iter()
                        .flat_map(|t| f(t))
                        .collect())
                });
                (
                    name,
                    Binding {
                        schema: b.schema,
                        step,
                    },
                )
            })
            .collect();
        Stream { bindings }
    }

    /// Applies `f` to every value.
    pub fn map<U, F>(self, f: F) -> Stream<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.flat_map(move |t| [f(t)])
    }

    /// A keyed step: each value with the key `key` gives it. Closed with a
    /// [`TopicSink`](crate::sink::TopicSink), it repartitions the stream through a topic so
    /// that a pipeline reading that topic gets every record of a key on one partition, in
    /// order (Kafka Streams' `selectKey` + `repartition`).
    pub fn key_by<F>(self, key: F) -> Stream<crate::sink::Keyed<T>>
    where
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        self.map(move |value| crate::sink::Keyed {
            key: key(&value),
            value,
        })
    }

    /// Keeps the values for which `keep` holds.
    pub fn filter<F>(self, keep: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.flat_map(move |t| keep(&t).then_some(t))
    }

    /// Splits the stream in two: the values for which `matches` holds, and the rest. Map
    /// each branch its own way, then [`merge`](Stream::merge) them again or keep one.
    pub fn branch<F>(self, matches: F) -> (Stream<T>, Stream<T>)
    where
        T: Clone,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let matches = Arc::new(matches);
        let (yes, no): (HashMap<_, _>, HashMap<_, _>) = self
            .bindings
            .into_iter()
            .map(|(name, b)| {
                let (m1, m2) = (matches.clone(), matches.clone());
                let (s1, s2) = (b.step.clone(), b.step);
                let yes: Step<T> = Arc::new(move |codec: &Codec, input: &Input<'_>| {
                    Ok(s1(codec, input)?.into_iter().filter(|t| m1(t)).collect())
                });
                let no: Step<T> = Arc::new(move |codec: &Codec, input: &Input<'_>| {
                    Ok(s2(codec, input)?.into_iter().filter(|t| !m2(t)).collect())
                });
                let schema = b.schema;
                (
                    (name.clone(), Binding { schema, step: yes }),
                    (name, Binding { schema, step: no }),
                )
            })
            .unzip();
        (Stream { bindings: yes }, Stream { bindings: no })
    }

    /// This stream and `other` as one stream. A topic in both gives the outputs of this
    /// stream's step, then those of `other`'s (e.g. the two sides of a [`branch`](Stream::branch)).
    pub fn merge(mut self, other: Stream<T>) -> Stream<T> {
        for (name, theirs) in other.bindings {
            let binding = match self.bindings.remove(&name) {
                None => theirs,
                Some(ours) => {
                    let (a, b) = (ours.step, theirs.step);
                    let step: Step<T> = Arc::new(move |codec: &Codec, input: &Input<'_>| {
                        let mut out = a(codec, input)?;
                        out.extend(b(codec, input)?);
                        Ok(out)
                    });
                    Binding {
                        schema: ours.schema,
                        step,
                    }
                }
            };
            self.bindings.insert(name, binding);
        }
        self
    }

    /// The source topics.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<_> = self.bindings.keys().cloned().collect();
        names.sort();
        names
    }

    /// Closes the topology with `sink`.
    pub fn to<S: Sink<Item = T>>(self, sink: S) -> Topology<S> {
        Topology {
            bindings: self.bindings,
            sink,
        }
    }
}

impl<T> Binding<T> {
    /// The schema the topic's values are written with (its writer schema must be prepared
    /// in the codec, e.g. with [`Codec::prepare`], before [`Binding::decode`]).
    pub fn schema(&self) -> Topic {
        self.schema
    }

    /// Decodes one record of the topic and applies the operators: the items it becomes.
    pub fn decode(&self, codec: &Codec, input: &Input<'_>) -> Result<Vec<T>, DecodeError> {
        (self.step)(codec, input)
    }
}

/// A finished topology: sources and their steps, and the sink.
pub struct Topology<S: Sink> {
    pub(crate) bindings: HashMap<String, Binding<S::Item>>,
    pub(crate) sink: S,
}

impl<S: Sink> Topology<S> {
    /// The source topics.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<_> = self.bindings.keys().cloned().collect();
        names.sort();
        names
    }

    /// The binding of source topic `topic`: its schema and step, as a lane applies them
    /// (the dead-letter engine replays into the sink through it).
    pub fn source(&self, topic: &str) -> Option<&Binding<S::Item>> {
        self.bindings.get(topic)
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::events::{AnimeData, Envelope, samples};

    fn at(bytes: &[u8]) -> Input<'_> {
        Input {
            bytes,
            at: Coordinates {
                topic: "anime",
                partition: 0,
                offset: 0,
            },
        }
    }

    #[tokio::test]
    async fn operators_compose_per_record() {
        let codec = Codec::new("http://127.0.0.1:1");
        // Prepare a decoder without a registry: identity decoding of the reader schema.
        let stream = Stream::<Envelope<AnimeData>>::topic("anime")
            .filter(|e| e.aggregate_version > 1)
            .map(|e| e.aggregate_id)
            .flat_map(|id| [id.clone(), id]);
        assert_eq!(stream.topics(), vec!["anime".to_owned()]);
        let binding = &stream.bindings["anime"];
        assert_eq!(binding.schema, Topic::Anime);
        // Unprepared schema ids fail as unknown, never panic.
        // (branch and merge are exercised with prepared ids below.)
        let framed =
            anineplus_schemas::codec::encode_with_id(7, &samples::anime_updated(1)).unwrap();
        assert!(matches!(
            (binding.step)(&codec, &at(&framed)),
            Err(DecodeError::UnknownSchemaId(7))
        ));
    }

    #[tokio::test]
    async fn branches_map_their_own_way_and_merge_back_per_record() {
        // A codec that can decode our own writer schema (id 1) without a registry.
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::Anime);
        let framed = |v: i64| {
            let mut e = samples::anime_updated(1);
            e.aggregate_version = v;
            anineplus_schemas::codec::encode_with_id(1, &e).unwrap()
        };
        let (new, old) = Stream::<Envelope<AnimeData>>::topic("anime")
            .map(|e| e.aggregate_version)
            .branch(|v| *v >= 3);
        let stream = new
            .map(|v| format!("new {v}"))
            .merge(old.map(|v| format!("old {v}")));
        let binding = &stream.bindings["anime"];
        assert_eq!(
            (binding.step)(&codec, &at(&framed(5))).unwrap(),
            vec!["new 5"]
        );
        assert_eq!(
            (binding.step)(&codec, &at(&framed(1))).unwrap(),
            vec!["old 1"]
        );
    }

    #[tokio::test]
    async fn a_located_value_carries_its_records_original_coordinates() {
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::Anime);
        let framed =
            anineplus_schemas::codec::encode_with_id(1, &samples::anime_updated(1)).unwrap();
        let stream = Stream::<Envelope<AnimeData>>::topic_located("anime");
        let input = Input {
            bytes: &framed,
            at: Coordinates {
                topic: "anime",
                partition: 2,
                offset: 41,
            },
        };
        let located = (stream.bindings["anime"].step)(&codec, &input).unwrap();
        assert_eq!(
            (&*located[0].topic, located[0].partition, located[0].offset),
            ("anime", 2, 41)
        );
        assert_eq!(located[0].value.aggregate_id, "anime-00000001");
    }
}
