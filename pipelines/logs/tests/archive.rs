//! The log archive on the real stack: every record in exactly one gzip NDJSON file of its
//! service's and day's folder, files named after the partition and offset range they
//! hold and cut by count and time; a replay from the start by another group writes no
//! second copy; a record with an impossible timestamp is a dead letter of the archive's
//! own pipeline.

mod common;

use std::time::Duration;

use anineplus_logs::archive::parse_file_name;
use common::{MIDNIGHT, World, archived_offsets, record};

const RECORDS: i64 = 1200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_record_is_archived_once_in_files_named_by_their_range_and_a_replay_adds_nothing() {
    let t = World::new().await;
    for i in 0..RECORDS {
        let service = if i % 3 == 0 { "indexer" } else { "api" };
        // The first half on the 3rd, the rest on the 4th.
        let timestamp = MIDNIGHT - RECORDS / 2 + i;
        t.send(
            service,
            &record(service, timestamp, None, &format!("line {i}")),
        )
        .await;
    }
    t.send("api", &record("api", -1, None, "no date")).await;

    // Files of at most 250 records, or whatever a second brings.
    let archive = t
        .start_archive(&t.archive_group, Duration::from_secs(1), 250)
        .await;
    t.wait_committed_by(&t.archive_group, &t.logs_topic(), Duration::from_secs(60))
        .await;
    archive.stop().await;

    let files = t.archived();
    let seen = archived_offsets(&files);
    assert_eq!(seen.len() as i64, RECORDS, "every record archived");
    assert!(seen.values().all(|n| *n == 1), "none twice");
    let mut folders = std::collections::BTreeSet::new();
    for (path, lines) in &files {
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts.len(), 3, "<service>/<day>/<file>: {path}");
        folders.insert(format!("{}/{}", parts[0], parts[1]));
        let (partition, first, last) = parse_file_name(parts[2]).expect("a range name");
        assert!(lines.len() <= 250, "{path}: {} lines", lines.len());
        let offsets: Vec<i64> = lines
            .iter()
            .map(|l| l["kafka"]["offset"].as_i64().unwrap())
            .collect();
        assert_eq!(offsets.first(), Some(&first), "{path}");
        assert_eq!(offsets.last(), Some(&last), "{path}");
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{path}: in offset order"
        );
        for line in lines {
            assert_eq!(
                line["kafka"]["partition"].as_i64(),
                Some(i64::from(partition))
            );
            assert_eq!(line["service"].as_str(), Some(parts[0]));
            let day = &line["@timestamp"].as_str().unwrap()[..10];
            assert_eq!(day, parts[1], "{path}: the record's own day");
        }
    }
    let expected: std::collections::BTreeSet<String> = [
        "api/2026-12-03",
        "api/2026-12-04",
        "indexer/2026-12-03",
        "indexer/2026-12-04",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(folders, expected);
    let dead = t
        .read(&format!("{}log-archive.dlq", t.topic_prefix), 1)
        .await;
    assert_eq!(dead.len(), 1);

    // Another group reads everything again, cutting its batches elsewhere: no new file.
    let replay_group = format!("{}-replay", t.archive_group);
    let replay = t
        .start_archive(&replay_group, Duration::from_secs(1), 333)
        .await;
    t.wait_committed_by(&replay_group, &t.logs_topic(), Duration::from_secs(60))
        .await;
    replay.stop().await;
    let again = t.archived();
    assert_eq!(
        again.iter().map(|f| &f.0).collect::<Vec<_>>(),
        files.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "a replay writes no second copy"
    );

    t.clean().await;
}
