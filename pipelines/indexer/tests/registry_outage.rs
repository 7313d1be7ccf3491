//! A registry outage is the source being unavailable, on the real stack with a registry of
//! the test's own (in-process, on the stack's PostgreSQL, so schema ids are the stack's):
//! the indexer pauses, keeps partition order, dead-letters nothing and resumes when the
//! registry answers again, also right after a restart with a cold codec cache.
//!
//! Scenario: five anime indexed at version 1; the registry stops; the indexer restarts
//! (nothing cached); versions 2..=6 of each anime are produced and stay unprocessed while
//! the registry is down (nothing committed, nothing in the retry or dead-letter topics, for
//! longer than the in-place retries and the retry topic's delay); the registry restarts on
//! the same port; every anime reaches version 6, every record is committed, and the retry
//! and dead-letter topics stay empty (so no record left its partition's order).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anineplus_indexer::{self as indexer, IndexerConfig};
use anineplus_schemas::Topic;
use common::{Harness, anime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A registry served in this process.
struct OwnRegistry {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl OwnRegistry {
    /// Serves the registry on `addr` (port 0: a free one); returns it and its address.
    async fn start(addr: SocketAddr) -> (Self, SocketAddr) {
        let database = std::env::var("REGISTRY_DATABASE_URL")
            .unwrap_or_else(|_| anineplus_registry::config::DEFAULT_DATABASE_URL.to_owned());
        let config = anineplus_registry::Config::for_database(database);
        let registry = anineplus_registry::connect(&config)
            .await
            .expect("the stack's registry database");
        // The port of a stopped instance may take a moment to be free again.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("binding {addr}: {e}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("binding {addr}: {e}"),
            }
        };
        let bound = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                // Anonymous reads, as the indexer of this test reads without credentials
                // (a users file lists at least one user: an admin no one here uses).
                let access = anineplus_registry::Access::new(
                    anineplus_registry::auth::AccessFile {
                        users: vec![anineplus_registry::auth::UserEntry {
                            username: "admin".into(),
                            algorithm: "plain".into(),
                            salt: String::new(),
                            password: "unused".into(),
                        }],
                        permissions: Vec::new(),
                    },
                    true,
                )
                .expect("an access of anonymous reads");
                let _ =
                    anineplus_registry::serve(listener, registry, access.into(), shutdown).await;
            }
        });
        (OwnRegistry { shutdown, task }, bound)
    }

    /// Stops it: the port refuses connections afterwards.
    async fn stop(self) {
        self.shutdown.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(3), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_outage_pauses_the_indexer_and_dead_letters_nothing() {
    const ANIME: usize = 5;
    const LAST: i64 = 6;
    let t = Harness::new().await;
    let (registry, addr) = OwnRegistry::start("127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{addr}");
    let mut config = t.config();
    config.schema_registry_url = url.clone();
    let anime_topic = t.topic(Topic::Anime);
    let retry = format!("{}indexer.retry.1", t.topic_prefix);
    let dlq = t.dlq();

    let indexer = start(&t, &config).await;
    for a in 0..ANIME {
        t.send(&format!("a{a}"), &anime(&format!("a{a}"), 1, "v1"))
            .await;
    }
    for a in 0..ANIME {
        t.wait_doc("anime", &format!("a{a}"), |v, _| v == 1).await;
    }
    t.wait_committed(&anime_topic).await;

    // The registry goes away; the indexer restarts with nothing cached.
    registry.stop().await;
    indexer.stop().await;
    let indexer = start(&t, &config).await;
    for v in 2..=LAST {
        for a in 0..ANIME {
            t.send(
                &format!("a{a}"),
                &anime(&format!("a{a}"), v, &format!("v{v}")),
            )
            .await;
        }
    }
    // Longer than the in-place retries (2, up to 200 ms) and the retry topic's delay (1 s).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (committed, end) = t.committed(&anime_topic);
    let in_retry = t.committed(&retry).1;
    let in_dlq = t.committed(&dlq).1;
    eprintln!(
        "registry down 8 s: committed {committed} of {end} source records, {in_retry} in \
         {retry}, {in_dlq} in {dlq}"
    );
    assert_eq!(
        (committed, in_retry, in_dlq),
        (ANIME as i64, 0, 0),
        "paused: nothing committed past version 1, nothing routed"
    );
    assert_eq!(t.doc("anime", "a0").await.map(|d| d.0), Some(1));

    // Back on the same port: everything resumes.
    let (registry, _) = OwnRegistry::start(addr).await;
    for a in 0..ANIME {
        t.wait_doc("anime", &format!("a{a}"), |v, s| {
            v == LAST && s["title"] == format!("v{LAST}")
        })
        .await;
    }
    assert_eq!(t.wait_committed(&anime_topic).await, ANIME as i64 * LAST);
    let (in_retry, in_dlq) = (t.committed(&retry).1, t.committed(&dlq).1);
    eprintln!(
        "registry back: every record indexed and committed; {in_retry} in {retry}, {in_dlq} in {dlq}"
    );
    assert_eq!((in_retry, in_dlq), (0, 0));
    indexer.stop().await;
    registry.stop().await;
    t.cleanup().await;
}

/// An indexer of `config` running in this process.
struct Indexer {
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_streams::Result<()>>,
}

impl Indexer {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("indexer stops within 60 s")
            .expect("indexer task")
            .expect("indexer ran without error");
    }
}

async fn start(_: &Harness, config: &IndexerConfig) -> Indexer {
    let shutdown = CancellationToken::new();
    let (pipeline, _) = indexer::prepare(config, &shutdown)
        .await
        .expect("indexer set-up");
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    Indexer { shutdown, task }
}
