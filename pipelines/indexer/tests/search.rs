//! Search as users expect it, on the real stack: the API and the search indexer served in
//! this process (unique database, topics and index prefix) over a small catalogue made
//! through the API's mutations. Typos, prefixes as typed, ASCII folding, Japanese titles,
//! exact above fuzzy and title above synopsis, highlights (HTML-escaped), facets under the
//! other filters, sorts, stable pages, and `suggest`.

mod common;

use std::time::Duration;

use anineplus_testkit::TestDatabase;
use common::Harness;
use common::api::Api;
use serde_json::{Value, json};

const SEARCH: &str = "query($q: String!, $first: Int, $after: String, $filter: AnimeSearchFilter, $sort: AnimeSearchSort) {
  searchAnime(query: $q, first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id title releaseYear } highlights { field snippet } }
    facets { genres { value count } status { value count } releaseYears { from to count } }
  } }";

/// The catalogue: title, synopsis, genres, status, release year.
const CATALOGUE: &[(&str, &str, &[&str], &str, i32)] = &[
    (
        "Frieren",
        "An elf mage outlives her party and travels on",
        &["fantasy", "adventure"],
        "FINISHED",
        2023,
    ),
    (
        "Frieden",
        "A quiet story about peace",
        &["drama"],
        "FINISHED",
        2015,
    ),
    (
        "Elf Princess Rane",
        "A comedy",
        &["comedy", "fantasy"],
        "FINISHED",
        1995,
    ),
    (
        "Kimetsu no Yaiba",
        "Tanjiro fights demons",
        &["action", "fantasy"],
        "AIRING",
        2019,
    ),
    ("Pokémon", "Catch them all", &["adventure"], "AIRING", 1997),
    (
        "葬送のフリーレン",
        "魔王を倒した勇者一行の後日譚",
        &["fantasy"],
        "FINISHED",
        2023,
    ),
    (
        "Mob Psycho 100",
        "A psychic boy",
        &["action", "comedy"],
        "FINISHED",
        2016,
    ),
    (
        "Love & <Lies>",
        "Marriage by algorithm",
        &["romance"],
        "FINISHED",
        2017,
    ),
];

struct Search<'a> {
    api: &'a Api,
}

impl Search<'_> {
    async fn run(&self, q: &str, vars: Value) -> Value {
        let mut v = json!({ "q": q, "first": 20 });
        v.as_object_mut()
            .unwrap()
            .extend(vars.as_object().unwrap().clone());
        self.api.gql(SEARCH, v, None, "search-test").await["searchAnime"].clone()
    }

    async fn titles(&self, q: &str) -> Vec<String> {
        titles(&self.run(q, json!({})).await)
    }
}

fn titles(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
        .collect()
}

