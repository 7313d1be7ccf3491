//! The console's dead-letter index, grouping and redrive jobs on the real stack.
//!
//! Scenario: an in-process indexer dead-letters two undecodable records (permanent), and
//! three records whose retries ran out while the search engine was down are written to its
//! dead-letter topic (retryable; the engine is up now, so their cause is gone). The index
//! fed by the console's consumer groups them into two fingerprints (3 and 2, whatever the
//! numbers in their messages). Redriving the outage group indexes the three documents
//! (succeeded 3 / returned 0); redriving the undecodable group brings both back as new
//! dead letters carrying the job's redrive id (succeeded 0 / returned 2), which a new job
//! does not pick up again. Purge deletes the five redriven letters and keeps the two
//! returns. A letter held by a running job is not selected by another; a job left running
//! resumes when the console restarts.

mod common;

use std::time::Duration;

use anineplus_console::index::{self, Selection};
use anineplus_console::jobs::{self, Job};
use anineplus_schemas::Topic;
use anineplus_testkit::TestDatabase;
use common::Harness;

async fn wait_job(pool: &sqlx::PgPool, id: uuid::Uuid, returned: i64) -> Job {
    let mut job = jobs::get(pool, id).await.unwrap();
    for _ in 0..300 {
        job = jobs::get(pool, id).await.unwrap();
        if job.status != "running" && job.returned >= returned {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job did not finish with {returned} returned: {job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_grouped_redriven_counted_and_purged() {
    let t = Harness::new().await;
    let db = TestDatabase::create("console_redrive").await;
    let indexer = t.start_indexer().await;
    let console = common::serve(common::config(
        &t,
        &db,
        indexer.running.metrics_addr,
        "http://127.0.0.1:9",
    ))
    .await;
    let dlq = t.dlq();

    t.send_raw(Topic::Anime, "junk-1", b"garbage one").await;
    t.send_raw(Topic::Anime, "junk-2", b"more garbage, 22 bytes")
        .await;
    common::wait_indexed(&console.pool, &dlq, 2).await;
    let outage = common::outage_letters(&t, "outage", 3).await;
    common::wait_indexed(&console.pool, &dlq, 5).await;

    let all = Selection {
        pipeline: "indexer".into(),
        ..Default::default()
    };
    let groups = index::groups(&console.pool, &all).await.unwrap();
    println!("groups: {groups:#?}");
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(
        (
            groups[0].count,
            groups[0].open,
            groups[0].error_class.as_str()
        ),
        (3, 3, "retryable")
    );
    assert_eq!(
        (groups[1].count, groups[1].error_class.as_str()),
        (2, "permanent")
    );
    assert!(
        groups[0].fingerprint.contains("<n>"),
        "{}",
        groups[0].fingerprint
    );
    let by_key = Selection {
        key: "junk-2".into(),
        ..all.clone()
    };
    assert_eq!(
        index::letters(&console.pool, &by_key, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let bad = Selection {
        class: "fatal".into(),
        ..all.clone()
    };
    assert!(
        index::groups(&console.pool, &bad).await.is_err(),
        "a bad class is refused"
    );

    // The outage group: its cause is gone, the three documents get indexed.
    let outage_group = Selection {
        fingerprint: groups[0].fingerprint.clone(),
        ..all.clone()
    };
    let plan = jobs::preview(&console.pool, &outage_group).await.unwrap();
    assert_eq!(plan, vec![(t.topic(Topic::Anime), 3)]);
    let brokers = &t.stack.kafka_brokers;
    let runner = jobs::Runner::new(
        console.pool.clone(),
        brokers,
        tokio_util::sync::CancellationToken::new(),
    );
    let job = jobs::create(&console.pool, brokers, &dlq, &outage_group, 100, "test")
        .await
        .unwrap();
    assert_eq!(job.total, 3);
    runner.start(job.id);
    for id in &outage {
        t.wait_doc("anime", id, |v, _| v == 1).await;
    }
    let done = wait_job(&console.pool, job.id, 0).await;
    assert_eq!(
        (
            done.status.as_str(),
            done.sent,
            done.succeeded(),
            done.returned
        ),
        ("done", 3, 3, 0),
        "{done:?}"
    );

    // The undecodable group comes back, carrying the job's id.
    let junk_group = Selection {
        fingerprint: groups[1].fingerprint.clone(),
        ..all.clone()
    };
    let job = jobs::create(&console.pool, brokers, &dlq, &junk_group, 100, "test")
        .await
        .unwrap();
    runner.start(job.id);
    let done = wait_job(&console.pool, job.id, 2).await;
    assert_eq!(
        (done.sent, done.succeeded(), done.returned),
        (2, 0, 2),
        "{done:?}"
    );
    let returned = index::returned(&console.pool, job.id, 10).await.unwrap();
    assert_eq!(returned.len(), 2);
    assert!(
        returned
            .iter()
            .all(|l| l.redriven_by.is_none() && l.redrive_id == Some(job.id))
    );
    // Nothing already sent is selected again; the returns are (new letters, open).
    let again = jobs::preview(&console.pool, &all).await.unwrap();
    assert_eq!(
        again.iter().map(|(_, n)| n).sum::<i64>(),
        2,
        "only the returns are open: {again:?}"
    );

    // Purge: the five redriven letters go, the two returns stay.
    let plan = jobs::purge_plan(&console.pool, brokers, &dlq)
        .await
        .unwrap();
    assert_eq!((plan.deleted, plan.kept), (5, 2), "{plan:?}");
    let purged = jobs::purge_resolved(&console.pool, brokers, &dlq)
        .await
        .unwrap();
    assert_eq!(purged.deleted, 5);
    let left = index::letters(&console.pool, &all, 10).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|l| l.redrive_id == Some(job.id)));
    println!(
        "redrive: succeeded 3 / returned 0, then succeeded 0 / returned 2; purge deleted 5, kept 2"
    );

    // A job left running resumes at the next start of the console.
    let resumed = jobs::create(&console.pool, brokers, &dlq, &all, 1, "test")
        .await
        .unwrap();
    assert_eq!(resumed.total, 2);
    let twice = jobs::create(&console.pool, brokers, &dlq, &all, 1, "test").await;
    assert!(
        twice
            .unwrap_err()
            .to_string()
            .contains("no open dead letter"),
        "the letters of a running job are not selected again"
    );
    assert!(jobs::preview(&console.pool, &all).await.unwrap().is_empty());
    let config = console.config.clone();
    console.stop().await;
    let console = common::serve(config).await;
    let done = wait_job(&console.pool, resumed.id, 0).await;
    assert_eq!((done.status.as_str(), done.sent), ("done", 2), "{done:?}");
    println!(
        "a job created before a restart ran after it: sent {}",
        done.sent
    );

    console.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
