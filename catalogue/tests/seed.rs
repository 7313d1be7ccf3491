//! The loader on the real stack: an API and an indexer served in this process (a database
//! of the test's own, unique topic, group and index prefixes) take a slice of the real
//! catalogue (`fixtures/bangumi-data-sample.json`: eight items of bangumi-data, two of them
//! a TV series and its movie sharing a title and a year). A first run with `limit` loads
//! three; the full run loads the rest; a third run creates nothing. An anime with English
//! translations is stored with its alternative titles, in language order, and its search
//! document carries them.

#[path = "../../pipelines/indexer/tests/common/mod.rs"]
mod common;

use anineplus_catalogue::bangumi;
use anineplus_catalogue::seed::{self, Settings};
use anineplus_testkit::TestDatabase;
use common::Harness;
use common::api::Api;
use serde_json::{Value, json};

const SAMPLE: &[u8] = include_bytes!("fixtures/bangumi-data-sample.json");
const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_of_the_catalogue_is_loaded_once_and_indexed_with_its_alternative_titles() {
    let t = Harness::new().await;
    let db = TestDatabase::create("catalogue").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let catalogue = bangumi::parse(SAMPLE).unwrap();
    assert_eq!(catalogue.items.len(), 8);
    let now = chrono::Utc::now();
    let settings = Settings {
        // Small requests, so that the sample spans several documents and requests.
        per_document: 2,
        per_request: 2,
        progress_every: 2,
        ..Settings::new(&api.url, anineplus_api::config::DEV_ADMIN_EMAIL, PASSWORD)
    };

    let mut lines = Vec::new();
    let first = seed::run(
        &Settings {
            limit: Some(3),
            ..settings.clone()
        },
        &catalogue,
        now,
        &mut |l| lines.push(l.to_owned()),
    )
    .await
    .unwrap();
    assert_eq!((first.items, first.created, first.present), (3, 3, 0));
    assert_eq!(lines.last().unwrap(), "seed: 3/3 anime", "{lines:?}");

    let full = seed::run(&settings, &catalogue, now, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (full.items, full.created, full.present),
        (8, 5, 3),
        "{full:?}"
    );
    assert!(
        full.refused.is_empty() && full.skipped.is_empty(),
        "{full:?}"
    );
    let again = seed::run(&settings, &catalogue, now, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.created, again.present, again.requests), (0, 8, 0));

    let page = api
        .gql(
            "{ animes(first: 20) { totalCount edges { node { id title alternativeTitles status releaseYear genres synopsis } } } }",
            json!({}),
            None,
            "catalogue-read",
        )
        .await;
    assert_eq!(
        page["animes"]["totalCount"],
        json!(8),
        "the TV series and its movie both"
    );
    let nodes: Vec<&Value> = page["animes"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let frieren = nodes
        .iter()
        .find(|n| n["title"] == json!("葬送のフリーレン"))
        .expect("Frieren is loaded");
    let alternative = json!([
        "Frieren: Beyond the Journey's End",
        "Frieren: Beyond Journey's End",
        "葬送的芙莉莲",
        "葬送的芙莉蓮"
    ]);
    assert_eq!(
        frieren["alternativeTitles"], alternative,
        "en, zh-Hans, zh-Hant"
    );
    assert_eq!(frieren["status"], json!("FINISHED"));
    assert_eq!(frieren["releaseYear"], json!(2023));
    assert_eq!(frieren["genres"], json!([]));
    assert_eq!(frieren["synopsis"], Value::Null);

    let id = frieren["id"].as_str().unwrap();
    let (_, doc) = t
        .wait_doc("anime", id, |_, s| s["alternativeTitles"] == alternative)
        .await;
    assert_eq!(doc["title"], json!("葬送のフリーレン"));
    // Searchable by an English title through the index's mapping.
    let hits = t
        .search_live(
            "anime",
            json!({ "match": { "alternativeTitles": "frieren journey" } }),
        )
        .await;
    assert!(hits.iter().any(|h| h["_id"] == json!(id)), "{hits:?}");
    // And through the API's searchAnime, by English and Chinese titles.
    for query in ["frieren beyond", "芙莉莲"] {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let found = api.search(query, 5, None).await;
            if found["edges"][0]["node"]["id"] == json!(id) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{query}: {found}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
