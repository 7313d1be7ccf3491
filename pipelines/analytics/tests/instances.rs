//! Two instances on the real stack: a second instance of the binary joins mid-stream
//! (the group's tasks are shared, each restored from the changelog by its new owner) and
//! leaves again with SIGTERM (its tasks go back to the first once its static membership's
//! session times out); the totals equal one instance's, exactly.
//! It once failed in a fresh-clone CI run ("the second instance got no comments in 60 s"):
//! the test held the next wave back until the second instance had consumed something, and
//! when the first had already read every earlier record before the group handed a
//! partition over, there was nothing left for the second to read. The wave is sent first
//! now.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_joining_and_leaving_gives_the_same_totals_as_one() {
    let h = Harness::new().await;
    let w = workload();
    let expected = &w.expected;
    let started = Instant::now();
    let mut first = h.spawn("exactly_once");
    let second_metrics = format!("127.0.0.1:{}", free_port());
    let mut second = None;
    for wave in 0..WAVES {
        if wave == 2 {
            second = Some(h.spawn_as("exactly_once", "1", &second_metrics));
            eprintln!(
                "instances: the second joined at {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        send_wave(&h, &w, wave).await;
        if wave == 5 {
            // Once it has worked: consumed comments of the partitions it was given (this
            // wave's, at least: the earlier ones may all have been read by the first
            // instance before the group handed partitions over).
            let deadline = Instant::now() + Duration::from_secs(60);
            while metric(
                &h,
                &second_metrics,
                "pipeline_records_consumed_total",
                "analytics-comments",
            )
            .await
            .unwrap_or_default()
                < 1.0
            {
                assert!(
                    Instant::now() < deadline,
                    "the second instance got no comments in 60 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let child = second.take().expect("the second instance");
            terminate(&child);
            let mut child = child;
            let status = child.wait().unwrap();
            eprintln!(
                "instances: the second left at {:.1} s ({status})",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let got = wait_for(&h, expected, Duration::from_secs(120)).await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let diff = diff(expected, &got);
    assert!(diff.is_empty(), "counts differ:\n{}", diff.join("\n"));
    eprintln!(
        "instances: {} statistics exact after a second instance joined and left, {:.1} s",
        expected.len(),
        started.elapsed().as_secs_f64()
    );
    h.world.delete_topics().await;
}
