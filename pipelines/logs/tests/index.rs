//! The log index pipeline on the real stack: records land in daily indices chosen by their
//! own timestamp (across a midnight), once each even when read again from the start by
//! another group; context fields with dotted names or date-like values are indexed like
//! any other, in a new index and in one made by an earlier build with older rules; an undecodable record and one with an impossible timestamp become dead
//! letters with their reason while the rest is indexed; `anineplus-logs trace` prints one
//! request's records of every service in time order, filtered by level and service.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anineplus_schemas::Topic;
use anineplus_schemas::events::LogLevel;
use anineplus_streams::dead_letter::header as h;
use anineplus_testkit::world::header;
use common::{MIDNIGHT, World, record};
use elasticsearch::http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_go_to_the_index_of_their_own_day_once_each_and_bad_ones_to_dead_letters() {
    let t = World::new().await;
    // The api's index of 2026-12-03 exists already, made by an earlier build with the
    // rules of old for new context fields (every path a keyword, dates detected): the
    // pipeline brings them up to date at start, or it refuses the records below.
    let mut old = anineplus_logs::index::template(&t.prefix)["template"].take();
    let mappings = old["mappings"].as_object_mut().unwrap();
    mappings.remove("date_detection");
    mappings["dynamic_templates"][0]["context_fields_as_keywords"]
        .as_object_mut()
        .unwrap()
        .remove("match_mapping_type");
    t.call(
        Method::Put,
        &format!("/{}-api-2026.12.03", t.prefix),
        Some(&old),
    )
    .await;
    let cid = "req-trace-1";
    let mut api_error = record("api", MIDNIGHT - 2, Some(cid), "resolver failed");
    api_error.level = LogLevel::Error;
    api_error
        .context
        .insert("operation".into(), "createAnime".into());
    // One request's records from two services around midnight, in time order:
    // api 23:59:59.997, api 23:59:59.998 (the error), indexer 23:59:59.999, indexer
    // 00:00:00.001; and an api record of no request at 00:00:00.000.
    t.send(
        "api",
        &record("api", MIDNIGHT - 3, Some(cid), "request started"),
    )
    .await;
    t.send(
        "indexer",
        &record("indexer", MIDNIGHT - 1, Some(cid), "record written"),
    )
    .await;
    t.send("api", &api_error).await;
    t.send(
        "indexer",
        &record("indexer", MIDNIGHT + 1, Some(cid), "second record written"),
    )
    .await;
    t.send("api", &record("api", MIDNIGHT, None, "no request"))
        .await;
    // Context fields the engine reads as objects or dates: the `log.*` fields tracing gives
    // a record bridged from the `log` crate (dotted names: `context.log` becomes an
    // object), and one field first with a date-like value, then with another.
    let mut bridged = record("api", MIDNIGHT - 5, None, "bridged from log");
    for (k, v) in [
        ("log.target", "rdkafka::client"),
        ("log.module_path", "rdkafka::client"),
        ("log.file", "src/client.rs"),
        ("log.line", "227"),
        ("since", "2026-12-03T10:00:00Z"),
    ] {
        bridged.context.insert(k.into(), v.into());
    }
    t.send("api", &bridged).await;
    let mut bridged_new = bridged.clone();
    bridged_new.service = "indexer".into();
    bridged_new.timestamp = MIDNIGHT + 2;
    bridged_new.message = "bridged into a new index".into();
    t.send("indexer", &bridged_new).await;
    let mut later = record("api", MIDNIGHT - 4, None, "not a date");
    later.context.insert("since".into(), "yesterday".into());
    t.send("api", &later).await;
    // A record nobody can decode, and one whose timestamp is no date.
    t.send_raw(Topic::Logs, "api", b"not avro at all").await;
    t.send("api", &record("api", -5, None, "from before 1970"))
        .await;

    let pipeline = t.start_index(&t.group).await;
    t.wait_committed(&t.logs_topic()).await;
    pipeline.stop().await;

    let indices = t.indices().await;
    let expected: BTreeMap<String, i64> = [
        (format!("{}-api-2026.12.03", t.prefix), 4),
        (format!("{}-api-2026.12.04", t.prefix), 1),
        (format!("{}-indexer-2026.12.03", t.prefix), 1),
        (format!("{}-indexer-2026.12.04", t.prefix), 2),
    ]
    .into();
    assert_eq!(indices, expected);
    let docs = t.documents().await;
    let error = docs
        .iter()
        .find(|d| d["_source"]["level"] == "ERROR")
        .expect("the error record");
    assert_eq!(error["_source"]["@timestamp"], "2026-12-03T23:59:59.998Z");
    assert_eq!(error["_source"]["correlationId"], cid);
    assert_eq!(error["_source"]["context"]["operation"], "createAnime");
    let bridged = docs
        .iter()
        .find(|d| d["_source"]["message"] == "bridged from log")
        .expect("the record bridged from log, indexed");
    assert_eq!(
        bridged["_source"]["context"]["log.target"],
        "rdkafka::client"
    );
    let coordinates = &error["_source"]["kafka"];
    assert_eq!(
        error["_id"].as_str().unwrap(),
        format!(
            "{}:{}:{}",
            t.logs_topic(),
            coordinates["partition"],
            coordinates["offset"]
        ),
        "the id is where the record is"
    );

    let dead = t.read(&format!("{}log-index.dlq", t.topic_prefix), 2).await;
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|(_, _, headers)| {
            assert_eq!(header(headers, h::ERROR_CLASS), Some("permanent"));
            header(headers, h::ERROR_MESSAGE).unwrap()
        })
        .collect();
    reasons.sort();
    assert!(
        reasons.iter().any(|r| r.contains("timestamp -5")),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 2, "{reasons:?}");

    // Read again from the start by another group (a replay): the same documents, no more.
    let replay = t.start_index(&format!("{}-replay", t.group)).await;
    t.wait_committed_by(
        &format!("{}-replay", t.group),
        &t.logs_topic(),
        Duration::from_secs(30),
    )
    .await;
    replay.stop().await;
    assert_eq!(t.indices().await, expected, "a replay adds no document");

    // The request's records from both services, in time order, across the two days.
    let (ok, out, err) = t.command(&["trace", cid]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("2026-12-03T23:59:59.997Z INFO  api "),
        "{out}"
    );
    assert!(
        lines[1].contains("ERROR api") && lines[1].contains("resolver failed"),
        "{out}"
    );
    assert!(lines[1].contains("operation=createAnime"), "{out}");
    assert!(
        lines[2].contains("indexer") && lines[2].contains(" record written"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("2026-12-04T00:00:00.001Z INFO  indexer"),
        "{out}"
    );
    let (_, errors, _) = t.command(&["trace", cid, "--level", "error", "--json"]);
    let errors: Vec<serde_json::Value> = errors
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["message"], "resolver failed");
    assert_eq!(errors[0]["correlationId"], cid);
    let (_, indexer, _) = t.command(&["trace", cid, "--service", "indexer"]);
    assert_eq!(indexer.lines().count(), 2, "{indexer}");
    let (ok, _, err) = t.command(&["trace", cid, "--level", "loud"]);
    assert!(!ok && err.contains("unknown level"), "{err}");
    let (ok, out, err) = t.command(&["trace", "no-such-request"]);
    assert!(
        ok && out.is_empty() && err.contains("no records"),
        "{out} {err}"
    );

    t.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_follow_prints_new_records_of_the_request_as_they_are_indexed() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let t = World::new().await;
    let pipeline = t.start_index(&t.group).await;
    let now = chrono::Utc::now().timestamp_millis();
    t.send("api", &record("api", now, Some("req-follow"), "first"))
        .await;
    t.wait_count(1, Duration::from_secs(30)).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-logs"))
        .args(["trace", "req-follow", "--follow"])
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("LOG_INDEX_PREFIX", &t.prefix)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(3)
            .collect::<Vec<_>>()
    });
    // Records logged after the command started, one of another request between them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    t.send(
        "indexer",
        &record("indexer", now + 10, Some("req-follow"), "second"),
    )
    .await;
    // `--follow` prints records as they become searchable; records of two services sit on
    // two partitions, indexed by concurrent bulks in either order, so let this one land
    // before the next ones are sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    t.send(
        "api",
        &record("api", now + 20, Some("req-other"), "not this one"),
    )
    .await;
    t.send("api", &record("api", now + 30, Some("req-follow"), "third"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !lines.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "--follow printed fewer than 3 lines"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.join().unwrap();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap_or(""))
        .collect();
    assert_eq!(messages, ["first", "second", "third"], "{lines:?}");
    pipeline.stop().await;
    t.clean().await;
}
