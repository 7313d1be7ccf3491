//! Late events on the real stack: comments on one anime posted out of order around the
//! end of an hour, one at a time (each waits for its effect), through the binary. A
//! comment inside the 5-minute grace still counts in its hour; one after it is late: its
//! hour's count does not change, it is counted in `pipeline_late_records_total` and kept
//! in `analytics-late-comments`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anineplus_schemas::events::{CommentData, CommentPosted, CommentStatus, samples};
use common::*;

const MIN: i64 = 60_000;

fn posted(id: &str, anime: &str, created_at: i64) -> anineplus_schemas::Envelope<CommentData> {
    samples::envelope(
        "comment.created",
        id,
        1,
        CommentData::CommentCreated(CommentPosted {
            comment_id: id.to_owned(),
            anime_id: anime.to_owned(),
            episode_id: None,
            author_id: "u1".into(),
            body: "late or not".into(),
            status: CommentStatus::Visible,
            created_at,
        }),
    )
}

/// Waits until the index holds `count` for `stat`.
async fn wait_count(h: &Harness, stat: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = indexed(h).await;
        if got.get(stat) == Some(&count) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{stat} is {:?} after 60 s, expected {count}: {got:?}",
            got.get(stat)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_inside_the_grace_counts_in_its_hour_and_one_after_it_is_late_and_kept_aside() {
    let h = Harness::new().await;
    let mut child = h.spawn("exactly_once");
    let anime = "late-anime";
    let first = format!("comments:{anime}:{HOUR}");
    let second = format!("comments:{anime}:{}", HOUR + 60 * MIN);

    h.world
        .send("c1", &posted("c1", anime, HOUR + 10 * MIN))
        .await;
    wait_count(&h, &first, 1).await;
    // Stream time 11:02: the 10:00 window is past its end, inside its grace (until 11:05).
    h.world
        .send("c2", &posted("c2", anime, HOUR + 62 * MIN))
        .await;
    wait_count(&h, &second, 1).await;
    h.world
        .send("c3", &posted("c3", anime, HOUR + 50 * MIN))
        .await;
    wait_count(&h, &first, 2).await;
    // Stream time 11:10 closes the 10:00 window; a comment of 10:40 is late.
    h.world
        .send("c4", &posted("c4", anime, HOUR + 70 * MIN))
        .await;
    wait_count(&h, &second, 2).await;
    h.world
        .send("c5", &posted("c5", anime, HOUR + 40 * MIN))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(
        &h,
        &h.metrics,
        "pipeline_late_records_total",
        "analytics-comment-counts",
    )
    .await
    .unwrap_or_default()
        < 1.0
    {
        assert!(Instant::now() < deadline, "no late record counted in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let late_topic = format!("{}analytics-late-comments", h.world.topic_prefix);
    let aside = sum_of_deltas(&h, &late_topic, "read_committed");
    assert_eq!(
        aside,
        BTreeMap::from([(anime.to_owned(), 1)]),
        "the late delta kept aside"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = indexed(&h).await;
    assert_eq!(
        got.get(&first),
        Some(&2),
        "the closed hour kept its count: {got:?}"
    );
    assert_eq!(got.get(&second), Some(&2), "{got:?}");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    eprintln!(
        "windows: inside the grace counted, after it late (metric, late topic), hour unchanged"
    );
    h.world.delete_topics().await;
}
