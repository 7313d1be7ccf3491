//! The failure drills on the cluster mode (`make up CLUSTER=1`): three Kafka nodes with
//! replication 3 and `min.insync.replicas` 2, two search nodes, two instances of every
//! service. Run by `scripts/test-cluster.sh` (`make test-cluster`, the cluster step of CI),
//! with `--ignored`: `make test` lists it as ignored (the single-node stack has nothing to
//! drill), the cluster step runs it, and there a missing cluster fails it.
//!
//! While writers update anime through both API instances, one after another: the leader of
//! the `anime` topic's partition 0 is killed with `kill -9` five times (each restarted and
//! back in sync before the next), each search node is stopped and restarted (node 1, the
//! first address of every client, then node 2; while each is away `searchAnime` must
//! answer through both API instances), indexer 2 and then analytics 2 are stopped
//! and started again (their groups rebalance to one member and back to two: the test waits
//! for each), indexer 1 and API 1 are killed with `kill -9` and restarted. At the end every acknowledged update is in
//! PostgreSQL (at that version or a later one), every anime is in the index at its
//! PostgreSQL version and title, `anineplus-search verify` is clean, and the indexer's
//! dead-letter topic is empty.
//!
//! A third writer posts comments on the same anime through both instances all along: the
//! two analytics instances (exactly once, their transactions on the brokers the drills
//! kill) must end with each anime's comment count, summed over its windows, equal to its
//! comments in PostgreSQL: a duplicate from a replayed transaction would count one more,
//! a lost one one less.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const APIS: [&str; 2] = ["http://127.0.0.1:13000", "http://127.0.0.1:13001"];
const BROKERS: &str = "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096";
const SEARCH: &str = "http://127.0.0.1:19200";
const DATABASE: &str = "postgres://anineplus:anineplus@127.0.0.1:15432/anineplus";
const ANIME: usize = 24;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn stack_dir() -> PathBuf {
    std::env::var_os("STACK_DIR").map_or_else(|| root().join(".stack/cluster"), PathBuf::from)
}

