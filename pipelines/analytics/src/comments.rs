//! Comments → one delta per change of whether a comment counts, keyed by its anime
//! (pipeline `analytics-comments`, store `comments`).
//!
//! The `comment` topic is keyed by comment id, so one anime's comments are spread over its
//! partitions; a count per anime needs them on one task. This step keeps, per comment, what
//! it last counted for (its anime, its creation time, whether it counts: visible and not
//! deleted, and the version of the last event applied) and sends `+1` / `-1` to
//! `analytics-comment-deltas`, keyed by anime id, with the comment's *creation* time as
//! the record's timestamp, so the next step counts it in the hour it was posted:
//!
//! - `comment.created`: `+1` if visible;
//! - `comment.moderated`: `-1` when hidden while counted, `+1` when shown again;
//! - `comment.deleted`: `-1` if it counted; the comment is kept as deleted, so a replayed
//!   older event cannot bring it back.
//!
//! An event at or below the version already applied is ignored, so redelivered events
//! (at least once) never count twice here. An event for a comment whose creation was never
//! seen (it expired from the topic before the pipeline started) is ignored.

use anineplus_schemas::events::{CommentData, CommentStatus, Envelope};
use anineplus_schemas::{Codec, Topic};
use anineplus_streams::state::{Emit, Output, Processor, Record, Store, Undecodable};
use serde::{Deserialize, Serialize};

/// A change of a count by `delta` (the internal topics' value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// +1 or -1.
    #[serde(rename = "d")]
    pub delta: i64,
}

/// What the step keeps per comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentState {
    /// Its anime.
    #[serde(rename = "a")]
    pub anime_id: String,
    /// Its creation time, ms.
    #[serde(rename = "t")]
    pub created_at: i64,
    /// Whether it counts now.
    #[serde(rename = "c")]
    pub counted: bool,
    /// Whether it was deleted.
    #[serde(rename = "x", default)]
    pub deleted: bool,
    /// The version of the last event applied.
    #[serde(rename = "v")]
    pub version: i64,
}

/// The step (see the module header).
pub struct CommentDeltas {
    input: String,
    output: String,
}

impl CommentDeltas {
    /// Reads `input` (the `comment` topic), sends to `output`.
    pub fn new(input: &str, output: &str) -> Self {
        CommentDeltas {
            input: input.to_owned(),
            output: output.to_owned(),
        }
    }

    fn send(&self, out: &mut Emit, state: &CommentState, delta: i64) {
        out.send(Output::json(
            &self.output,
            &state.anime_id,
            &Delta { delta },
            state.created_at,
        ));
    }
}

impl Processor for CommentDeltas {
    type Input = Envelope<CommentData>;
    type State = CommentState;

