//! End to end on the real stack: the API and the search indexer served in this process
//! (unique database, topic prefix, consumer group and index prefix). A mutation goes
//! API → PostgreSQL + outbox → relay → Kafka → indexer → OpenSearch, and `searchAnime`
//! (the `index` backend) shows it: created, renamed, deleted.

mod common;

use std::time::Duration;

use anineplus_schemas::Topic;
use anineplus_testkit::TestDatabase;
use common::api::Api;
use common::{Harness, header};
use serde_json::{Value, json};

/// How long a change may take to become searchable.
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);

/// Polls `searchAnime(query)` until `ok` holds, for up to [`VISIBLE_WITHIN`].
async fn wait_search(api: &Api, query: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
    loop {
        let page = api.search(query, 10, None).await;
        if ok(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "searchAnime({query:?}): {what} not seen within {VISIBLE_WITHIN:?}; last page: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutation_becomes_searchable_through_the_indexer_and_leaves_with_its_delete() {
    let t = Harness::new().await;
    let db = TestDatabase::create("e2e").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;

    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token user { role } } }",
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "e2e-signup",
        )
        .await;
    assert_eq!(signed["signUp"]["user"]["role"], json!("ADMIN"));
    let admin = signed["signUp"]["token"].as_str().unwrap().to_owned();

    // Create: the node appears, with the title of PostgreSQL's row.
    let create = "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }";
    let cid = "e2e-create-1";
    let created = api
        .gql(
            create,
            json!({"i": {"title": "Zorblax Journey", "synopsis": "An elf outlives her party", "genres": ["Fantasy"], "status": "AIRING", "releaseYear": 2023}}),
            Some(&admin),
            cid,
        )
        .await;
    let id = created["createAnime"]["id"].as_str().unwrap().to_owned();
    let page = wait_search(&api, "zorblax", "the created anime", |p| {
        ids(p) == [id.clone()]
    })
    .await;
    assert_eq!(page["totalCount"], json!(1), "{page}");
    assert_eq!(page["edges"][0]["node"]["title"], json!("Zorblax Journey"));
    assert_eq!(page["pageInfo"]["hasNextPage"], json!(false));

    // The mutation's correlation id travelled on the Kafka record.
    let records = t.read(&t.topic(Topic::Anime), 1).await;
    assert_eq!(
        header(&records[0].2, "correlation-id"),
        Some(cid),
        "{records:?}"
    );
    assert_eq!(records[0].0.as_deref(), Some(id.as_bytes()));

    // A second match: totalCount counts both, title matches rank first, pages follow.
    let other = api
        .gql(
            create,
            json!({"i": {"title": "Mushishi", "synopsis": "Ginko meets zorblax creatures", "genres": ["Mystery"], "status": "FINISHED", "releaseYear": 2005}}),
            Some(&admin),
            "e2e-create-2",
        )
        .await;
    let other = other["createAnime"]["id"].as_str().unwrap().to_owned();
    let page = wait_search(&api, "zorblax", "both anime", |p| {
        p["totalCount"] == json!(2)
    })
    .await;
    assert_eq!(
        ids(&page),
        [id.clone(), other.clone()],
        "title boosted: {page}"
    );
    let first = api.search("zorblax", 1, None).await;
    assert_eq!(ids(&first), [id.as_str()]);
    assert_eq!(first["totalCount"], json!(2));
    assert_eq!(first["pageInfo"]["hasNextPage"], json!(true));
    let second = api
        .search("zorblax", 1, first["pageInfo"]["endCursor"].as_str())
        .await;
    assert_eq!(ids(&second), [other.as_str()]);
    assert_eq!(second["pageInfo"]["hasNextPage"], json!(false));

    // Update: the new title is found, the old one no longer is.
    api.gql(
        "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version } }",
        json!({"id": id, "i": {"title": "Quovadel Frontier"}}),
        Some(&admin),
        "e2e-update",
    )
    .await;
    let page = wait_search(&api, "quovadel", "the renamed anime", |p| {
        ids(p) == [id.clone()]
    })
    .await;
    assert_eq!(
        page["edges"][0]["node"]["title"],
        json!("Quovadel Frontier")
    );
    assert_eq!(page["edges"][0]["node"]["version"], json!(2));
    let old = wait_search(&api, "zorblax", "the old title gone", |p| {
        ids(p) == [other.clone()]
    })
    .await;
    assert_eq!(old["totalCount"], json!(1), "{old}");

    // Delete: no longer found (the index keeps a tombstone that `live` excludes).
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": id}),
        Some(&admin),
        "e2e-delete",
    )
    .await;
    let page = wait_search(&api, "quovadel", "the delete", |p| {
        p["totalCount"] == json!(0)
    })
    .await;
    assert!(ids(&page).is_empty(), "{page}");
    let (_, tombstone) = t
        .wait_doc("anime", &id, |_, s| s["deleted"] == json!(true))
        .await;
    assert_eq!(tombstone["aggregateVersion"], json!(3));

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
