//! The counting steps: sums of the deltas per key, sent on as [`AnimeStat`]s (Avro,
//! `anime-stats`, keyed by statistic id) every commit for each statistic that changed.
//!
//! - [`comments_per_hour`] (pipeline `analytics-comment-counts`, store `counts`): the
//!   comment deltas per anime in one-hour tumbling windows of the comments' creation time,
//!   with a grace period of 5 minutes: a delta for a window that closed (stream time
//!   past its end + 5 min) is late, counted in `pipeline_late_records_total` and sent as
//!   it came to `analytics-late-comments`;
//! - [`subscriptions_per_plan`] (pipeline `analytics-plan-counts`, store `counts`): the
//!   plan deltas per plan (a table: no window).

use std::time::Duration;

use anineplus_schemas::codec::encode_with_id;
use anineplus_schemas::events::{AnimeStat, StatKind};
use anineplus_streams::state::ops::Aggregate;
use anineplus_streams::state::{Output, Windows};

use crate::comments::Delta;

/// The comment windows: one hour, grace 5 minutes.
pub fn hourly() -> Windows {
    Windows::tumbling(Duration::from_secs(3600), Duration::from_secs(300))
}

fn add(n: i64, d: &Delta) -> i64 {
    n + d.delta
}

fn encoded(topic: &str, schema_id: u32, stat: &AnimeStat) -> Output {
    let bytes = encode_with_id(schema_id, stat).expect("an AnimeStat fits its schema");
    Output::bytes(topic, &stat.stat_id, bytes, stat.at)
}

/// Comments per anime per hour: `input` (comment deltas) → `output` (`anime-stats`, with
/// the registered schema `schema_id`); late deltas to `late`.
pub fn comments_per_hour(
    input: &str,
    output: &str,
    late: &str,
    schema_id: u32,
) -> Aggregate<Delta, i64> {
    let topic = output.to_owned();
    Aggregate::new("counts", input, || 0, add)
        .windowed(hourly())
        .late_to(late)
        .to(&[output], move |r| {
            let (start, end) = r.window.expect("a windowed aggregate");
            let stat = AnimeStat {
                stat_id: format!("comments:{}:{start}", r.key),
                kind: StatKind::CommentsPerHour,
                anime_id: Some(r.key.to_owned()),
                plan: None,
                window_start: Some(start),
                window_end: Some(end),
                count: *r.value,
                at: r.stream_time.max(0),
            };
            vec![encoded(&topic, schema_id, &stat)]
        })
}

/// Active subscriptions per plan: `input` (plan deltas) → `output` (`anime-stats`).
pub fn subscriptions_per_plan(input: &str, output: &str, schema_id: u32) -> Aggregate<Delta, i64> {
    let topic = output.to_owned();
    Aggregate::new("counts", input, || 0, add).to(&[output], move |r| {
        let stat = AnimeStat {
            stat_id: format!("plan:{}", r.key),
            kind: StatKind::SubscriptionsPerPlan,
            anime_id: None,
            plan: Some(r.key.to_owned()),
            window_start: None,
            window_end: None,
            count: *r.value,
            at: r.stream_time.max(0),
        };
        vec![encoded(&topic, schema_id, &stat)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::{Codec, Topic};
    use anineplus_streams::state::StateDriver;

    const H: i64 = 3_600_000;

    fn stats(codec: &Codec, out: &[Output]) -> Vec<(String, i64)> {
        out.iter()
            .filter(|o| o.topic == "stats")
            .map(|o| {
                let s: AnimeStat = codec.decode_prepared(o.value.as_deref().unwrap()).unwrap();
                (s.stat_id, s.count)
            })
            .collect()
    }

    #[test]
    fn comment_deltas_sum_per_anime_and_hour_and_a_late_one_goes_aside() {
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::AnimeStats);
        let mut d = StateDriver::new(
            comments_per_hour("deltas", "stats", "late", 1),
            codec.clone(),
        );
        for (anime, delta, at) in [
            ("a", 1, 10),
            ("a", 1, 20),
            ("b", 1, 30),
            ("a", -1, 40),
            ("a", 1, H + 1),
        ] {
            d.pipe_json("deltas", 0, anime, &Delta { delta }, at);
        }
        assert_eq!(
            stats(&codec, &d.commit()),
            [
                ("comments:a:0".into(), 1),
                ("comments:b:0".into(), 1),
                (format!("comments:a:{H}"), 1)
            ]
        );
        d.pipe_json("deltas", 0, "a", &Delta { delta: 1 }, 2 * H);
        d.pipe_json("deltas", 0, "a", &Delta { delta: 1 }, 50);
        let out = d.commit();
        assert_eq!(stats(&codec, &out), [(format!("comments:a:{}", 2 * H), 1)]);
        assert_eq!(out.iter().filter(|o| o.topic == "late").count(), 1);
        assert_eq!(d.late(), 1);
    }

    #[test]
    fn plan_deltas_sum_per_plan() {
        let codec = Codec::new("http://127.0.0.1:1");
        codec.prepare_local(1, Topic::AnimeStats);
        let mut d = StateDriver::new(subscriptions_per_plan("deltas", "stats", 1), codec.clone());
        for (plan, delta) in [
            ("premium", 1),
            ("basic", 1),
            ("premium", 1),
            ("premium", -1),
        ] {
            d.pipe_json("deltas", 1, plan, &Delta { delta }, 5);
        }
        assert_eq!(
            stats(&codec, &d.commit()),
            [("plan:basic".into(), 1), ("plan:premium".into(), 1)]
        );
    }
}