    fn store(&self) -> &str {
        "comments"
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.input.clone()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn schema(&self, _topic: &str) -> Option<Topic> {
        Some(Topic::Comment)
    }

    fn decode(
        &self,
        codec: &Codec,
        _topic: &str,
        value: &[u8],
    ) -> Result<Self::Input, Undecodable> {
        Ok(codec.decode_prepared(value)?)
    }

    fn process(
        &self,
        record: Record<'_, Self::Input>,
        store: &mut Store<CommentState>,
        out: &mut Emit,
    ) {
        let event = record.value;
        let id = event.aggregate_id.as_str();
        let version = event.aggregate_version;
        let known = store.get(id).cloned();
        if known.as_ref().is_some_and(|s| s.version >= version) {
            return; // already applied
        }
        match event.data {
            CommentData::CommentCreated(posted) => {
                let state = CommentState {
                    anime_id: posted.anime_id,
                    created_at: posted.created_at,
                    counted: posted.status == CommentStatus::Visible,
                    deleted: false,
                    version,
                };
                if state.counted && !known.as_ref().is_some_and(|k| k.counted) {
                    self.send(out, &state, 1);
                }
                store.observe_time(state.created_at);
                store.put(id, state);
            }
            CommentData::CommentModerated(moderated) => {
                let Some(mut state) = known else { return };
                if state.deleted {
                    return;
                }
                let counts = moderated.status == CommentStatus::Visible;
                if counts != state.counted {
                    self.send(out, &state, if counts { 1 } else { -1 });
                }
                state.counted = counts;
                state.version = version;
                store.put(id, state);
            }
            CommentData::CommentDeleted(_) => {
                let Some(mut state) = known else { return };
                if state.counted {
                    self.send(out, &state, -1);
                }
                state.counted = false;
                state.deleted = true;
                state.version = version;
                store.put(id, state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::codec::encode_with_id;
    use anineplus_schemas::events::samples;
    use anineplus_streams::state::StateDriver;

    fn driver() -> StateDriver<CommentDeltas> {
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::Comment);
        StateDriver::new(CommentDeltas::new("comment", "deltas"), codec)
    }

    fn event(id: &str, version: i64, data: CommentData) -> Vec<u8> {
        let mut e = samples::one_of_each().comments[0].clone();
        e.aggregate_id = id.to_owned();
        e.aggregate_version = version;
        e.data = data;
        encode_with_id(1, &e).unwrap()
    }

    fn posted(status: CommentStatus) -> CommentData {
        let CommentData::CommentCreated(mut p) = samples::one_of_each().comments[0].data.clone()
        else {
            panic!("the first sample comment is a creation");
        };
        p.anime_id = "a1".into();
        p.created_at = 7_000;
        p.status = status;
        CommentData::CommentCreated(p)
    }

    fn moderated(status: CommentStatus) -> CommentData {
        CommentData::CommentModerated(anineplus_schemas::events::CommentModerated {
            comment_id: "c".into(),
            anime_id: "a1".into(),
            episode_id: None,
            status,
            reason: None,
            moderated_by: "m".into(),
            moderated_at: 9_000,
        })
    }

    fn deleted() -> CommentData {
        CommentData::CommentDeleted(anineplus_schemas::events::CommentDeleted {
            comment_id: "c".into(),
            anime_id: "a1".into(),
            episode_id: None,
        })
    }

    fn deltas(out: &[Output]) -> Vec<(String, i64, i64)> {
        out.iter()
            .map(|o| {
                let d: Delta = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
                (
                    String::from_utf8(o.key.clone().unwrap()).unwrap(),
                    d.delta,
                    o.timestamp.unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_comment_counts_while_visible_and_undeleted_at_its_creation_time() {
        let mut d = driver();
        d.pipe(
            "comment",
            0,
            "c1",
            &event("c1", 1, posted(CommentStatus::Visible)),
            0,
        );
        d.pipe(
            "comment",
            0,
            "c1",
            &event("c1", 2, moderated(CommentStatus::Hidden)),
            0,
        );
        d.pipe(
            "comment",
            0,
            "c1",
            &event("c1", 3, moderated(CommentStatus::Visible)),
            0,
        );
        d.pipe("comment", 0, "c1", &event("c1", 4, deleted()), 0);
        d.pipe(
            "comment",
            0,
            "c2",
            &event("c2", 1, posted(CommentStatus::Hidden)),
            0,
        );
        d.pipe(
            "comment",
            0,
            "c2",
            &event("c2", 2, moderated(CommentStatus::Hidden)),
            0,
        );
        assert_eq!(
            deltas(&d.commit()),
            [
                ("a1".into(), 1, 7_000),
                ("a1".into(), -1, 7_000),
                ("a1".into(), 1, 7_000),
                ("a1".into(), -1, 7_000),
            ]
        );
    }

    #[test]
    fn replayed_and_older_events_change_nothing() {
        let mut d = driver();
        let created = event("c1", 1, posted(CommentStatus::Visible));
        d.pipe("comment", 0, "c1", &created, 0);
        d.pipe("comment", 0, "c1", &created, 0);
        d.pipe("comment", 0, "c1", &event("c1", 3, deleted()), 0);
        d.pipe(
            "comment",
            0,
            "c1",
            &event("c1", 2, moderated(CommentStatus::Visible)),
            0,
        );
        d.pipe("comment", 0, "c1", &created, 0);
        d.pipe(
            "comment",
            0,
            "c9",
            &event("c9", 2, moderated(CommentStatus::Visible)),
            0,
        );
        assert_eq!(
            deltas(&d.commit()),
            [("a1".into(), 1, 7_000), ("a1".into(), -1, 7_000)]
        );
    }
}
