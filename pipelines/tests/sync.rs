//! Sync verification, repair and reindex on the real stack: the API and the indexer served
//! in this process (unique database, topic prefix, group and index prefix) index a few
//! anime; then drift is made by hand (a lost document, a row changed without an event, a
//! document without a row), `verify` reports exactly those, `repair` fixes them, and
//! `reindex` moves the alias to the next generation while searches keep answering.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anineplus_pipelines::indexer::indices::Index;
use anineplus_pipelines::sync::Sync;
use anineplus_testkit::{TestDatabase, unique};
use common::Harness;
use common::api::{Api, SEARCH};
use serde_json::{Value, json};

/// Renames of one anime during the reindex.
const UPDATES: i32 = 20;

/// Runs `anineplus-search <args>` against this test's database and indices.
async fn cli(t: &Harness, db: &TestDatabase, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_anineplus-search"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("ELASTICSEARCH_URL", &t.stack.search_url)
        .env("INDEX_PREFIX", &t.index_prefix)
        .output()
        .await
        .expect("run anineplus-search");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// `(method, path, body)` against the engine; the JSON answer and status.
async fn engine(
    t: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http.request(method, format!("{}{path}", t.stack.search_url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn set(ids: &[String]) -> BTreeSet<&str> {
    ids.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_reports_drift_repair_fixes_it_and_reindex_switches_without_downtime() {
    let t = Harness::new().await;
    let db = TestDatabase::create("sync").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }",
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "sync-signup",
        )
        .await;
    let admin = signed["signUp"]["token"].as_str().unwrap().to_owned();
    let admin_id = signed["signUp"]["user"]["id"].as_str().unwrap().to_owned();

    // Four anime, one deleted: three live documents and a tombstone.
    let mut ids = Vec::new();
    for (i, title) in [
        "Kestrel Verify",
        "Kestrel Stale",
        "Kestrel Lost",
        "Kestrel Gone",
    ]
    .iter()
    .enumerate()
    {
        let created = api
            .gql(
                "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
                json!({"i": {"title": title, "genres": ["Drama"], "status": "FINISHED", "releaseYear": 2000 + i}}),
                Some(&admin),
                "sync-create",
            )
            .await;
        ids.push(created["createAnime"]["id"].as_str().unwrap().to_owned());
    }
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": ids[3]}),
        Some(&admin),
        "sync-delete",
    )
    .await;
    for id in &ids[..3] {
        t.wait_doc("anime", id, |v, _| v == 1).await;
    }
    t.wait_doc("anime", &ids[3], |_, s| s["deleted"] == json!(true))
        .await;
    let episode = api
        .gql(
            "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id } }",
            json!({"i": {"animeId": ids[0], "number": 1, "title": "Kestrel Pilot", "durationSeconds": 1440, "airDate": "2001-04-03"}}),
            Some(&admin),
            "sync-episode",
        )
        .await;
    let episode = episode["createEpisode"]["id"].as_str().unwrap().to_owned();
    let (_, indexed_episode) = t.wait_doc("episodes", &episode, |v, _| v == 1).await;
    let (_, indexed_lost) = t.doc("anime", &ids[2]).await.unwrap();
    let (_, indexed_user) = t.wait_doc("users", &admin_id, |v, _| v == 1).await;

    let sync = Sync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    let drift = sync.verify(Index::Anime).await.unwrap();
    assert!(drift.in_sync(), "{drift:?}");
    assert_eq!((drift.rows, drift.documents), (4, 4));
    let (code, _) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0);

    // (a) Drift. A lost document (deleted at its own version, so a versioned write may
    // bring it back), a row changed without an event, a live document with no row.
    let alias = t.alias("anime");
    let (status, _) = engine(
        &t,
        reqwest::Method::DELETE,
        &format!(
            "/{alias}-v1/_doc/{}?version=1&version_type=external_gte&refresh=true",
            ids[2]
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let episodes = t.alias("episodes");
    let (status, _) = engine(
        &t,
        reqwest::Method::DELETE,
        &format!("/{episodes}-v1/_doc/{episode}?version=1&version_type=external_gte&refresh=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let users = t.alias("users");
    let (status, _) = engine(
        &t,
        reqwest::Method::DELETE,
        &format!("/{users}-v1/_doc/{admin_id}?version=1&version_type=external_gte&refresh=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "UPDATE anime SET title = 'Kestrel Drifted', version = version + 1 WHERE id = $1::uuid",
    )
    .bind(&ids[1])
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let orphan = uuid_like();
    let (status, _) = engine(
        &t,
        reqwest::Method::PUT,
        &format!("/{alias}/_doc/{orphan}?version=4&version_type=external_gte&refresh=true"),
        Some(json!({"id": orphan, "title": "Kestrel Orphan", "aggregateVersion": 4, "deleted": false})),
    )
    .await;
    assert!(status < 300, "{status}");

    let drift = sync.verify(Index::Anime).await.unwrap();
    assert_eq!(
        set(&drift.missing),
        BTreeSet::from([ids[2].as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        set(&drift.stale),
        BTreeSet::from([ids[1].as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        set(&drift.orphaned),
        BTreeSet::from([orphan.as_str()]),
        "{drift:?}"
    );
    assert!(drift.ahead.is_empty(), "{drift:?}");
    let drift = sync.verify(Index::Episodes).await.unwrap();
    assert_eq!(
        set(&drift.missing),
        BTreeSet::from([episode.as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        (drift.stale.len(), drift.orphaned.len()),
        (0, 0),
        "{drift:?}"
    );
    let (code, out) = cli(&t, &db, &["verify", "--index", "anime"]).await;
    assert_eq!(code, 1, "{out}");
    for (kind, id) in [
        ("missing", &ids[2]),
        ("stale", &ids[1]),
        ("orphaned", &orphan),
    ] {
        assert!(out.contains(&format!("{kind} {id}")), "{out}");
    }
    let (code, _) = cli(&t, &db, &["repair", "--index", "anime", "--dry-run"]).await;
    assert_eq!(code, 1, "a dry run repairs nothing");

    let (code, out) = cli(&t, &db, &["repair"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, _) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0);
    let (_, stale) = t.doc("anime", &ids[1]).await.unwrap();
    assert_eq!(stale["title"], json!("Kestrel Drifted"));
    assert_eq!(stale["aggregateVersion"], json!(2));
    // Repaired documents are the indexer's mapping of the row (but `updatedAt`, the row's
    // time instead of the event's).
    let without_time = |mut v: Value| {
        v.as_object_mut().unwrap().remove("updatedAt");
        v
    };
    let (_, lost) = t.doc("anime", &ids[2]).await.unwrap();
    assert_eq!(without_time(lost), without_time(indexed_lost));
    let (_, repaired_user) = t.doc("users", &admin_id).await.unwrap();
    assert_eq!(without_time(repaired_user), without_time(indexed_user));
    let (_, repaired_episode) = t.doc("episodes", &episode).await.unwrap();
    assert_eq!(
        without_time(repaired_episode),
        without_time(indexed_episode)
    );
    let (_, tomb) = t.doc("anime", &orphan).await.unwrap();
    assert_eq!(tomb["deleted"], json!(true));
    assert_eq!(tomb["aggregateVersion"], json!(4));

    // (b) Reindex while searchAnime keeps answering with the three live anime.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let searcher = {
        let (stop, answered) = (stop.clone(), answered.clone());
        let api_url = api.url.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let body: Value = http
                    .post(format!("{api_url}/graphql"))
                    .json(&json!({"query": SEARCH, "variables": {"q": "kestrel", "first": 10}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if body["data"]["searchAnime"]["totalCount"] != json!(3) {
                    bad.push(body);
                }
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bad
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile one anime is renamed 20 times: the indexer applies some to the old
    // generation, some to the new one; none may be lost.
    let updater = {
        let (api_url, admin, id) = (api.url.clone(), admin.clone(), ids[0].clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            for n in 1..=UPDATES {
                let body: Value = http
                    .post(format!("{api_url}/graphql"))
                    .bearer_auth(&admin)
                    .json(&json!({
                        "query": "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version } }",
                        "variables": {"id": id, "i": {"title": format!("Kestrel Verify {n}")}},
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(body.get("errors").is_none(), "{body}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let new = sync.reindex(Index::Anime, false).await.unwrap();
    assert_eq!(new, format!("{alias}-v2"));
    updater.await.unwrap();
    let last = i64::from(UPDATES) + 1;
    t.wait_doc("anime", &ids[0], |v, s| {
        v == last && s["title"] == json!(format!("Kestrel Verify {UPDATES}"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let bad = searcher.await.unwrap();
    assert!(
        bad.is_empty(),
        "searches failed during the reindex: {bad:?}"
    );
    assert!(answered.load(Ordering::Relaxed) > 5);

    assert_eq!(
        sync.generations(Index::Anime).await.unwrap(),
        [new.as_str()]
    );
    let (status, _) = engine(&t, reqwest::Method::HEAD, &format!("/{alias}-v1"), None).await;
    assert_eq!(status, 404, "the old generation is deleted");
    let drift = sync.verify(Index::Anime).await.unwrap();
    assert!(drift.in_sync(), "{drift:?}");
    // Every row, plus the orphan's tombstone (the index keeps tombstones of rows that no
    // longer exist only until a reindex, which starts from PostgreSQL).
    assert_eq!((drift.rows, drift.documents), (4, 4), "{drift:?}");

    // The indexer writes through the alias into the new generation.
    let created = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": "Kestrel After", "genres": [], "status": "UPCOMING"}}),
            Some(&admin),
            "sync-after",
        )
        .await;
    let after = created["createAnime"]["id"].as_str().unwrap().to_owned();
    t.wait_doc("anime", &after, |v, _| v == 1).await;
    let (_, doc) = engine(
        &t,
        reqwest::Method::GET,
        &format!("/{new}/_doc/{after}"),
        None,
    )
    .await;
    assert_eq!(doc["found"], json!(true), "{doc}");
    let (code, _) = cli(
        &t,
        &db,
        &["reindex", "--index", "anime", "--batch", "2", "--keep-old"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        sync.generations(Index::Anime).await.unwrap(),
        [format!("{alias}-v3")]
    );

    api.stop().await;
    indexer.stop().await;
    // `cleanup` deletes the `-v1` generations.
    for generation in ["v2", "v3"] {
        engine(
            &t,
            reqwest::Method::DELETE,
            &format!("/{alias}-{generation}"),
            None,
        )
        .await;
    }
    t.cleanup().await;
    db.remove().await;
}

/// A fresh UUID-shaped id no row has.
fn uuid_like() -> String {
    let hex = unique("o")[2..].to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
