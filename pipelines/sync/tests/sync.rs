//! Sync verification, repair and reindex on the real stack: the API and the indexer served
//! in this process (unique database, topic prefix, group and index prefix) index a few
//! anime; then drift is made by hand (a lost document, a row changed without an event, a
//! document without a row), `verify` reports exactly those, `repair` fixes them, and
//! `reindex` moves the alias to the next generation while searches keep answering. The same
//! for comments (a lost document, a moderation never indexed, a tombstone over a live row, a
//! row deleted) and organizations (members added without their events reaching the index),
//! whose repaired documents must equal the ones the indexer built from the events.

#[path = "../../indexer/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anineplus_indexer::indices::Index;
use anineplus_sync::SearchSync;
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
                json!({"i": {"title": title, "genres": ["Drama"], "status": "FINISHED", "releaseYear": 2000 + i,
                    "alternativeTitles": [format!("{title} (en)"), format!("{title} (ja)")]}}),
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

    let sync = SearchSync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    let drift = sync.verify(Index::Anime).await.unwrap();
    assert!(drift.in_sync(), "{drift:?}");
    assert_eq!((drift.rows, drift.documents), (4, 4));
    let (code, _) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0);

    // (0) Denormalised drift: the anime with the episode loses its episode entry.
    let (_, with_episode) = t
        .wait_doc("anime", &ids[0], |_, s| s["episodeCount"] == json!(1))
        .await;
    let mut counted_out = with_episode.clone();
    counted_out["episodes"] = json!({});
    counted_out["episodeCount"] = json!(0);
    put_doc(&t, "anime", &ids[0], &counted_out).await;
    let drift = sync.verify(Index::Anime).await.unwrap();
    assert_eq!(drift.denormalised, vec![ids[0].clone()], "{drift:?}");
    let (code, out) = cli(&t, &db, &["verify", "--index", "anime"]).await;
    assert_eq!(code, 1);
    assert!(out.contains(&format!("denormalised {}", ids[0])), "{out}");
    sync.repair(Index::Anime, &drift).await.unwrap();
    assert!(sync.verify(Index::Anime).await.unwrap().in_sync());
    let (_, repaired) = t.doc("anime", &ids[0]).await.unwrap();
    assert_eq!(without_time(repaired), without_time(with_episode));

    // (a) Drift. A lost document (deleted at its own version, so a versioned write may
    // bring it back), a row changed without an event, a live document with no row.
    let alias = t.alias("anime");
    lose_doc(&t, "anime", &ids[2]).await;
    lose_doc(&t, "episodes", &episode).await;
    lose_doc(&t, "users", &admin_id).await;
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
    let (_, lost) = t.doc("anime", &ids[2]).await.unwrap();
    assert_eq!(
        lost["alternativeTitles"],
        json!(["Kestrel Lost (en)", "Kestrel Lost (ja)"])
    );
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

