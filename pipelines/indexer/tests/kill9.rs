//! The indexer binary killed with SIGKILL ten times while 100,000 events flow: after a final
//! start, every record is committed and the anime index equals PostgreSQL exactly, checked
//! by the project's own `verify` (every id, its version and its deleted flag; counts).
//! At least once + versioned writes = exactly once in effect.
//!
//! The rows are written to a database of the test's own first (10,000 anime at version 10,
//! one in ten deleted), then their whole history (versions 1..=10) is produced as events,
//! as the API's relay would have, while the indexer is killed every 1.5 s.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anineplus_indexer::indices::Index;
use anineplus_schemas::Topic;
use anineplus_sync::SearchSync;
use anineplus_testkit::TestDatabase;
use common::{Harness, anime, anime_deleted};
use futures::StreamExt;

const ANIME: i64 = 10_000;
const VERSIONS: i64 = 10;
const KILLS: usize = 10;

fn spawn(t: &Harness) -> Child {
    Command::new(env!("CARGO_BIN_EXE_anineplus-indexer"))
        .env("KAFKA_BROKERS", &t.stack.kafka_brokers)
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("SCHEMA_REGISTRY_URL", &t.stack.registry_url)
        .env("INDEXER_GROUP", &t.group)
        .env("INDEX_PREFIX", &t.index_prefix)
        .env("TOPIC_PREFIX", &t.topic_prefix)
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("INDEXER_BULK_DOCS", "500")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anineplus-indexer")
}

/// Writes the anime rows (and the user who created them); returns `(id, deleted)` of each.
async fn rows(db: &TestDatabase) -> Vec<(String, bool)> {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    anineplus_api::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash) \
         VALUES ('00000000-0000-0000-0000-000000000001', 'k@example.com', 'K', 'ADMIN', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO anime (id, title, status, created_by, version, deleted_at) \
         SELECT gen_random_uuid(), 'anime ' || n, 'AIRING', \
                '00000000-0000-0000-0000-000000000001', $2, \
                CASE WHEN n % 10 = 0 THEN now() END \
         FROM generate_series(1, $1::bigint) AS n \
         RETURNING id::text, deleted_at IS NOT NULL",
    )
    .bind(ANIME)
    .bind(VERSIONS)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_sigkill_ten_times_while_100k_events_flow_the_index_equals_postgresql() {
    let t = Harness::new().await;
    let db = TestDatabase::create("kill9").await;
    let rows = rows(&db).await;
    let started = Instant::now();
    let mut child = spawn(&t);
    let t = &t;
    let send = async {
        // Version by version, so every key's history is in order; 256 sends in flight.
        for v in 1..=VERSIONS {
            futures::stream::iter(&rows)
                .for_each_concurrent(256, |(id, deleted)| {
                    let e = if *deleted && v == VERSIONS {
                        anime_deleted(id, v)
                    } else {
                        anime(id, v, &format!("{id} v{v}"))
                    };
                    async move { t.send(id, &e).await }
                })
                .await;
        }
        eprintln!(
            "kill9: {} events produced in {:.1} s",
            ANIME * VERSIONS,
            started.elapsed().as_secs_f64()
        );
    };
    let kill = async {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
            child.wait().unwrap();
            child = spawn(t);
        }
        eprintln!("kill9: {KILLS} SIGKILLs sent");
    };
    tokio::join!(send, kill);

    let total = t
        .wait_committed_within(&t.topic(Topic::Anime), Duration::from_secs(600))
        .await;
    assert_eq!(total, ANIME * VERSIONS, "every record committed");
    eprintln!(
        "kill9: all {total} records committed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let sync = SearchSync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    let drift = sync.verify(Index::Anime).await.unwrap();
    assert_eq!(drift.rows, ANIME as usize);
    assert_eq!(drift.documents, ANIME as usize, "{drift:?}");
    assert!(drift.in_sync(), "index differs from PostgreSQL: {drift:?}");
    eprintln!(
        "kill9: verify: {} rows = {} documents, every version equal",
        drift.rows, drift.documents
    );
    child.kill().unwrap();
    child.wait().unwrap();
    t.cleanup().await;
    db.remove().await;
}
