//! The indexer binary killed with SIGKILL again and again while events flow: after a final
//! start, every document is at its latest version and every record is committed. At least
//! once + external versions = exactly once in effect.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anineplus_schemas::Topic;
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use common::Harness;

const KEYS: usize = 500;
const VERSIONS: i64 = 6;
const KILLS: usize = 10;

fn anime(id: &str, version: i64) -> Envelope<AnimeData> {
    let mut e = samples::anime_updated(0);
    e.aggregate_id = id.into();
    e.aggregate_version = version;
    if let AnimeData::AnimeUpdated(s) = &mut e.data {
        s.anime_id = id.into();
        s.title = format!("{id} v{version}");
    }
    e
}

fn spawn(t: &Harness) -> Child {
    Command::new(env!("CARGO_BIN_EXE_anineplus-indexer"))
        .env("KAFKA_BROKERS", &t.stack.kafka_brokers)
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("SCHEMA_REGISTRY_URL", &t.stack.registry_url)
        .env("INDEXER_GROUP", &t.group)
        .env("INDEX_PREFIX", &t.index_prefix)
        .env("TOPIC_PREFIX", &t.topic_prefix)
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("INDEXER_BULK_DOCS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anineplus-indexer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_sigkill_repeatedly_while_events_flow_the_index_ends_exact() {
    let t = Harness::new().await;
    let mut child = spawn(&t);
    let send = async {
        for v in 1..=VERSIONS {
            for k in 0..KEYS {
                let id = format!("k{k}");
                t.send(&id, &anime(&id, v)).await;
            }
        }
    };
    let kill = async {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
            child.wait().unwrap();
            child = spawn(&t);
        }
    };
    tokio::join!(send, kill);

    for k in 0..KEYS {
        let id = format!("k{k}");
        t.wait_doc("anime", &id, |v, s| {
            v == VERSIONS && s["title"] == serde_json::json!(format!("{id} v{VERSIONS}"))
        })
        .await;
    }
    let total = t.wait_committed(&t.topic(Topic::Anime)).await;
    assert_eq!(total, KEYS as i64 * VERSIONS);
    child.kill().unwrap();
    child.wait().unwrap();
    t.cleanup().await;
}