fn step(what: &str) {
    eprintln!("[cluster {}] {what}", chrono_now());
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The pid the cluster's scripts recorded for `svc` (only ours is ever killed).
fn pid_of(svc: &str) -> i32 {
    let file = stack_dir().join("run").join(format!("{svc}.pid"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (is the cluster up?)", file.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Sends process `pid` the signal `signal` (`-9`, `-TERM`, `-0`: is it alive?) with
/// `kill`; returns whether `kill` succeeded.
fn kill(pid: i32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Sends `svc` `signal`, failing the test when it cannot; returns its pid.
fn signal(svc: &str, signal: &str) -> i32 {
    let pid = pid_of(svc);
    step(&format!("kill {signal} {svc} (pid {pid})"));
    assert!(kill(pid, signal), "kill {signal} {pid} ({svc})");
    pid
}

fn kill9(svc: &str) {
    signal(svc, "-9");
}

/// Runs a stack script in cluster mode with `env`, failing the test when it fails.
fn script(args: &[&str], env: &[(&str, &str)]) {
    let started = Instant::now();
    let out = Command::new("bash")
        .args(args)
        .current_dir(root())
        .env("CLUSTER", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} {env:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    step(&format!(
        "{args:?} {env:?} done in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

fn metadata_consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", "cluster-drills")
        .create()
        .unwrap()
}

/// `(leader, replicas, in-sync replicas)` of `topic`'s `partition`.
fn partition_state(c: &BaseConsumer, topic: &str, partition: i32) -> Option<(i32, usize, usize)> {
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let p = md
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == partition)?;
    Some((p.leader(), p.replicas().len(), p.isr().len()))
}

async fn wait_in_sync(c: &BaseConsumer, topic: &str, partition: i32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((leader, _, isr)) = partition_state(c, topic, partition)
            && leader > 0
            && isr == 3
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition} not back to 3 in-sync replicas in 120s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops `svc` as an operator would (SIGTERM, then waits for it to exit): a consumer
/// closed this way leaves its group, or, as a static member, keeps its place until its
/// session ends.
fn sigterm(svc: &str) {
    let pid = signal(svc, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kill(pid, "-0") {
        assert!(
            Instant::now() < deadline,
            "{svc} still running 30s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until consumer group `group` is stable with `members` members; returns how long
/// that took.
async fn wait_members(c: &BaseConsumer, group: &str, members: usize) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        if let Ok(list) = c.fetch_group_list(Some(group), Duration::from_secs(5))
            && let Some(g) = list.groups().first()
        {
            if g.state() == "Stable" && g.members().len() == members {
                return started.elapsed();
            }
            last = format!("{} with {} members", g.state(), g.members().len());
        }
        assert!(
            Instant::now() < deadline,
            "group {group} not stable with {members} members in 120s (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The records in the indexer's dead-letter topic.
fn dead_letters(c: &BaseConsumer) -> i64 {
    let mut dead = 0;
    if let Ok(md) = c.fetch_metadata(Some("indexer.dlq"), Duration::from_secs(5))
        && let Some(t) = md.topics().first()
    {
        for p in t.partitions() {
            let (low, high) = c
                .fetch_watermarks("indexer.dlq", p.id(), Duration::from_secs(5))
                .unwrap_or((0, 0));
            dead += high - low;
        }
    }
    dead
}

/// Waits until both search nodes are in the cluster and every shard has its copies.
async fn wait_search_green(http: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let url = format!("{SEARCH}/_cluster/health?wait_for_nodes=2&wait_for_status=green&timeout=5s");
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the search cluster is not green with 2 nodes in 180s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Api {
    http: reqwest::Client,
}

impl Api {
    async fn gql(
        &self,
        base: &str,
        query: &str,
        vars: Value,
        token: Option<&str>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .post(format!("{base}/graphql"))
            .timeout(Duration::from_secs(10))
            .json(&json!({"query": query, "variables": vars}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let reply: Value = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(errors) = reply.get("errors") {
            return Err(errors.to_string());
        }
        Ok(reply["data"].clone())
    }

    /// `searchAnime(query: q)`'s total count through `base`, and the errors met before it
    /// (asked again every second for up to 60 s: the writers' share of the rate limit, or
    /// a node busy with the loss of its peer, may refuse or time out a request).
    async fn search(&self, base: &str, token: &str, q: &str) -> (i64, Vec<String>) {
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .gql(
                    base,
                    "query($q: String!) { searchAnime(query: $q) { totalCount } }",
                    json!({"q": q}),
                    Some(token),
                )
                .await
            {
                Ok(data) => {
                    let found = data["searchAnime"]["totalCount"].as_i64().unwrap_or(-1);
                    return (found, errors);
                }
                Err(e) => errors.push(reason(&e)),
            }
            assert!(
                Instant::now() < deadline,
                "searchAnime through {base} failed for 60s: {errors:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn admin_token(&self) -> String {
        let password = "correct horse battery";
        let email = "admin@anineplus.local";
        let up = self
            .gql(
                APIS[0],
                "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
                json!({"i": {"email": email, "name": "Admin", "password": password}}),
                None,
            )
            .await;
        if let Ok(data) = up {
            return data["signUp"]["token"].as_str().unwrap().to_owned();
        }
        let data = self
            .gql(
                APIS[0],
                "mutation($i: LoginInput!) { login(input: $i) { token } }",
                json!({"i": {"email": email, "password": password}}),
                None,
            )
            .await
            .expect("the admin signs up or logs in");
        data["login"]["token"].as_str().unwrap().to_owned()
    }
}

#[derive(Default)]
struct Ledger {
    /// anime id → (last acknowledged version, its title)
    acked: HashMap<String, (i64, String)>,
    acknowledged: u64,
    refused: u64,
    /// Why requests failed: the start of each error, counted.
    reasons: std::collections::BTreeMap<String, u64>,
}

/// An error's kind, to count failures by it: the GraphQL error code (`RATE_LIMITED`:
/// the writers share one client address's limit), else the start of the message.
fn reason(error: &str) -> String {
    serde_json::from_str::<Value>(error)
        .ok()
        .and_then(|v| v[0]["extensions"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| error.chars().take(60).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the cluster mode: `make test-cluster` runs it"]
async fn failure_drills_keep_every_acknowledged_mutation() {
    let started = Instant::now();
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
    });
    for base in APIS {
        let ready = api.http.get(format!("{base}/health/ready")).send().await;
        assert!(
            ready.is_ok_and(|r| r.status().is_success()),
            "API {base} is not ready: is the cluster up (make up CLUSTER=1)?"
        );
    }
    let meta = metadata_consumer();
    let dead_before = dead_letters(&meta);
    let admin = api.admin_token().await;

    // The anime the writers update, created through both instances.
    let mut ids = Vec::new();
    for i in 0..ANIME {
        let data = api
            .gql(
                APIS[i % 2],
                "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id version } }",
                json!({"i": {"title": format!("drill {i} v1"), "genres": ["Action"], "status": "AIRING", "releaseYear": 2020}}),
                Some(&admin),
            )
            .await
            .expect("createAnime before the drills");
        ids.push(data["createAnime"]["id"].as_str().unwrap().to_owned());
    }
    wait_in_sync(&meta, "anime", 0).await;
    let (_, replicas, _) = partition_state(&meta, "anime", 0).unwrap();
    assert_eq!(
        replicas, 3,
        "the anime topic has 3 replicas in cluster mode"
    );
    let (_, offsets_replicas, _) =
        partition_state(&meta, "__consumer_offsets", 0).expect("__consumer_offsets");
    assert_eq!(
        offsets_replicas, 3,
        "__consumer_offsets has 3 replicas in cluster mode"
    );
    step(&format!(
        "{ANIME} anime created; anime and __consumer_offsets have 3 replicas"
    ));

    // Writers: one per API instance, each updating its own half of the anime in turn, one
    // request in flight per anime, so an acknowledged version is the anime's latest until
    // the next update of it.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for (w, base) in APIS.iter().enumerate() {
        let (api, ledger, stop, attempts, admin) = (
            api.clone(),
            ledger.clone(),
            stop.clone(),
            attempts.clone(),
            admin.clone(),
        );
        let mine: Vec<String> = ids.iter().skip(w).step_by(2).cloned().collect();
        let base = base.to_string();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = &mine[n as usize % mine.len()];
                let title = format!("drill {id} w{w} n{n}");
                n += 1;
                attempts.fetch_add(1, Ordering::Relaxed);
                let reply = api
                    .gql(
                        &base,
                        "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version title } }",
                        json!({"id": id, "i": {"title": title}}),
                        Some(&admin),
                    )
                    .await;
                let mut l = ledger.lock().await;
                match reply {
                    Ok(data) => {
                        let v = data["updateAnime"]["version"].as_i64().unwrap();
                        l.acked.insert(id.clone(), (v, title));
                        l.acknowledged += 1;
                    }
                    Err(e) => {
                        l.refused += 1;
                        *l.reasons.entry(reason(&e)).or_default() += 1;
                    }
                }
                drop(l);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }));
    }

    // The comment writer: both instances in turn, one comment in flight.
    let commenter = {
        let (api, stop, admin, ids) = (api.clone(), stop.clone(), admin.clone(), ids.clone());
        tokio::spawn(async move {
            let mut acknowledged = HashMap::<String, i64>::new();
            let mut refused = std::collections::BTreeMap::<String, u64>::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[n % ids.len()];
                let reply = api
                    .gql(
                        APIS[n % 2],
                        "mutation($a: ID!, $b: String!) { postComment(input: {animeId: $a, body: $b}) { id } }",
                        json!({"a": id, "b": format!("drill comment {n}")}),
                        Some(&admin),
                    )
                    .await;
                n += 1;
                match reply {
                    Ok(_) => *acknowledged.entry(id.clone()).or_default() += 1,
                    Err(e) => *refused.entry(reason(&e)).or_default() += 1,
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            (acknowledged, refused)
        })
    };

    // 1. Five kill -9 of the leader of anime-0, each restarted and back in sync.
    for round in 1..=5 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (leader, _, _) = partition_state(&meta, "anime", 0).expect("anime-0 metadata");
        assert!(leader > 0, "anime-0 has a leader");
        kill9(&format!("kafka-{leader}"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let node = leader.to_string();
        script(
            &["scripts/stack/kafka.sh", "start"],
            &[("KAFKA_NODE", &node)],
        );
        wait_in_sync(&meta, "anime", 0).await;
        step(&format!(
            "round {round}: kafka-{leader} back, anime-0 in sync"
        ));
    }
    // 2. Each search node stopped and restarted: node 1 first, the first address of every
    // client (they pass over it to node 2), then node 2.
    for node in ["1", "2"] {
        script(
            &["scripts/stack/opensearch.sh", "stop"],
            &[("OPENSEARCH_NODE", node)],
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Searches go on through the other node, on both instances (no PostgreSQL
        // fallback in the cluster mode: the answer is the engine's).
        for base in APIS {
            let (found, errors) = api.search(base, &admin, "drill").await;
            assert!(
                found >= ANIME as i64,
                "searchAnime through {base} with search node {node} stopped found {found}"
            );
            step(&format!(
                "search node {node} stopped: searchAnime through {base} found {found} (errors before: {errors:?})"
            ));
        }
        script(
            &["scripts/stack/opensearch.sh", "start"],
            &[("OPENSEARCH_NODE", node)],
        );
        wait_search_green(&api.http).await;
        step(&format!("search node {node} back, cluster green"));
    }
    // 3. Rebalances: indexer 2 stopped (its group hands its partitions to indexer 1) and
    // started again (they are shared out again); then analytics 2, a static member: its
    // partitions move when its session ends, and back when it returns.
    for (svc, group) in [
        ("indexer-2", "anineplus-indexer"),
        ("analytics-2", "anineplus-analytics-comments"),
    ] {
        wait_members(&meta, group, 2).await;
        sigterm(svc);
        let took = wait_members(&meta, group, 1).await;
        step(&format!(
            "{group}: one member left, stable {:.1}s after {svc} stopped",
            took.as_secs_f64()
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        script(
            &["scripts/stack/services.sh", "start"],
            &[("SERVICES_NO_BUILD", "1")],
        );
        let took = wait_members(&meta, group, 2).await;
        step(&format!(
            "{group}: two members again, stable {:.1}s after {svc} started",
            took.as_secs_f64()
        ));
    }
    // 4. One indexer, then one API instance, killed and restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill9("indexer-1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    script(
        &["scripts/stack/services.sh", "start"],
        &[("SERVICES_NO_BUILD", "1")],
    );
    kill9("api-1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    script(
        &["scripts/stack/services.sh", "start"],
        &[("SERVICES_NO_BUILD", "1")],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let (comments_acked, comments_refused) = commenter.await.unwrap();
    let ledger = ledger.lock().await;
    step(&format!(
        "writers stopped: {} updates attempted, {} acknowledged, {} failed: {:?}",
        attempts.load(Ordering::Relaxed),
        ledger.acknowledged,
        ledger.refused,
        ledger.reasons
    ));
    assert!(
        ledger.acknowledged > 100,
        "the writers got updates through the drills"
    );

    // Every acknowledged update is in PostgreSQL (at its version or a later one).
    let pool = sqlx::PgPool::connect(DATABASE)
        .await
        .expect("PostgreSQL of the cluster");
    let mut rows: HashMap<String, (i64, String)> = HashMap::new();
    for id in &ids {
        let (version, title): (i64, String) =
            sqlx::query_as("SELECT version, title FROM anime WHERE id::text = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if let Some((acked_version, acked_title)) = ledger.acked.get(id) {
            assert!(
                version >= *acked_version,
                "{id}: PostgreSQL at v{version}, v{acked_version} was acknowledged"
            );
            if version == *acked_version {
                assert_eq!(&title, acked_title, "{id}: the acknowledged title");
            }
        }
        rows.insert(id.clone(), (version, title));
    }
    // The outbox is drained.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} outbox rows still unpublished after 120s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every anime is in the index at its PostgreSQL version and title (per-key order kept:
    // the last event applied is the last written).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut behind = Vec::new();
        for (id, (version, title)) in &rows {
            let doc: Value = http
                .get(format!("{SEARCH}/anineplus-anime/_doc/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let source = &doc["_source"];
            if source["aggregateVersion"].as_i64() != Some(*version)
                || source["title"].as_str() != Some(title)
            {
                behind.push(format!(
                    "{id}: index v{:?} {:?}, PostgreSQL v{version} {title:?}",
                    source["aggregateVersion"], source["title"]
                ));
            }
        }
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index is behind PostgreSQL after 180s:\n{}",
            behind.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    step("every anime is in the index at its PostgreSQL version");

    // The sync tool agrees.
    let out = Command::new(root().join("target/debug/anineplus-search"))
        .args(["verify", "--index", "anime"])
        .env("DATABASE_URL", DATABASE)
        .env("ELASTICSEARCH_URL", SEARCH)
        .output()
        .expect("target/debug/anineplus-search (cargo build)");
    assert!(
        out.status.success(),
        "anineplus-search verify found drift:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    step("anineplus-search verify --index anime: clean");

    // Nothing dead-lettered (the cluster's data outlives a run: count what is new).
    let dead = dead_letters(&meta) - dead_before;
    assert_eq!(
        dead, 0,
        "records were dead-lettered during the drills (anineplus-dlq list)"
    );
    step(&format!(
        "nothing new in indexer.dlq ({dead_before} from before the drills)"
    ));

    // Exactly once through the broker kills: each anime's comment count (summed over its
    // one-hour windows) is its comments in PostgreSQL, where every acknowledged one is.
    let mut expected: HashMap<String, i64> = HashMap::new();
    for id in &ids {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM comments WHERE anime_id::text = $1 AND status = 'VISIBLE' AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let acked = comments_acked.get(id).copied().unwrap_or_default();
        assert!(
            count >= acked,
            "{id}: {count} comments in PostgreSQL, {acked} acknowledged"
        );
        expected.insert(id.clone(), count);
    }
    let posted: i64 = expected.values().sum();
    assert!(
        posted > 50,
        "the comment writer got comments through the drills"
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let counted = comment_counts(&http, &ids).await;
        let off: Vec<String> = expected
            .iter()
            .filter(|(id, n)| counted.get(*id).copied().unwrap_or_default() != **n)
            .map(|(id, n)| format!("{id}: counted {:?}, PostgreSQL {n}", counted.get(id)))
            .collect();
        if off.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the analytics counts differ from PostgreSQL after 180s:\n{}",
            off.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    step(&format!(
        "{posted} comments (failed requests: {comments_refused:?}): every anime's count is exact; the drills took {:.0}s",
        started.elapsed().as_secs_f64()
    ));
}

/// Each of `ids`' comment count in the stats index, summed over its windows.
async fn comment_counts(http: &reqwest::Client, ids: &[String]) -> HashMap<String, i64> {
    let body = json!({
        "size": 10_000,
        "query": { "bool": { "filter": [
            { "term": { "kind": "comments_per_hour" } },
            { "terms": { "animeId": ids } }
        ] } }
    });
    let found: Value = match http
        .post(format!("{SEARCH}/anineplus-anime-stats/_search"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return HashMap::new(),
    };
    let mut counts = HashMap::new();
    for hit in found["hits"]["hits"].as_array().into_iter().flatten() {
        let source = &hit["_source"];
        if let (Some(id), Some(n)) = (source["animeId"].as_str(), source["count"].as_i64()) {
            *counts.entry(id.to_owned()).or_default() += n;
        }
    }
    counts
}
