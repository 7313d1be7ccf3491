//! The analytics binary on the real stack: exact counts through `kill -9`s in
//! `exactly_once`, state restored from the changelog by each new instance.
//!
//! 4,000 comments on 20 anime (all created within one hour, so no window closes and every
//! count is exact by construction) and 600 subscriptions on three plans are produced in
//! eight waves, each comment's events in order (created visible or hidden, then perhaps
//! hidden, shown again, deleted), while the binary is killed with SIGKILL three times and
//! started again with the same instance id. At the end the stats index must hold exactly
//! the expected count per anime and per plan: a record counted twice (or lost) by any of
//! the four stateful steps would show.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_sigkill_mid_stream_exactly_once_counts_every_comment_and_subscription_once() {
    let h = Harness::new().await;
    let w = workload();
    let expected = &w.expected;
    let started = Instant::now();
    let child = h.spawn("exactly_once");
    let mut child = produce_while_killing(&h, &w, "exactly_once", child, started).await;

    let got = wait_for(&h, expected, Duration::from_secs(120)).await;
    // The counts can be complete before the last instance has restored (when the one
    // before it had processed everything): its restore is waited for, 60 s at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    let restored = loop {
        let restored = metric(
            &h,
            &h.metrics,
            "pipeline_state_restored_records_total",
            "analytics-comments",
        )
        .await;
        if restored.unwrap_or_default() > 0.0 || Instant::now() >= deadline {
            break restored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let aborts = aborts(&h, &h.metrics).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let diff = diff(expected, &got);
    assert!(
        diff.is_empty(),
        "counts differ after {KILLS} SIGKILLs:\n{}",
        diff.join("\n")
    );
    eprintln!(
        "analytics: {} statistics exact after {KILLS} SIGKILLs, {:.1} s; the last instance restored {:?} changelog records of analytics-comments; {aborts} commits aborted",
        expected.len(),
        started.elapsed().as_secs_f64(),
        restored
    );
    assert!(
        restored.unwrap_or_default() > 0.0,
        "the last instance restored the comments' state from the changelog"
    );
    h.world.delete_topics().await;
}