fn facet(page: &Value, name: &str) -> Vec<(String, i64)> {
    page["facets"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["value"].as_str().unwrap().to_owned(),
                f["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_forgives_typos_completes_prefixes_folds_accents_and_counts_facets() {
    let t = Harness::new().await;
    let db = TestDatabase::create("search").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "search-signup",
        )
        .await;
    let admin = signed["signUp"]["token"].as_str().unwrap().to_owned();
    let create = "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }";
    let mut ids = std::collections::HashMap::new();
    for (title, synopsis, genres, status, year) in CATALOGUE {
        let made = api
            .gql(
                create,
                json!({"i": {"title": title, "synopsis": synopsis, "genres": genres, "status": status, "releaseYear": year}}),
                Some(&admin),
                "search-create",
            )
            .await;
        ids.insert(
            *title,
            made["createAnime"]["id"].as_str().unwrap().to_owned(),
        );
    }
    let s = Search { api: &api };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.run("", json!({})).await["totalCount"] != json!(CATALOGUE.len()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the catalogue was not indexed in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("search: {} anime indexed; querying", CATALOGUE.len());

    // Exact words; a typo (a transposition) in a 7-letter word; the start of a word.
    assert_eq!(s.titles("frieren").await[0], "Frieren");
    let typo = s.run("freiren", json!({})).await;
    assert!(titles(&typo).contains(&"Frieren".to_owned()), "{typo}");
    assert_eq!(
        typo["edges"][0]["highlights"][0],
        json!({"field": "title", "snippet": "<em>Frieren</em>"}),
        "{typo}"
    );
    let fri = s.titles("fri").await;
    assert!(
        fri.contains(&"Frieren".to_owned()) && fri.contains(&"Frieden".to_owned()),
        "{fri:?}"
    );
    // No typo allowed in a word of fewer than 5 letters: "mop" is not "Mob".
    assert!(s.titles("mop").await.is_empty());
    assert_eq!(s.titles("mob").await, ["Mob Psycho 100"]);
    // Exact above fuzzy: "frieden" is Frieden, then Frieren one letter away.
    assert_eq!(s.titles("frieden").await, ["Frieden", "Frieren"]);
    // Title above synopsis: "elf" is in a title and in Frieren's synopsis.
    let elf = s.run("elf", json!({})).await;
    assert_eq!(titles(&elf), ["Elf Princess Rane", "Frieren"], "{elf}");
    let synopsis = &elf["edges"][1]["highlights"];
    assert_eq!(synopsis[0]["field"], json!("synopsis"), "{elf}");
    assert!(
        synopsis[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<em>elf</em>")
    );
    // ASCII folding both ways; case.
    assert_eq!(s.titles("pokemon").await, ["Pokémon"]);
    assert_eq!(s.titles("KIMETSU").await, ["Kimetsu no Yaiba"]);
    assert_eq!(s.titles("kimetsu no yaiba").await, ["Kimetsu no Yaiba"]);
    // Japanese: a katakana word, a kanji pair, a synopsis phrase.
    assert_eq!(s.titles("フリーレン").await, ["葬送のフリーレン"]);
    assert_eq!(s.titles("葬送").await, ["葬送のフリーレン"]);
    assert_eq!(s.titles("勇者").await, ["葬送のフリーレン"]);
    // Highlights escape the title's markup and keep only theirs.
    let lies = s.run("lies", json!({})).await;
    assert_eq!(
        lies["edges"][0]["highlights"][0]["snippet"],
        json!("Love &amp; &lt;<em>Lies</em>&gt;"),
        "{lies}"
    );
    // A genre word.
    assert_eq!(s.titles("romance").await, ["Love & <Lies>"]);
    // An id.
    assert_eq!(s.titles(&ids["Pokémon"]).await, ["Pokémon"]);

    // Facets: each under the other filters. Fantasy among everything: 4; with the
    // genre filter, the genre facet still counts the others, the status facet does not.
    let all = s.run("", json!({})).await;
    assert!(
        facet(&all, "genres").contains(&("fantasy".into(), 4)),
        "{all}"
    );
    let fantasy = s.run("", json!({"filter": {"genres": ["Fantasy"]}})).await;
    assert_eq!(fantasy["totalCount"], json!(4), "{fantasy}");
    assert!(
        facet(&fantasy, "genres").contains(&("comedy".into(), 2)),
        "{fantasy}"
    );
    assert_eq!(
        facet(&fantasy, "status"),
        [("FINISHED".to_owned(), 3), ("AIRING".to_owned(), 1)]
    );
    let years = &fantasy["facets"]["releaseYears"];
    assert_eq!(
        years[2],
        json!({"from": 1990, "to": 1999, "count": 1}),
        "{years}"
    );
    assert_eq!(
        years[5],
        json!({"from": 2020, "to": null, "count": 2}),
        "{years}"
    );
    // Filters combine with the query and each other.
    let q = s
        .run(
            "fri",
            json!({"filter": {"status": ["FINISHED"], "releaseYearFrom": 2020}}),
        )
        .await;
    assert_eq!(titles(&q), ["Frieren"], "{q}");
    assert_eq!(q["totalCount"], json!(1));
    // Sorts.
    let by_year = titles(&s.run("", json!({"sort": "RELEASE_YEAR"})).await);
    assert_eq!(by_year.last().unwrap(), "Elf Princess Rane", "{by_year:?}");
    let newest = titles(&s.run("", json!({"sort": "NEWEST"})).await);
    assert_eq!(newest[0], "Love & <Lies>", "{newest:?}");
    assert_eq!(newest.last().unwrap(), "Frieren", "{newest:?}");

    // Pages of 3: stable, no overlap, everything once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .run("", json!({"first": 3, "after": after, "sort": "RELEVANCE"}))
            .await;
        seen.extend(titles(&page));
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), CATALOGUE.len(), "{seen:?}");

    // Autocomplete.
    let suggest =
        "query($p: String!) { suggest(prefix: $p) { id title matched { field snippet } } }";
    let got = api.gql(suggest, json!({"p": "fri"}), None, "suggest").await;
    let got: Vec<&str> = got["suggest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert!(
        got.contains(&"Frieren") && got.contains(&"Frieden"),
        "{got:?}"
    );
    let got = api
        .gql(suggest, json!({"p": "kimetsu no ya"}), None, "suggest")
        .await;
    assert_eq!(
        got["suggest"][0]["title"],
        json!("Kimetsu no Yaiba"),
        "{got}"
    );
    assert!(
        got["suggest"][0]["matched"]["snippet"]
            .as_str()
            .unwrap()
            .contains("<em>"),
        "{got}"
    );

    // Bad input: a year range backwards.
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/graphql", api.url))
        .json(&json!({"query": SEARCH, "variables": {"q": "x", "filter": {"releaseYearFrom": 2020, "releaseYearTo": 2010}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("releaseYearFrom"),
        "{reply}"
    );

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
}

const EVERYTHING: &str = "query($q: String!, $types: [SearchType!], $first: Int, $after: String) {
  search(query: $q, types: $types, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    counts { type count }
    edges { type highlights { field snippet } node {
      __typename
      ... on Anime { id title }
      ... on Episode { id title }
      ... on Comment { id body }
      ... on User { id name }
      ... on Organization { id name }
    } }
  } }";

fn kinds(page: &Value) -> Vec<(String, String)> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            let text = n["title"]
                .as_str()
                .or(n["body"].as_str())
                .or(n["name"].as_str());
            (
                e["type"].as_str().unwrap().to_owned(),
                text.unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_finds_every_kind_but_never_a_hidden_comment_or_an_email() {
    let t = Harness::new().await;
    let db = TestDatabase::create("search_all").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }";
    let admin = api
        .gql(
            sign_up,
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "all-signup",
        )
        .await["signUp"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A user named after the anime, whose email has a word no name has.
    let fan = api
        .gql(
            sign_up,
            json!({"i": {"email": "quuxmail@example.com", "name": "Zephyrine Fan", "password": "correct horse battery"}}),
            None,
            "all-signup-2",
        )
        .await;
    let fan_token = fan["signUp"]["token"].as_str().unwrap().to_owned();
    let anime = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": "Zephyrine", "genres": ["fantasy"], "status": "AIRING"}}),
            Some(&admin),
            "all-anime",
        )
        .await["createAnime"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.gql(
        "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id } }",
        json!({"i": {"animeId": anime, "number": 1, "title": "Zephyrine Departs"}}),
        Some(&admin),
        "all-episode",
    )
    .await;
    let post = "mutation($i: PostCommentInput!) { postComment(input: $i) { id } }";
    api.gql(
        post,
        json!({"i": {"animeId": anime, "body": "zephyrine is wonderful"}}),
        Some(&fan_token),
        "all-comment",
    )
    .await;
    let hidden = api
        .gql(
            post,
            json!({"i": {"animeId": anime, "body": "zephyrine spoilers everywhere"}}),
            Some(&fan_token),
            "all-comment-2",
        )
        .await["postComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.gql(
        "mutation($id: ID!) { moderateComment(id: $id, status: HIDDEN, reason: \"spoilers\") { id } }",
        json!({"id": hidden}),
        Some(&admin),
        "all-hide",
    )
    .await;
    api.gql(
        "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }",
        json!({"i": {"name": "Zephyrine Studio", "slug": "zephyrine-studio"}}),
        Some(&admin),
        "all-org",
    )
    .await;

    let run = |q: &'static str, vars: Value| {
        let api = &api;
        async move {
            let mut v = json!({ "q": q });
            v.as_object_mut()
                .unwrap()
                .extend(vars.as_object().unwrap().clone());
            api.gql(EVERYTHING, v, None, "all-search").await["search"].clone()
        }
    };
    // Everything indexed: one of each kind (the hidden comment never counts).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = run("zephyrine", json!({})).await;
        let n = page["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["count"] == json!(1))
            .count();
        if n == 5 && page["edges"].as_array().unwrap().len() == 5 {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all kinds indexed in 30 s: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("search: every kind indexed; querying");
    assert_eq!(page["totalCount"], json!(5), "{page}");
    let found = kinds(&page);
    assert!(
        found.contains(&("COMMENT".into(), "zephyrine is wonderful".into())),
        "{found:?}"
    );
    assert!(!page.to_string().contains("spoilers"), "{page}");
    assert!(
        found.contains(&("USER".into(), "Zephyrine Fan".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("ORGANIZATION".into(), "Zephyrine Studio".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("EPISODE".into(), "Zephyrine Departs".into())),
        "{found:?}"
    );
    // The anime's exact title ranks first, and its highlight is there.
    assert_eq!(found[0], ("ANIME".into(), "Zephyrine".into()), "{found:?}");
    assert_eq!(
        page["edges"][0]["highlights"][0]["snippet"],
        json!("<em>Zephyrine</em>")
    );
    // A typo, a prefix; `types` narrows.
    assert_eq!(run("zephyrien", json!({})).await["totalCount"], json!(5));
    let users = run("zeph", json!({"types": ["USER"]})).await;
    assert_eq!(
        kinds(&users),
        [("USER".to_owned(), "Zephyrine Fan".to_owned())],
        "{users}"
    );
    assert_eq!(users["counts"], json!([{"type": "USER", "count": 1}]));
    // The hidden comment's own words, and an email's, find nothing.
    assert_eq!(run("spoilers", json!({})).await["totalCount"], json!(0));
    assert_eq!(run("quuxmail", json!({})).await["totalCount"], json!(0));
    assert_eq!(
        run("quuxmail@example.com", json!({})).await["totalCount"],
        json!(0)
    );
    // Pages of 2 see each hit once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = run("zephyrine", json!({"first": 2, "after": after})).await;
        seen.extend(kinds(&page));
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "{seen:?}");

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
}
