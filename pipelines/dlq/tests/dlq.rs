//! The dead-letter tools on the real stack: scan with filters, inspect (decoded or not),
//! replay to the original topic (a record that fails again returns to the dead-letter
//! topic; one whose cause is gone gets indexed), purge; replay straight into the indexer's
//! sink (dry run, a record failing again, one indexed after its cause is fixed).

#[path = "../../indexer/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use anineplus_indexer as indexer;
use anineplus_indexer::denormalise::Indexed;
use anineplus_schemas::Topic;
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use anineplus_streams::dead_letter::header as h;
use anineplus_streams::dlq::{
    self, DeadLetterRecord, Filter, REPLAYED_FROM, SinkReplay, SinkReplayReport, SinkVerdict,
};
use common::Harness;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde_json::json;

fn anime(id: &str, version: i64, year: i32) -> Envelope<AnimeData> {
    let mut e = samples::anime_updated(0);
    e.aggregate_id = id.into();
    e.aggregate_version = version;
    if let AnimeData::AnimeUpdated(s) = &mut e.data {
        s.anime_id = id.into();
        s.release_year = Some(year);
    }
    e
}

async fn try_scan(t: &Harness, filter: Filter) -> anineplus_streams::Result<Vec<DeadLetterRecord>> {
    let (brokers, topic) = (t.stack.kafka_brokers.clone(), t.dlq());
    tokio::task::spawn_blocking(move || dlq::scan(&brokers, &topic, &filter, |_, _| {}))
        .await
        .unwrap()
}

async fn scan(t: &Harness, filter: Filter) -> Vec<DeadLetterRecord> {
    try_scan(t, filter).await.unwrap()
}

