//! The search indexer on the real stack: events produced to unique topics end up as
//! documents at the right version; duplicates, stale versions and late updates after a
//! delete are harmless; poison records become dead letters with their context while the
//! rest is indexed; offsets are committed only after the sink confirmed; a restart resumes.

mod common;

use anineplus_schemas::Topic;
use anineplus_schemas::events::samples;
use anineplus_schemas::events::*;
use anineplus_streams::dead_letter::header as h;
use common::{Harness, anime, anime_deleted, header};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_aggregate_is_indexed_at_its_latest_version_and_stale_or_duplicate_events_are_harmless()
 {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;

    // anime: v1, v3, then a stale v2 and a duplicate v3.
    t.send("a1", &anime("a1", 1, "Frieren v1")).await;
    t.send("a1", &anime("a1", 3, "Frieren: Beyond Journey's End"))
        .await;
    t.send("a1", &anime("a1", 2, "stale title")).await;
    t.send("a1", &anime("a1", 3, "Frieren: Beyond Journey's End"))
        .await;
    // every other aggregate, one event of each branch.
    let all = samples::one_of_each();
    for e in &all.episodes[..2] {
        t.send(&e.aggregate_id, e).await;
    }
    for e in &all.users[..2] {
        t.send(&e.aggregate_id, e).await;
    }
    for e in &all.comments[..2] {
        t.send(&e.aggregate_id, e).await;
    }
    for e in &all.organizations {
        t.send(&e.aggregate_id, e).await;
    }
    for e in &all.subscriptions {
        t.send(&e.aggregate_id, e).await;
    }
    // a marker after everything else in the anime topic's partition of a1.
    t.send("a1", &anime("a1", 4, "Frieren (final)")).await;

    let (version, doc) = t.wait_doc("anime", "a1", |v, _| v == 4).await;
    assert_eq!(version, 4);
    assert_eq!(doc["title"], json!("Frieren (final)"));
    assert_eq!(doc["aggregateVersion"], json!(4));
    assert_eq!(doc["deleted"], json!(false));

    let episode = &all.episodes[1];
    t.wait_doc("episodes", &episode.aggregate_id, |v, _| {
        v == episode.aggregate_version
    })
    .await;

    let user = &all.users[1];
    let (_, u) = t
        .wait_doc("users", &user.aggregate_id, |_, s| {
            s["aggregateVersion"] == json!(2)
        })
        .await;
    assert_eq!(u["name"], json!("Anne"), "{u}");
    assert_eq!(u["role"], json!("ADMIN"));
    assert!(u["createdAt"].is_i64(), "user.updated keeps createdAt: {u}");
    assert!(
        !u.to_string().contains('@'),
        "no email in the users index: {u}"
    );

    let comment = &all.comments[1];
    let (_, c) = t
        .wait_doc("comments", &comment.aggregate_id, |_, s| {
            s["aggregateVersion"] == json!(comment.aggregate_version)
        })
        .await;
    assert!(c["body"].is_string(), "moderation keeps the body: {c}");
    assert!(c["moderatedBy"].is_string(), "{c}");

    let org = all.organizations.last().unwrap();
    let (_, o) = t
        .wait_doc("organizations", &org.aggregate_id, |_, s| {
            s["aggregateVersion"] == json!(org.aggregate_version)
        })
        .await;
    assert_eq!(o["name"], json!("Studio 2"), "{o}");
    assert!(o["members"].is_array(), "{o}");

    let hits = t
        .search_live("anime", json!({"match": {"title": "frieren"}}))
        .await;
    assert_eq!(hits.len(), 1, "{hits:?}");

    // Every consumed record is committed once the sink confirmed it.
    t.wait_committed(&t.topic(Topic::Anime)).await;
    let consumed = indexer.running.metrics.render();
    assert!(
        consumed.contains("pipeline_records_dead_lettered_total{pipeline=\"indexer\"} 0"),
        "{consumed}"
    );
    let health = reqwest::get(format!("http://{}/health", indexer.running.metrics_addr))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    indexer.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_then_a_late_older_update_stays_deleted() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    t.send("d1", &anime("d1", 1, "Cowboy Bebop")).await;
    t.send("d1", &anime_deleted("d1", 3)).await;
    t.send("d1", &anime("d1", 2, "Cowboy Bebop (late)")).await;
    t.send("d1", &anime_deleted("d1", 3)).await; // a duplicate delete
    t.wait_committed(&t.topic(Topic::Anime)).await;
    let (version, doc) = t.wait_doc("anime", "d1", |v, _| v == 3).await;
    assert_eq!(version, 3);
    assert_eq!(doc["deleted"], json!(true), "{doc}");
    let hits = t
        .search_live("anime", json!({"match": {"title": "bebop"}}))
        .await;
    assert!(hits.is_empty(), "deleted anime is not searchable: {hits:?}");
    indexer.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_records_are_dead_lettered_with_their_context_while_the_rest_is_indexed() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;

    t.send_raw(Topic::Anime, "p1", b"{\"not\": \"avro\"}").await;
    let unknown =
        anineplus_schemas::codec::encode_with_id(987_654_321, &anime("p2", 1, "x")).unwrap();
    t.send_raw(Topic::Anime, "p2", &unknown).await;
    let mut rejected = anime("p3", 1, "Too far in the future");
    if let AnimeData::AnimeUpdated(s) = &mut rejected.data {
        s.release_year = Some(70_000); // the mapping says `short`
    }
    t.send("p3", &rejected).await;
    t.send("ok", &anime("ok", 1, "Mushishi")).await;

    t.wait_doc("anime", "ok", |v, _| v == 1).await;
    let letters = t.read(&t.dlq(), 3).await;
    let mut by_key: std::collections::HashMap<String, _> = letters
        .into_iter()
        .map(|(k, v, hs)| (String::from_utf8(k.unwrap()).unwrap(), (v, hs)))
        .collect();

    let (value, hs) = by_key.remove("p1").expect("garbage dead-lettered");
    assert_eq!(value, b"{\"not\": \"avro\"}", "original bytes kept");
    assert_eq!(header(&hs, h::ERROR_CLASS), Some("permanent"));
    assert!(
        header(&hs, h::ERROR_MESSAGE)
            .unwrap()
            .contains("magic byte"),
        "{hs:?}"
    );
    assert_eq!(
        header(&hs, h::ORIGINAL_TOPIC),
        Some(t.topic(Topic::Anime).as_str())
    );
    assert!(header(&hs, h::ORIGINAL_PARTITION).is_some());
    assert!(header(&hs, h::ORIGINAL_OFFSET).is_some());
    assert_eq!(header(&hs, h::ORIGINAL_KEY), Some("p1"));
    assert_eq!(header(&hs, h::PIPELINE), Some("indexer"));
    assert_eq!(header(&hs, h::ATTEMPTS), Some("1"));
    assert!(header(&hs, h::FIRST_FAILURE).is_some());
    assert!(header(&hs, h::LAST_FAILURE).is_some());
    assert_eq!(header(&hs, h::CORRELATION_ID), Some("corr-p1"));

    let (value, hs) = by_key
        .remove("p2")
        .expect("unknown schema id dead-lettered");
    assert_eq!(value, unknown);
    assert!(
        header(&hs, h::ERROR_MESSAGE)
            .unwrap()
            .contains("unknown schema id 987654321"),
        "{hs:?}"
    );

    let (_, hs) = by_key.remove("p3").expect("mapping error dead-lettered");
    let message = header(&hs, h::ERROR_MESSAGE).unwrap();
    assert!(
        message.contains("mapper_parsing_exception") || message.contains("releaseYear"),
        "{message}"
    );
    assert_eq!(header(&hs, h::ERROR_CLASS), Some("permanent"));
    assert_eq!(header(&hs, "event-type"), None);

    // Poison records are settled too: everything committed, nothing stuck.
    t.wait_committed(&t.topic(Topic::Anime)).await;
    assert!(t.doc("anime", "p3").await.is_none());
    indexer.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_are_committed_after_the_sink_and_a_restart_resumes_without_loss() {
    let t = Harness::new().await;
    let topic = t.topic(Topic::Anime);
    let first = t.start_indexer().await;
    for i in 0..50 {
        t.send(&format!("r{i}"), &anime(&format!("r{i}"), 1, "first run"))
            .await;
    }
    t.wait_doc("anime", "r49", |_, _| true).await;
    assert_eq!(t.wait_committed(&topic).await, 50);
    first.stop().await;
    assert_eq!(t.committed(&topic).0, 50, "shutdown committed everything");

    // While it is down, more events and newer versions arrive.
    for i in 0..50 {
        t.send(&format!("r{i}"), &anime(&format!("r{i}"), 2, "second run"))
            .await;
    }
    for i in 50..80 {
        t.send(&format!("r{i}"), &anime(&format!("r{i}"), 1, "second run"))
            .await;
    }
    let second = t.start_indexer().await;
    for i in 0..80 {
        t.wait_doc("anime", &format!("r{i}"), |_, s| {
            s["title"] == json!("second run")
        })
        .await;
    }
    assert_eq!(t.wait_committed(&topic).await, 130);
    let metrics = second.running.metrics.render();
    assert!(
        metrics.contains("pipeline_records_consumed_total{pipeline=\"indexer\"} 80"),
        "the restart resumed at the committed offsets, not the beginning: {metrics}"
    );
    second.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_joining_and_leaving_loses_nothing() {
    let t = Harness::new().await;
    let topic = t.topic(Topic::Anime);
    let a = t.start_indexer().await;
    for i in 0..100 {
        t.send(&format!("j{i}"), &anime(&format!("j{i}"), 1, "one"))
            .await;
    }
    // A second instance of the same group joins mid-stream: partitions move (revoke,
    // commit, assign) while events keep coming.
    let b = t.start_indexer().await;
    for i in 0..100 {
        t.send(&format!("j{i}"), &anime(&format!("j{i}"), 2, "two"))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    b.stop().await; // ... and leaves again
    for i in 0..100 {
        t.send(&format!("j{i}"), &anime(&format!("j{i}"), 3, "three"))
            .await;
    }
    for i in 0..100 {
        t.wait_doc("anime", &format!("j{i}"), |v, s| {
            v == 3 && s["title"] == json!("three")
        })
        .await;
    }
    assert_eq!(t.wait_committed(&topic).await, 300);
    a.stop().await;
    t.cleanup().await;
}
