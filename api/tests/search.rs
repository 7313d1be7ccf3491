//! The `index` search backend when the engine cannot answer: `INTERNAL` without the cause
//! (which is logged), or PostgreSQL's answer with `SEARCH_FALLBACK_POSTGRES=true`. The happy
//! path, through the indexer, is `pipelines/indexer/tests/end_to_end.rs`.

mod common;

use common::TestApi;
use serde_json::json;

/// A port nothing listens on.
fn closed_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

const SEARCH: &str =
    "query($q: String!) { searchAnime(query: $q) { totalCount edges { node { title } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_internal_and_leaks_nothing() {
    let url = closed_url();
    let api =
        TestApi::start_with(&["--search-backend", "index", "--elasticsearch-url", &url]).await;
    let reply = api.gql(SEARCH, json!({"q": "frieren"}), None).await;
    reply.assert_code("INTERNAL");
    assert_eq!(reply.body["errors"][0]["message"], json!("internal error"));
    assert!(!reply.body.to_string().contains("127.0.0.1"), "{reply:?}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_falls_back_to_postgres_when_configured() {
    let url = closed_url();
    let api = TestApi::start_with(&[
        "--search-backend",
        "index",
        "--elasticsearch-url",
        &url,
        "--search-fallback-postgres",
        "true",
    ])
    .await;
    let admin = api.admin().await;
    api.create_anime(&admin, "Mushishi").await;
    let reply = api.gql(SEARCH, json!({"q": "mushi"}), None).await;
    assert_eq!(
        reply.data()["searchAnime"]["totalCount"],
        json!(1),
        "{reply:?}"
    );
    assert_eq!(
        reply.data()["searchAnime"]["edges"][0]["node"]["title"],
        json!("Mushishi")
    );
    api.stop().await;
}

/// The PostgreSQL backend (the test default) matches alternative titles too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_matches_alternative_titles() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    api.gql(
        "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
        json!({"i": {"title": "蟲師", "status": "FINISHED", "alternativeTitles": ["Mushi-shi", "虫师"]}}),
        Some(&admin),
    )
    .await
    .data();
    for query in ["mushi-SHI", "虫师"] {
        let reply = api.gql(SEARCH, json!({"q": query}), None).await;
        assert_eq!(
            reply.data()["searchAnime"]["edges"][0]["node"]["title"],
            json!("蟲師"),
            "{query}: {reply:?}"
        );
    }
    api.stop().await;
}