async fn wait_count(t: &Harness, n: usize) -> Vec<DeadLetterRecord> {
    for _ in 0..100 {
        // The indexer creates the dead-letter topic as it starts: it may not exist yet, or
        // its metadata may lag.
        let letters = try_scan(t, Filter::default()).await.unwrap_or_else(|e| {
            eprintln!("scan failed, retrying: {e}");
            Vec::new()
        });
        if letters.len() >= n {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("fewer than {n} dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_filtered_inspected_replayed_and_purged() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    t.send_raw(Topic::Anime, "junk", b"garbage").await;
    t.send("far", &anime("far", 1, 70_000)).await;
    t.send("ok", &anime("ok", 1, 2001)).await;
    t.wait_doc("anime", "ok", |v, _| v == 1).await;

    // A record that exhausted its retries while the engine was down (written here directly).
    let producer = anineplus_connectors::kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    let good = t.codec.encode(&anime("later", 2, 1999)).await.unwrap();
    let anime_topic = t.topic(Topic::Anime);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: h::ORIGINAL_TOPIC,
            value: Some(anime_topic.as_str()),
        })
        .insert(Header {
            key: h::ERROR_CLASS,
            value: Some("retryable"),
        })
        .insert(Header {
            key: h::LAST_FAILURE,
            value: Some("1"),
        });
    producer
        .send(
            FutureRecord::to(&t.dlq())
                .key("later")
                .payload(&good)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let all = wait_count(&t, 3).await;
    assert_eq!(all.len(), 3);
    let permanent = scan(
        &t,
        Filter {
            class: Some("permanent".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(permanent.len(), 2);
    let far = scan(
        &t,
        Filter {
            key: Some("far".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(far.len(), 1);
    let since = scan(
        &t,
        Filter {
            since_ms: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since.len(), 2, "the hand-written one failed at t=1");

    let text = far[0].inspect(&t.codec, &t.topic_prefix).await;
    assert!(text.contains("value (decoded)"), "{text}");
    assert!(text.contains("70000"), "{text}");
    assert!(text.contains("error-message: sink: status 400"), "{text}");
    let junk = scan(
        &t,
        Filter {
            key: Some("junk".into()),
            ..Default::default()
        },
    )
    .await;
    let text = junk[0].inspect(&t.codec, &t.topic_prefix).await;
    assert!(text.contains("does not decode"), "{text}");

    // Replay: the hand-written one is indexed now; the garbage fails again and returns.
    let selected: Vec<_> = all.iter().filter(|l| l.key() != "far").cloned().collect();
    assert_eq!(
        dlq::replay(&t.stack.kafka_brokers, &selected, |_, _| {})
            .await
            .unwrap(),
        2
    );
    t.wait_doc("anime", "later", |v, _| v == 2).await;
    let after = wait_count(&t, 4).await;
    let returned = after.last().unwrap();
    assert_eq!(returned.key(), "junk");
    assert!(returned.raw.header(REPLAYED_FROM).is_some(), "{returned:?}");
    assert_eq!(returned.raw.header(h::ATTEMPTS), Some("1"));

    // Purging everything, replayed or not, on purpose.
    assert_eq!(
        dlq::purge_all(&t.stack.kafka_brokers, &t.dlq())
            .await
            .unwrap(),
        4
    );
    assert!(scan(&t, Filter::default()).await.is_empty());
    indexer.stop().await;
    t.cleanup().await;
}

/// Records in `topic` (sum of the partitions' high watermarks).
async fn end(t: &Harness, topic: &str) -> i64 {
    let (brokers, topic) = (t.stack.kafka_brokers.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || dlq::end_offsets(&brokers, &topic))
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|(_, _, high)| high)
        .sum()
}

fn describe(item: &Indexed) -> String {
    let doc = &item.doc;
    format!("{}/{}@{}", doc.index, doc.id, doc.version)
}

/// Runs the `anineplus-dlq` binary on this test's topics and indices: (exit code, stdout).
async fn cli(t: &Harness, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_anineplus-dlq"))
        .args(args)
        .env("KAFKA_BROKERS", &t.stack.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", &t.stack.registry_url)
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("INDEX_PREFIX", &t.index_prefix)
        .env("TOPIC_PREFIX", &t.topic_prefix)
        .output()
        .await
        .expect("run anineplus-dlq");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_replay_straight_into_the_sink() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    // The mapping rejects a release year beyond a `short`; garbage does not decode.
    t.send("far", &anime("far", 3, 70_000)).await;
    t.send_raw(Topic::Anime, "junk", b"garbage").await;
    let letters = wait_count(&t, 2).await;
    assert_eq!(letters.len(), 2);
    // Replaying into the sink needs no running pipeline: stop it, so only the replay writes.
    indexer.stop().await;
    let source = t.topic(Topic::Anime);
    let source_end = end(&t, &source).await;
    assert_eq!(source_end, 2);
    let original = |key: &str| letters.iter().find(|l| l.key() == key).unwrap().clone();
    let (far, junk) = (original("far"), original("junk"));
    assert_eq!(far.class(), "permanent");

    let config = t.config();
    let topology = indexer::topology(&config, false).await.unwrap();
    let replay = |dry_run| SinkReplay {
        topology: &topology,
        codec: &t.codec,
        brokers: &t.stack.kafka_brokers,
        pipeline: indexer::PIPELINE,
        policy: config.retry.clone(),
        batch: 100,
        dry_run,
        describe,
    };
    let far_doc = format!("{}/far@3", t.alias("anime"));

    // Dry run: decodes and builds the document, writes and produces nothing.
    let mut verdicts = Vec::new();
    let report = replay(true)
        .run(
            &letters,
            |l, v| verdicts.push((l.key(), v.clone())),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        SinkReplayReport {
            replayed: 1,
            items: 1,
            returned: 1
        }
    );
    for (key, verdict) in &verdicts {
        match (key.as_str(), verdict) {
            ("far", SinkVerdict::WouldWrite(docs)) => assert_eq!(docs, &vec![far_doc.clone()]),
            ("junk", SinkVerdict::Returned(f)) => {
                assert!(f.message.starts_with("decode:"), "{f:?}")
            }
            other => panic!("unexpected verdict {other:?}"),
        }
    }
    // The binary's dry run says the same and writes nothing either.
    let (code, out) = cli(&t, &["replay", "--to", "sink", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("would write {far_doc}")), "{out}");
    assert!(
        out.contains("would return to the dead-letter topic"),
        "{out}"
    );
    assert!(
        out.contains("dry run: 1 dead letter(s) would be replayed into the sink (1 document(s))"),
        "{out}"
    );
    assert!(t.doc("anime", "far").await.is_none());
    assert_eq!(end(&t, &t.dlq()).await, 2, "a dry run produces nothing");

    // Before the fix: both fail again and go back to the DLQ, attempts incremented.
    let report = replay(false)
        .run(&letters, |_, _| {}, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        report,
        SinkReplayReport {
            replayed: 0,
            items: 0,
            returned: 2
        }
    );
    let after = wait_count(&t, 4).await;
    assert_eq!(after.len(), 4);
    for old in [&far, &junk] {
        let from = format!("{}/{}/{}", old.raw.topic, old.raw.partition, old.raw.offset);
        let back = after
            .iter()
            .find(|l| l.raw.header(REPLAYED_FROM) == Some(from.as_str()))
            .unwrap_or_else(|| panic!("{from} did not come back: {after:?}"));
        assert_eq!(back.key(), old.key());
        assert_eq!(back.raw.payload, old.raw.payload);
        assert_eq!(back.original_topic(), source);
        assert_eq!(back.class(), "permanent");
        let attempts = |l: &DeadLetterRecord| l.get(h::ATTEMPTS).parse::<u32>().unwrap();
        assert_eq!(attempts(back), attempts(old) + 1, "{back:?}");
        for same in [h::ORIGINAL_PARTITION, h::ORIGINAL_OFFSET, h::FIRST_FAILURE] {
            assert_eq!(back.get(same), old.get(same), "{same}");
        }
        assert!(back.last_failure_ms() >= old.last_failure_ms());
        assert_eq!(back.get("correlation-id"), old.get("correlation-id"));
    }
    let back_far = after
        .iter()
        .find(|l| l.key() == "far" && l.raw.header(REPLAYED_FROM).is_some())
        .unwrap();
    assert!(
        back_far.get(h::ERROR_MESSAGE).contains("sink: status 400"),
        "{back_far:?}"
    );
    assert!(t.doc("anime", "far").await.is_none());

    // The fix: the index now ignores malformed release years. Replay the original alone.
    let response = t
        .search
        .indices()
        .put_mapping(elasticsearch::indices::IndicesPutMappingParts::Index(&[
            &t.alias("anime"),
        ]))
        .body(json!({ "properties": { "releaseYear": { "type": "short", "ignore_malformed": true } } }))
        .send()
        .await
        .unwrap();
    assert!(response.status_code().is_success(), "{response:?}");
    let mut replayed = Vec::new();
    let report = replay(false)
        .run(
            std::slice::from_ref(&far),
            |_, v| replayed.push(v.clone()),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        SinkReplayReport {
            replayed: 1,
            items: 1,
            returned: 0
        }
    );
    assert_eq!(replayed, vec![SinkVerdict::Replayed(vec![far_doc])]);
    let (version, doc) = t.doc("anime", "far").await.expect("far indexed");
    assert_eq!(version, 3);
    assert_eq!(doc["aggregateVersion"], json!(3));
    let hits = t
        .search_live("anime", json!({ "ids": { "values": ["far"] } }))
        .await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    // Without passing through the source topic, and nothing went back to the DLQ.
    assert_eq!(end(&t, &source).await, source_end);
    assert_eq!(end(&t, &t.dlq()).await, 4);
    t.cleanup().await;
}

/// Writes a dead letter of `key` (an anime event that indexes fine) straight to the
/// dead-letter topic.
async fn letter(t: &Harness, producer: &anineplus_connectors::kafka::Producer, key: &str) {
    let value = t.codec.encode(&anime(key, 1, 2000)).await.unwrap();
    let anime_topic = t.topic(Topic::Anime);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: h::ORIGINAL_TOPIC,
            value: Some(anime_topic.as_str()),
        })
        .insert(Header {
            key: h::ERROR_CLASS,
            value: Some("retryable"),
        });
    producer
        .send(
            FutureRecord::to(&t.dlq())
                .key(key)
                .payload(&value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// Three dead letters replayed, two more arrive, then `purge --yes`: only the three
/// replayed are deleted; the two no replay covered stay. Then a replay filtered to one of
/// them: purge deletes it only if nothing unreplayed precedes it in its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_deletes_only_the_dead_letters_a_replay_covered() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let t = Harness::new().await;
    let admin: AdminClient<DefaultClientContext> =
        anineplus_connectors::kafka::producer_config(&t.stack.kafka_brokers)
            .create()
            .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&t.dlq(), 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer = anineplus_connectors::kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    for key in ["r1", "r2", "r3"] {
        letter(&t, &producer, key).await;
    }
    wait_count(&t, 3).await;
    let (code, out) = cli(&t, &["replay"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed 3"), "{out}");
    for key in ["n1", "n2"] {
        letter(&t, &producer, key).await;
    }
    wait_count(&t, 5).await;

    let (code, out) = cli(&t, &["purge", "--dry-run"]).await;
    eprintln!("purge --dry-run: {out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&t, &["purge", "--yes"]).await;
    eprintln!("purge --yes: {out}");
    assert_eq!(code, 0, "{out}");
    let left = keys(&t).await;
    eprintln!("left after purge: {left:?}");
    assert_eq!(
        left,
        vec!["n1", "n2"],
        "only the replayed letters were deleted"
    );
    assert!(out.contains("deleted 3 replayed"), "{out}");

    // Nothing covered since: a second purge deletes nothing.
    let (code, out) = cli(&t, &["purge", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(keys(&t).await, vec!["n1", "n2"]);
    // A filtered replay of n1: purged only when it leads its partition.
    let letters = scan(&t, Filter::default()).await;
    let n1 = letters.iter().find(|l| l.key() == "n1").unwrap();
    let n2 = letters.iter().find(|l| l.key() == "n2").unwrap();
    let n1_leads = n1.raw.partition != n2.raw.partition || n1.raw.offset < n2.raw.offset;
    let (code, out) = cli(&t, &["replay", "--key", "n1"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&t, &["purge", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let expected = if n1_leads {
        vec!["n2"]
    } else {
        vec!["n1", "n2"]
    };
    assert_eq!(
        keys(&t).await,
        expected,
        "n1 leads its partition: {n1_leads}"
    );
    t.cleanup().await;
}

/// The keys of the dead letters present, sorted.
async fn keys(t: &Harness) -> Vec<String> {
    let mut keys: Vec<String> = scan(t, Filter::default())
        .await
        .iter()
        .map(DeadLetterRecord::key)
        .collect();
    keys.sort();
    keys
}

/// `replay --to sink` while the registry is down: the dead letters cannot be decoded, which
/// is no fault of theirs. The run stops with an error naming the registry and a non-zero
/// exit; nothing is written, produced back to the dead-letter topic, or marked replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_into_the_sink_stops_when_the_registry_is_down() {
    let t = Harness::new().await;
    let producer = anineplus_connectors::kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    for key in ["d1", "d2"] {
        letter(&t, &producer, key).await;
    }
    wait_count(&t, 2).await;
    let dlq_end = end(&t, &t.dlq()).await;
    // A closed port: every registry call is refused, as when the registry is down.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_anineplus-dlq"))
        .args(["replay", "--to", "sink"])
        .env("KAFKA_BROKERS", &t.stack.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("INDEX_PREFIX", &t.index_prefix)
        .env("TOPIC_PREFIX", &t.topic_prefix)
        .env("RETRY_IN_PLACE", "1")
        .env("RETRY_MIN_DELAY", "10ms")
        .env("RETRY_MAX_DELAY", "10ms")
        .output()
        .await
        .expect("run anineplus-dlq");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("registry"),
        "the error names the registry: {text}"
    );
    assert_eq!(
        end(&t, &t.dlq()).await,
        dlq_end,
        "nothing produced back to the dead-letter topic"
    );
    assert!(t.doc("anime", "d1").await.is_none());
    // Nothing was marked replayed: a purge deletes nothing.
    let (code, out) = cli(&t, &["purge", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(keys(&t).await, vec!["d1", "d2"]);
    t.cleanup().await;
}