/// Signs up `email`; returns `(token, user id)`.
async fn sign_up(api: &Api, email: &str, name: &str) -> (String, String) {
    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }",
            json!({"i": {"email": email, "name": name, "password": "correct horse battery"}}),
            None,
            "sync-signup",
        )
        .await;
    (
        signed["signUp"]["token"].as_str().unwrap().to_owned(),
        signed["signUp"]["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// `source` without `updatedAt` (the event's time in the indexer's documents, the row's
/// `updated_at` in repaired ones) and the versions of its fields and members (those of
/// their events in the indexer's documents, the row's version in repaired ones).
fn without_time(mut v: Value) -> Value {
    let fields = v.as_object_mut().unwrap();
    for bookkeeping in ["updatedAt", "fieldVersions", "entryVersions"] {
        fields.remove(bookkeeping);
    }
    v
}

/// The `_version` of document `id` of `index`'s alias.
async fn current_version(t: &Harness, index: &str, id: &str) -> i64 {
    let alias = t.alias(index);
    let (_, current) = engine(
        t,
        reqwest::Method::GET,
        &format!("/{alias}/_doc/{id}"),
        None,
    )
    .await;
    current["_version"]
        .as_i64()
        .unwrap_or_else(|| panic!("{current}"))
}

/// Deletes document `id` of `index`'s first generation, at its current `_version`: a
/// document the index lost.
async fn lose_doc(t: &Harness, index: &str, id: &str) {
    let version = current_version(t, index, id).await;
    let (status, body) = engine(
        t,
        reqwest::Method::DELETE,
        &format!(
            "/{}-v1/_doc/{id}?version={version}&version_type=external_gte&refresh=true",
            t.alias(index)
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Overwrites document `id` of `index`'s alias with `source`, at its current `_version`
/// (which a versioned write may replace).
async fn put_doc(t: &Harness, index: &str, id: &str, source: &Value) {
    let alias = t.alias(index);
    let version = current_version(t, index, id).await;
    let (status, body) = engine(
        t,
        reqwest::Method::PUT,
        &format!("/{alias}/_doc/{id}?version={version}&version_type=external_gte&refresh=true"),
        Some(source.clone()),
    )
    .await;
    assert!(status < 300, "{status} {body}");
}

/// Live documents of `index`'s alias, through a search (what clients see).
async fn live_count(http: &reqwest::Client, search_url: &str, alias: &str) -> Result<u64, String> {
    let query = anineplus_connectors::search_sink::live(json!({"match_all": {}}));
    let response = http
        .post(format!("{search_url}/{alias}/_search"))
        .json(&json!({"size": 0, "track_total_hits": true, "query": query}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    body["hits"]["total"]["value"]
        .as_u64()
        .ok_or_else(|| body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn comments_and_organizations_are_verified_repaired_to_the_indexer_documents_and_reindexed() {
    let t = Harness::new().await;
    let db = TestDatabase::create("sync_co").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let (admin, admin_id) = sign_up(&api, anineplus_api::config::DEV_ADMIN_EMAIL, "Admin").await;
    let (_, member_id) = sign_up(&api, &format!("{}@example.com", unique("m")), "Member").await;
    let (_, third_id) = sign_up(&api, &format!("{}@example.com", unique("m")), "Third").await;
    let anime = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": "Wren Comments", "genres": [], "status": "AIRING"}}),
            Some(&admin),
            "sync-anime",
        )
        .await;
    let anime = anime["createAnime"]["id"].as_str().unwrap().to_owned();
    let episode = api
        .gql(
            "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id } }",
            json!({"i": {"animeId": anime, "number": 1, "title": "Wren Pilot"}}),
            Some(&admin),
            "sync-episode",
        )
        .await;
    let episode = episode["createEpisode"]["id"].as_str().unwrap().to_owned();

    // Comments: `moderated` (hidden with a reason), `lost` (on the episode), `tombed`
    // (shown again without a reason), `gone` (its row will be deleted).
    let post = async |body: &str, episode: Option<&str>| {
        let posted = api
            .gql(
                "mutation($i: PostCommentInput!) { postComment(input: $i) { id } }",
                json!({"i": {"animeId": anime, "episodeId": episode, "body": body}}),
                Some(&admin),
                "sync-comment",
            )
            .await;
        posted["postComment"]["id"].as_str().unwrap().to_owned()
    };
    let moderate = async |id: &str, status: &str, reason: Option<&str>| {
        api.gql(
            "mutation($id: ID!, $s: CommentStatus!, $r: String) { moderateComment(id: $id, status: $s, reason: $r) { id } }",
            json!({"id": id, "s": status, "r": reason}),
            Some(&admin),
            "sync-moderate",
        )
        .await;
    };
    let moderated = post("Wren spoils the ending", None).await;
    let lost = post("Wren pilot was great", Some(&episode)).await;
    let tombed = post("Wren is fine", None).await;
    let gone = post("Wren gone", None).await;
    let (_, created_moderated) = t.wait_doc("comments", &moderated, |v, _| v == 1).await;
    assert_eq!(created_moderated["status"], json!("VISIBLE"));
    moderate(&moderated, "HIDDEN", Some("spoilers")).await;
    moderate(&tombed, "VISIBLE", None).await;
    // Waited for with their anime's title: the indexer writes it right after the comment.
    let titled = |s: &Value| s["animeTitle"] == json!("Wren Comments");
    let version_2 = |_: i64, s: &Value| s["aggregateVersion"] == json!(2) && titled(s);
    let (_, indexed_moderated) = t.wait_doc("comments", &moderated, version_2).await;
    assert_eq!(indexed_moderated["status"], json!("HIDDEN"));
    assert_eq!(indexed_moderated["moderationReason"], json!("spoilers"));
    assert_eq!(indexed_moderated["moderatedBy"], json!(admin_id));
    let (_, indexed_tombed) = t.wait_doc("comments", &tombed, version_2).await;
    let (_, indexed_lost) = t
        .wait_doc("comments", &lost, |v, s| {
            v == 1 && s["episodeId"] == json!(episode) && titled(s)
        })
        .await;
    t.wait_doc("comments", &gone, |v, _| v == 1).await;

    // Organizations: `grown` gets two members through the API, `quiet` one behind the
    // index's back (in PostgreSQL only, as the API writes it, but no event).
    let create_org = async |name: &str| {
        let created = api
            .gql(
                "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }",
                json!({"i": {"name": name, "slug": unique("wren")}}),
                Some(&admin),
                "sync-org",
            )
            .await;
        created["createOrganization"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let grown = create_org("Wren Studio").await;
    let quiet = create_org("Wren Guild").await;
    let (_, created_grown) = t.wait_doc("organizations", &grown, |v, _| v == 1).await;
    let (_, indexed_quiet) = t.wait_doc("organizations", &quiet, |v, _| v == 1).await;
    for user in [&member_id, &third_id] {
        api.gql(
            "mutation($i: AddMemberInput!) { addMember(input: $i) { id } }",
            json!({"i": {"organizationId": grown, "userId": user, "role": "MEMBER"}}),
            Some(&admin),
            "sync-member",
        )
        .await;
    }
    // Both additions, not only version 3: concurrent bulks may land the second before the
    // first (each entry is versioned on its own, so the first still lands after it).
    let (_, indexed_grown) = t
        .wait_doc("organizations", &grown, |_, s| {
            s["aggregateVersion"] == json!(3)
                && s["members"].as_array().is_some_and(|m| m.len() == 3)
        })
        .await;
    // The owner first, then by user id.
    let mut joined = [&member_id, &third_id];
    joined.sort();
    assert_eq!(
        indexed_grown["members"],
        json!([
            {"userId": admin_id, "role": "OWNER"},
            {"userId": joined[0], "role": "MEMBER"},
            {"userId": joined[1], "role": "MEMBER"},
        ])
    );

    // Everything else indexed too, so that `verify` of every index starts in sync.
    for user in [&admin_id, &member_id, &third_id] {
        t.wait_doc("users", user, |v, _| v == 1).await;
    }
    t.wait_doc("anime", &anime, |v, _| v == 1).await;
    t.wait_doc("episodes", &episode, |v, _| v == 1).await;

    let sync = SearchSync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    for index in [Index::Comments, Index::Organizations] {
        let drift = sync.verify(index).await.unwrap();
        assert!(drift.in_sync(), "{drift:?}");
    }
    let drift = sync.verify(Index::Comments).await.unwrap();
    assert_eq!((drift.rows, drift.documents), (4, 4), "{drift:?}");
    let drift = sync.verify(Index::Organizations).await.unwrap();
    assert_eq!((drift.rows, drift.documents), (2, 2), "{drift:?}");
    let (code, _) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0);

    // Denormalised drift: a comment showing a wrong anime title (at the right version).
    let mut mistitled = indexed_lost.clone();
    mistitled["animeTitle"] = json!("Not Wren");
    put_doc(&t, "comments", &lost, &mistitled).await;
    let drift = sync.verify(Index::Comments).await.unwrap();
    assert_eq!(drift.denormalised, vec![lost.clone()], "{drift:?}");
    sync.repair(Index::Comments, &drift).await.unwrap();
    let (_, retitled) = t.doc("comments", &lost).await.unwrap();
    assert_eq!(without_time(retitled), without_time(indexed_lost.clone()));
    assert!(sync.verify(Index::Comments).await.unwrap().in_sync());

    // Drift. The moderation never indexed (the created document back, at the `_version`
    // the moderation's update left); a lost document; a tombstone over a live row; a row
    // deleted; two members that never reached the index; one added in PostgreSQL only.
    put_doc(&t, "comments", &moderated, &created_moderated).await;
    lose_doc(&t, "comments", &lost).await;
    put_doc(
        &t,
        "comments",
        &tombed,
        &json!({"id": tombed, "deleted": true, "aggregateVersion": 2}),
    )
    .await;
    put_doc(&t, "organizations", &grown, &created_grown).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("DELETE FROM comments WHERE id = $1::uuid")
        .bind(&gone)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO organization_members (organization_id, user_id, member_role) \
         VALUES ($1::uuid, $2::uuid, 'MEMBER')",
    )
    .bind(&quiet)
    .bind(&third_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE organizations SET version = version + 1, updated_at = now() WHERE id = $1::uuid",
    )
    .bind(&quiet)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let drift = sync.verify(Index::Comments).await.unwrap();
    assert_eq!(
        set(&drift.missing),
        BTreeSet::from([lost.as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        set(&drift.stale),
        BTreeSet::from([moderated.as_str(), tombed.as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        set(&drift.orphaned),
        BTreeSet::from([gone.as_str()]),
        "{drift:?}"
    );
    assert!(drift.ahead.is_empty(), "{drift:?}");
    let drift = sync.verify(Index::Organizations).await.unwrap();
    assert_eq!(
        set(&drift.stale),
        BTreeSet::from([grown.as_str(), quiet.as_str()]),
        "{drift:?}"
    );
    assert_eq!(
        (drift.missing.len(), drift.orphaned.len(), drift.ahead.len()),
        (0, 0, 0),
        "{drift:?}"
    );
    let (code, out) = cli(&t, &db, &["verify", "--index", "comments"]).await;
    assert_eq!(code, 1, "{out}");
    for (kind, id) in [
        ("missing", &lost),
        ("stale", &moderated),
        ("stale", &tombed),
        ("orphaned", &gone),
    ] {
        assert!(out.contains(&format!("{kind} {id}")), "{out}");
    }
    let (code, out) = cli(&t, &db, &["verify", "--index", "organizations"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("stale {quiet}")), "{out}");
    let (code, _) = cli(
        &t,
        &db,
        &["repair", "--index", "organizations", "--dry-run"],
    )
    .await;
    assert_eq!(code, 1, "a dry run repairs nothing");
    let (_, still) = t.doc("organizations", &grown).await.unwrap();
    assert_eq!(still["aggregateVersion"], json!(1));

    // Repair: comments through the library, organizations through the binary.
    let drift = sync.verify(Index::Comments).await.unwrap();
    let repaired = sync.repair(Index::Comments, &drift).await.unwrap();
    assert_eq!(repaired.written, 4, "{repaired:?}");
    assert!(repaired.failed.is_empty(), "{repaired:?}");
    let (code, out) = cli(&t, &db, &["repair", "--index", "organizations"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0, "{out}");

    // Repaired documents are what the indexer built from the events (but `updatedAt`).
    for (id, indexed) in [
        (&moderated, &indexed_moderated),
        (&lost, &indexed_lost),
        (&tombed, &indexed_tombed),
    ] {
        let (_, repaired) = t.doc("comments", id).await.unwrap();
        assert_eq!(
            without_time(repaired),
            without_time(indexed.clone()),
            "{id}"
        );
    }
    let (_, tomb) = t.doc("comments", &gone).await.unwrap();
    assert_eq!(tomb["deleted"], json!(true));
    assert_eq!(tomb["aggregateVersion"], json!(1));
    let (_, repaired_grown) = t.doc("organizations", &grown).await.unwrap();
    assert_eq!(
        without_time(repaired_grown),
        without_time(indexed_grown.clone())
    );
    let (_, repaired_quiet) = t.doc("organizations", &quiet).await.unwrap();
    let mut expected_quiet = without_time(indexed_quiet);
    expected_quiet["aggregateVersion"] = json!(2);
    expected_quiet["members"] = json!([
        {"userId": admin_id, "role": "OWNER"},
        {"userId": third_id, "role": "MEMBER"},
    ]);
    assert_eq!(without_time(repaired_quiet), expected_quiet);

    // Reindex both while searches of their aliases keep answering with every live document
    // (three comments, two organizations).
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let searcher = {
        let (stop, answered) = (stop.clone(), answered.clone());
        let search_url = t.stack.search_url.clone();
        let aliases = [(t.alias("comments"), 3), (t.alias("organizations"), 2)];
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for (alias, expected) in &aliases {
                    match live_count(&http, &search_url, alias).await {
                        Ok(n) if n == *expected => {}
                        other => bad.push(format!("{alias}: {other:?}")),
                    }
                }
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bad
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let comments = t.alias("comments");
    let organizations = t.alias("organizations");
    let new_comments = sync.reindex(Index::Comments, false).await.unwrap();
    assert_eq!(new_comments, format!("{comments}-v2"));
    let (code, out) = cli(
        &t,
        &db,
        &["reindex", "--index", "organizations", "--batch", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{organizations}-v2")), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let bad = searcher.await.unwrap();
    assert!(
        bad.is_empty(),
        "searches failed during the reindex: {bad:?}"
    );
    assert!(answered.load(Ordering::Relaxed) > 5);
    for (index, alias) in [
        (Index::Comments, &comments),
        (Index::Organizations, &organizations),
    ] {
        assert_eq!(
            sync.generations(index).await.unwrap(),
            [format!("{alias}-v2")]
        );
        let (status, _) = engine(&t, reqwest::Method::HEAD, &format!("/{alias}-v1"), None).await;
        assert_eq!(status, 404, "the old generation of {alias} is deleted");
        let drift = sync.verify(index).await.unwrap();
        assert!(drift.in_sync(), "{drift:?}");
    }
    // The rebuilt documents are the indexer's too (`gone` has no row: its tombstone is not
    // carried over).
    let (_, rebuilt) = t.doc("comments", &moderated).await.unwrap();
    assert_eq!(without_time(rebuilt), without_time(indexed_moderated));
    assert!(t.doc("comments", &gone).await.is_none());
    let (_, rebuilt) = t.doc("organizations", &grown).await.unwrap();
    assert_eq!(without_time(rebuilt), without_time(indexed_grown));

    // The indexer goes on through the aliases into the new generations.
    let after = post("Wren after the reindex", None).await;
    moderate(&after, "HIDDEN", Some("late")).await;
    t.wait_doc("comments", &after, |_, s| s["status"] == json!("HIDDEN"))
        .await;
    api.gql(
        "mutation($i: AddMemberInput!) { addMember(input: $i) { id } }",
        json!({"i": {"organizationId": quiet, "userId": member_id}}),
        Some(&admin),
        "sync-member-after",
    )
    .await;
    let (_, grew) = t
        .wait_doc("organizations", &quiet, |_, s| {
            s["aggregateVersion"] == json!(3)
        })
        .await;
    assert_eq!(grew["members"].as_array().unwrap().len(), 3, "{grew}");
    let (code, out) = cli(&t, &db, &["verify"]).await;
    assert_eq!(code, 0, "{out}");

    api.stop().await;
    indexer.stop().await;
    for alias in [&comments, &organizations] {
        engine(&t, reqwest::Method::DELETE, &format!("/{alias}-v2"), None).await;
    }
    t.cleanup().await;
    db.remove().await;
}

/// Rows of the large table of the scan test.
const LARGE: i64 = 200_000;

/// `verify` reads a large table page by page through its primary key: each page is an
/// index range scan after the previous page's last id (no sort of the whole table per
/// page, which made the scan quadratic). PostgreSQL only: 200,000 anime rows in a database
/// of the test's own, scanned in pages of 1,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_pages_a_large_table_through_its_primary_key() {
    let db = TestDatabase::create("sync_scan").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    anineplus_api::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash) \
         VALUES ('00000000-0000-0000-0000-000000000001', 's@example.com', 'S', 'ADMIN', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO anime (id, title, status, created_by, version) \
         SELECT gen_random_uuid(), 'anime ' || n, 'AIRING', \
                '00000000-0000-0000-0000-000000000001', 1 \
         FROM generate_series(1, $1::bigint) AS n",
    )
    .bind(LARGE)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE anime").execute(&pool).await.unwrap();
    pool.close().await;
    let stack = anineplus_testkit::Stack::from_env();
    let mut sync = SearchSync::connect(&db.url, &stack.search_url, &unique("ix"))
        .await
        .unwrap();
    sync.batch = 1000;
    sync.progress = false;

    let plan = sync.page_plan(Index::Anime).await.unwrap();
    let started = std::time::Instant::now();
    let rows = sync.rows(Index::Anime).await.unwrap();
    let took = started.elapsed();
    eprintln!("scan of {LARGE} rows in pages of 1000: {took:?}\n{plan}");
    assert_eq!(rows.len() as i64, LARGE);
    assert!(
        plan.contains("anime_pkey"),
        "not through the primary key:\n{plan}"
    );
    assert!(!plan.contains("Sort"), "a page sorts the table:\n{plan}");
    db.remove().await;
}

/// Anime rows written straight to PostgreSQL before the live-writes test (no events: the
/// first reindex builds their documents), so that every scan takes many pages.
const SEEDED: i64 = 3_000;

/// Repair and reindex under live writes: anime are created through the API every 100 ms
/// (and one is renamed) while `reindex` copies 3,000 rows in pages of 100, then while
/// `repair` runs three times. A document indexed between the row scan and the document
/// scan must not look orphaned (and be tombstoned at its own version), and no write made
/// during the copy may be lost: every verify during the writes reports no orphan, and once
/// the writes stop and the indexer has caught up, `verify` is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_and_reindex_under_live_writes_hide_nothing_and_lose_nothing() {
    let t = Harness::new().await;
    let db = TestDatabase::create("sync_live").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let (admin, admin_id) = sign_up(&api, anineplus_api::config::DEV_ADMIN_EMAIL, "Admin").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO anime (id, title, status, created_by, version) \
         SELECT gen_random_uuid(), 'Heron seeded ' || n, 'AIRING', $2::uuid, 1 \
         FROM generate_series(1, $1::bigint) AS n",
    )
    .bind(SEEDED)
    .bind(&admin_id)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut sync = SearchSync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    sync.batch = 100;
    sync.progress = false;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, api_url, admin) = (stop.clone(), api.url.clone(), admin.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let gql = async |query: &str, variables: Value| -> Value {
                let body: Value = http
                    .post(format!("{api_url}/graphql"))
                    .bearer_auth(&admin)
                    .json(&json!({"query": query, "variables": variables}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(body.get("errors").is_none(), "{body}");
                body["data"].clone()
            };
            let mut created = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = created.len();
                let data = gql(
                    "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
                    json!({"i": {"title": format!("Heron live {n}"), "genres": [], "status": "AIRING"}}),
                )
                .await;
                created.push(data["createAnime"]["id"].as_str().unwrap().to_owned());
                if n % 3 == 0 {
                    gql(
                        "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version } }",
                        json!({"id": created[0], "i": {"title": format!("Heron renamed {n}")}}),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            created
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut orphans_seen = Vec::new();
    let new = sync.reindex(Index::Anime, false).await.unwrap();
    assert_eq!(new, format!("{}-v2", t.alias("anime")));
    for _ in 0..3 {
        let drift = sync.verify(Index::Anime).await.unwrap();
        eprintln!(
            "during writes: rows {} documents {} missing {} stale {} orphaned {} ahead {}",
            drift.rows,
            drift.documents,
            drift.missing.len(),
            drift.stale.len(),
            drift.orphaned.len(),
            drift.ahead.len()
        );
        orphans_seen.extend(drift.orphaned.clone());
        assert!(drift.ahead.is_empty(), "{drift:?}");
        sync.repair(Index::Anime, &drift).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let created = writer.await.unwrap();
    assert!(created.len() > 20, "only {} anime created", created.len());

    // Once the indexer has applied every event, PostgreSQL and the index agree.
    t.wait_committed(&t.topic(anineplus_schemas::Topic::Anime))
        .await;
    let drift = sync.verify(Index::Anime).await.unwrap();
    let hidden: Vec<&String> = drift.stale.iter().collect();
    eprintln!(
        "{} anime created live; orphans reported during the writes: {}; final drift: \
         missing {} stale {} orphaned {} ahead {}",
        created.len(),
        orphans_seen.len(),
        drift.missing.len(),
        drift.stale.len(),
        drift.orphaned.len(),
        drift.ahead.len()
    );
    assert!(
        drift.in_sync(),
        "live documents hidden or lost: {hidden:?} {drift:?}"
    );
    assert!(
        orphans_seen.is_empty(),
        "live anime reported as orphans: {orphans_seen:?}"
    );
    assert_eq!(drift.rows as i64, SEEDED + created.len() as i64);
    let live = t
        .count(
            "anime",
            anineplus_connectors::search_sink::live(json!({"match_all": {}})),
        )
        .await;
    assert_eq!(
        live as i64,
        SEEDED + created.len() as i64,
        "every anime searchable"
    );

    api.stop().await;
    indexer.stop().await;
    engine(&t, reqwest::Method::DELETE, &format!("/{new}"), None).await;
    t.cleanup().await;
    db.remove().await;
}
