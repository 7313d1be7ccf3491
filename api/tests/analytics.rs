//! `trendingAnime` and `subscriptionCounts` on the real search engine: the analytics
//! index `<prefix>-anime-stats` (a unique prefix per test) is created here with the
//! pipeline's mapping and its documents written here, as the analytics pipeline writes
//! them, for anime created through the API's mutations. Checked: the three windows
//! (current hour, previous hour, the last 24 hours; a window of 30 hours ago and one of
//! the next hour count in none), the order (most comments, then id), zero counts, deleted
//! and unknown anime left out (and made up for within `first`), `first` clamped, a missing
//! index answering [], the plans by plan for admins only, and an unreachable engine.

mod common;

use std::time::Duration;

use anineplus_connectors::search;
use anineplus_schemas::indices::stats_index;
use anineplus_testkit::{Stack, unique};
use common::TestApi;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;

const SUBSCRIPTION_COUNTS: &str = "{ subscriptionCounts { plan active } }";

/// The mapping the analytics pipeline creates the index with.
fn mapping() -> Value {
    json!({"mappings": {"properties": {
        "kind": {"type": "keyword"},
        "animeId": {"type": "keyword"},
        "plan": {"type": "keyword"},
        "windowStart": {"type": "date", "format": "epoch_millis"},
        "windowEnd": {"type": "date", "format": "epoch_millis"},
        "updatedAt": {"type": "date", "format": "epoch_millis"},
        "count": {"type": "long"},
    }}})
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The start of the current hour, once at least `margin` of it is left (else after
/// waiting for the next one), so that the API's "now" falls in the same hour.
async fn hour_with(margin: Duration) -> i64 {
    let now = now_ms();
    let left = HOUR - now.rem_euclid(HOUR);
    if left < margin.as_millis() as i64 {
        tokio::time::sleep(Duration::from_millis(left as u64 + 1_000)).await;
    }
    now_ms().div_euclid(HOUR) * HOUR
}

/// `PUT <index>/_doc/<id>?refresh=true`.
async fn put(client: &Elasticsearch, index: &str, id: &str, doc: Value) {
    search::call_json(
        client,
        Method::Put,
        &format!("/{index}/_doc/{id}?refresh=true"),
        Some(&doc),
    )
    .await
    .unwrap_or_else(|e| panic!("writing {id}: {e}"));
}

/// A `comments_per_hour` document: `count` comments on `anime` in the window at `start`.
async fn comments(client: &Elasticsearch, index: &str, anime: &str, start: i64, count: i64) {
    let id = format!("comments:{anime}:{start}");
    let doc = json!({"kind": "comments_per_hour", "animeId": anime, "windowStart": start,
                     "windowEnd": start + HOUR, "count": count, "updatedAt": now_ms()});
    put(client, index, &id, doc).await;
}

/// A `subscriptions_per_plan` document.
async fn plan(client: &Elasticsearch, index: &str, plan: &str, count: i64) {
    let doc = json!({"kind": "subscriptions_per_plan", "plan": plan, "count": count,
                     "updatedAt": now_ms()});
    put(client, index, &format!("plan:{plan}"), doc).await;
}

/// `trendingAnime(<args>)` as `(anime id, commentCount)` pairs, checking each node's title
/// is its anime's.
async fn trending(api: &TestApi, args: &str, titles: &[(&str, &str)]) -> Vec<(String, i64)> {
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({args})")
    };
    let query = format!("{{ trendingAnime{args} {{ commentCount anime {{ id title }} }} }}");
    let reply = api.gql(&query, json!({}), None).await;
    let list = reply.data()["trendingAnime"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply:?}"))
        .clone();
    list.iter()
        .map(|t| {
            let id = t["anime"]["id"].as_str().unwrap().to_owned();
            let title = titles.iter().find(|(i, _)| *i == id).map(|(_, t)| *t);
            assert_eq!(t["anime"]["title"].as_str(), title, "{t}");
            (id, t["commentCount"].as_i64().unwrap())
        })
        .collect()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected
        .iter()
        .map(|(id, n)| ((*id).to_owned(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trending_anime_ranks_each_window_and_plans_are_for_admins() {
    let stack = Stack::from_env();
    let (client, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let prefix = unique("apistats");
    let index = stats_index(&prefix);
    let api =
        TestApi::start_with(&["--index-prefix", &prefix, "--search-url", &stack.search_url]).await;
    let admin = api.admin().await;
    let (user, _) = api.user().await;

    // No index yet: empty answers, not errors.
    assert_eq!(trending(&api, "", &[]).await, []);
    assert_eq!(trending(&api, "window: LAST_24_HOURS", &[]).await, []);
    let reply = api.gql(SUBSCRIPTION_COUNTS, json!({}), Some(&admin)).await;
    assert_eq!(reply.data()["subscriptionCounts"], json!([]));

    search::call_json(&client, Method::Put, &format!("/{index}"), Some(&mapping()))
        .await
        .unwrap();
    // Still empty, and an empty index is not an error either.
    assert_eq!(trending(&api, "", &[]).await, []);

    let mut ids = Vec::new();
    for title in ["Frieren", "Mushishi", "Monster", "Dororo", "Planetes"] {
        ids.push(api.create_anime(&admin, title).await);
    }
    let [a, b, c, deleted, silent] = [0, 1, 2, 3, 4].map(|i| ids[i].as_str());
    let titles = [
        (a, "Frieren"),
        (b, "Mushishi"),
        (c, "Monster"),
        (deleted, "Dororo"),
        (silent, "Planetes"),
    ];
    let unknown = uuid::Uuid::now_v7().to_string();
    // Ties (a and c in the current hour) are broken by id: a was created first, so its
    // UUID v7 is the smaller.
    assert!(a < c);

    // Enough of the hour left for the writes and the queries below.
    let current = hour_with(Duration::from_secs(90)).await;
    let previous = current - HOUR;
    for (anime, start, count) in [
        (a, current, 5),
        (b, current, 7),
        (c, current, 5),
        (deleted, current, 50),
        (unknown.as_str(), current, 40),
        (silent, current, 0),
        (a, previous, 2),
        (c, previous, 9),
        (silent, previous, 0),
        (a, current - 23 * HOUR, 1),
        (b, current - 24 * HOUR, 100),
        (b, current - 30 * HOUR, 100),
        (a, current + HOUR, 1000),
    ] {
        comments(&client, &index, anime, start, count).await;
    }
    plan(&client, &index, "STANDARD", 0).await;
    plan(&client, &index, "PREMIUM", 3).await;
    plan(&client, &index, "BASIC", 12).await;
    let reply = api
        .gql(
            "mutation($id: ID!) { deleteAnime(id: $id) }",
            json!({"id": deleted}),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.data()["deleteAnime"], json!(true));

    // CURRENT_HOUR, the default: the deleted and the unknown anime are out although they
    // have the most comments, the anime with 0 comments is out, ties go by id.
    let current_hour = pairs(&[(b, 7), (a, 5), (c, 5)]);
    assert_eq!(trending(&api, "", &titles).await, current_hour);
    assert_eq!(
        trending(&api, "window: CURRENT_HOUR", &titles).await,
        current_hour
    );
    assert_eq!(
        trending(&api, "first: null, window: null", &titles).await,
        current_hour
    );
    // The engine's top 1 and 2 are the deleted and the unknown anime: made up for.
    assert_eq!(trending(&api, "first: 1", &titles).await, pairs(&[(b, 7)]));
    assert_eq!(
        trending(&api, "first: 2", &titles).await,
        pairs(&[(b, 7), (a, 5)])
    );
    // `first` is clamped to 1..=100.
    assert_eq!(trending(&api, "first: 0", &titles).await, pairs(&[(b, 7)]));
    assert_eq!(trending(&api, "first: -3", &titles).await, pairs(&[(b, 7)]));
    assert_eq!(trending(&api, "first: 500", &titles).await, current_hour);

    // LAST_HOUR: the previous window only.
    assert_eq!(
        trending(&api, "window: LAST_HOUR", &titles).await,
        pairs(&[(c, 9), (a, 2)])
    );

    // LAST_24_HOURS: the windows from 23 hours before the current one to the current one;
    // 24 and 30 hours before, and the next hour, are out.
    assert_eq!(
        trending(&api, "window: LAST_24_HOURS", &titles).await,
        pairs(&[(c, 14), (a, 8), (b, 7)])
    );
    assert_eq!(
        trending(&api, "first: 2, window: LAST_24_HOURS", &titles).await,
        pairs(&[(c, 14), (a, 8)])
    );
    assert_eq!(
        now_ms().div_euclid(HOUR) * HOUR,
        current,
        "the hour changed while the test ran"
    );

    // subscriptionCounts: admins only (the `logs` query's check), by plan.
    api.gql(SUBSCRIPTION_COUNTS, json!({}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    api.gql(SUBSCRIPTION_COUNTS, json!({}), Some(&user))
        .await
        .assert_error("FORBIDDEN", "only admins");
    let reply = api.gql(SUBSCRIPTION_COUNTS, json!({}), Some(&admin)).await;
    assert_eq!(
        reply.data()["subscriptionCounts"],
        json!([
            {"plan": "BASIC", "active": 12},
            {"plan": "PREMIUM", "active": 3},
            {"plan": "STANDARD", "active": 0},
        ])
    );

    api.stop().await;
    let _ = search::call_json(&client, Method::Delete, &format!("/{index}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_internal_and_leaks_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let api = TestApi::start_with(&["--search-url", &url]).await;
    let admin = api.admin().await;
    for (query, token) in [
        ("{ trendingAnime { commentCount } }", None),
        (SUBSCRIPTION_COUNTS, Some(admin.as_str())),
    ] {
        let reply = api.gql(query, json!({}), token).await;
        reply.assert_code("INTERNAL");
        assert_eq!(reply.body["errors"][0]["message"], json!("internal error"));
        assert!(!reply.body.to_string().contains("127.0.0.1"), "{reply:?}");
    }
    api.stop().await;
}
