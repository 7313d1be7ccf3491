//! Subscriptions → one delta per change of whether a subscription is active, keyed by its
//! plan (pipeline `analytics-subscriptions`, store `subscriptions`): `+1` when one starts,
//! `-1` when an active one is cancelled, to `analytics-plan-deltas`. Per subscription it
//! keeps its plan, whether it is active and the version of the last event applied (older
//! and replayed events are ignored, as in [`crate::comments`]).

use anineplus_schemas::events::{Envelope, SubscriptionData};
use anineplus_schemas::{Codec, Topic};
use anineplus_streams::state::{Emit, Output, Processor, Record, Store, Undecodable};
use serde::{Deserialize, Serialize};

use crate::comments::Delta;

/// What the step keeps per subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionState {
    /// Its plan.
    #[serde(rename = "p")]
    pub plan: String,
    /// Whether it is active.
    #[serde(rename = "a")]
    pub active: bool,
    /// The version of the last event applied.
    #[serde(rename = "v")]
    pub version: i64,
}

/// The step (see the module header).
pub struct PlanDeltas {
    input: String,
    output: String,
}

impl PlanDeltas {
    /// Reads `input` (the `subscription` topic), sends to `output`.
    pub fn new(input: &str, output: &str) -> Self {
        PlanDeltas {
            input: input.to_owned(),
            output: output.to_owned(),
        }
    }
}

impl Processor for PlanDeltas {
    type Input = Envelope<SubscriptionData>;
    type State = SubscriptionState;

    fn store(&self) -> &str {
        "subscriptions"
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.input.clone()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn schema(&self, _topic: &str) -> Option<Topic> {
        Some(Topic::Subscription)
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
        store: &mut Store<SubscriptionState>,
        out: &mut Emit,
    ) {
        let event = record.value;
        let id = event.aggregate_id.as_str();
        let version = event.aggregate_version;
        let known = store.get(id).cloned();
        if known.as_ref().is_some_and(|s| s.version >= version) {
            return;
        }
        let (plan, active, at) = match event.data {
            SubscriptionData::SubscriptionCreated(s) => (s.plan, true, s.started_at),
            SubscriptionData::SubscriptionCancelled(s) => (s.plan, false, s.cancelled_at),
        };
        let was = known.as_ref().filter(|k| k.active).map(|k| k.plan.clone());
        if let Some(old) = &was
            && (!active || *old != plan)
        {
            out.send(Output::json(&self.output, old, &Delta { delta: -1 }, at));
        }
        if active && was.as_deref() != Some(plan.as_str()) {
            out.send(Output::json(&self.output, &plan, &Delta { delta: 1 }, at));
        }
        store.observe_time(at);
        store.put(
            id,
            SubscriptionState {
                plan,
                active,
                version,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::codec::encode_with_id;
    use anineplus_schemas::events::{SubscriptionCancelled, SubscriptionStarted, samples};
    use anineplus_streams::state::StateDriver;

    fn event(id: &str, version: i64, plan: &str, active: bool) -> Vec<u8> {
        let mut e = samples::one_of_each().subscriptions[0].clone();
        e.aggregate_id = id.to_owned();
        e.aggregate_version = version;
        e.data = if active {
            SubscriptionData::SubscriptionCreated(SubscriptionStarted {
                subscription_id: id.into(),
                user_id: "u".into(),
                plan: plan.into(),
                started_at: 5,
            })
        } else {
            SubscriptionData::SubscriptionCancelled(SubscriptionCancelled {
                subscription_id: id.into(),
                user_id: "u".into(),
                plan: plan.into(),
                cancelled_at: 6,
            })
        };
        encode_with_id(1, &e).unwrap()
    }

    #[test]
    fn starts_and_cancellations_move_their_plans_count_once() {
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::Subscription);
        let mut d = StateDriver::new(PlanDeltas::new("subscription", "deltas"), codec);
        d.pipe("subscription", 0, "s1", &event("s1", 1, "premium", true), 0);
        d.pipe("subscription", 0, "s1", &event("s1", 1, "premium", true), 0); // replayed
        d.pipe("subscription", 0, "s2", &event("s2", 1, "basic", true), 0);
        d.pipe(
            "subscription",
            0,
            "s1",
            &event("s1", 2, "premium", false),
            0,
        );
        d.pipe("subscription", 0, "s3", &event("s3", 2, "basic", false), 0); // never active
        let out: Vec<(String, i64)> = d
            .commit()
            .iter()
            .map(|o| {
                let delta: Delta = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
                (
                    String::from_utf8(o.key.clone().unwrap()).unwrap(),
                    delta.delta,
                )
            })
            .collect();
        assert_eq!(
            out,
            [
                ("premium".into(), 1),
                ("basic".into(), 1),
                ("premium".into(), -1)
            ]
        );
    }
}
