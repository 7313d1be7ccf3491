//! Both log pipelines as the `anineplus-logs` binary, each killed with SIGKILL three times
//! while 30,000 records flow: after a final start every record is committed by both
//! groups, the index holds exactly one document per record (ids are where the records
//! are, so a redelivery rewrites, never adds) and the archive holds every record in
//! exactly one file (a re-read skips what finished files hold).

mod common;

use std::process::Child;
use std::time::Duration;

use common::{World, archived_offsets, record};

const RECORDS: i64 = 30_000;
const KILLS: usize = 3;

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_stream_the_pipelines_leave_no_duplicate_and_no_gap() {
    let t = World::new().await;
    let index_group = t.group.clone();
    let archive_group = t.archive_group.clone();
    let mut index = t.spawn("index", &index_group);
    let mut archive = t.spawn("archive", &archive_group);

    let producer = {
        let world = &t;
        async move {
            // 500 in flight at a time: acknowledged one by one it would take minutes.
            for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(500) {
                futures::future::join_all(chunk.iter().map(|i| async move {
                    let service = ["api", "indexer", "registry"][(i % 3) as usize];
                    let now = chrono::Utc::now().timestamp_millis();
                    let value = record(service, now, Some(&format!("c-{i}")), "flowing");
                    world.send(service, &value).await;
                }))
                .await;
            }
        }
    };
    let killer = async {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            kill(&mut index);
            kill(&mut archive);
            index = t.spawn("index", &index_group);
            archive = t.spawn("archive", &archive_group);
        }
    };
    tokio::join!(producer, killer);

    t.wait_committed_by(&index_group, &t.logs_topic(), Duration::from_secs(120))
        .await;
    t.wait_committed_by(&archive_group, &t.logs_topic(), Duration::from_secs(120))
        .await;
    t.wait_count(RECORDS, Duration::from_secs(30)).await;
    kill(&mut index);
    kill(&mut archive);

    let seen = archived_offsets(&t.archived());
    assert_eq!(seen.len() as i64, RECORDS, "every record archived");
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "{twice} records archived more than once");
    println!(
        "{RECORDS} records, {KILLS} SIGKILLs of each pipeline: {RECORDS} documents, {} archive files",
        t.archived().len()
    );

    t.clean().await;
}
