//! The services `make up` runs, end to end: three comments posted through the API on a new
//! anime show in `trendingAnime` with a count of 3, through the outbox relay, the
//! `comment` topic, the analytics pipeline's two comment steps (exactly once), the
//! `anime-stats` topic, its index and the API's query. Needs the stack's services
//! (`make up`; `make test` starts them): the API at `API_URL` (default
//! `http://127.0.0.1:3000`), with the dev admin `admin@anineplus.local`.

use std::time::Duration;

use anineplus_testkit::unique;
use serde_json::{Value, json};

const ADMIN: &str = "admin@anineplus.local";
const PASSWORD: &str = "correct horse battery";

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the API of `make up` at {} does not answer ({e}): start it with `make up`",
                    self.url
                )
            })
            .json()
            .await
            .unwrap()
    }

    /// A token of `email`: signed up, or signed in when it exists already.
    async fn token(&self, email: &str) -> String {
        let up = self
            .gql(
                "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
                json!({"i": {"email": email, "name": "Analyst", "password": PASSWORD}}),
                None,
            )
            .await;
        if let Some(token) = up["data"]["signUp"]["token"].as_str() {
            return token.to_owned();
        }
        let login = self
            .gql(
                "mutation($i: LoginInput!) { login(input: $i) { token } }",
                json!({"i": {"email": email, "password": PASSWORD}}),
                None,
            )
            .await;
        login["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("neither sign-up nor login of {email}: {up} {login}"))
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_comments_on_a_new_anime_show_in_trending_anime_with_a_count_of_three() {
    let api = Api {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: std::env::var("API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".to_owned()),
    };
    let admin = api.token(ADMIN).await;
    let title = unique("Trending");
    let created = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": title, "status": "AIRING"}}),
            Some(&admin),
        )
        .await;
    let anime = created["data"]["createAnime"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createAnime: {created}"))
        .to_owned();
    let fan = api.token(&format!("{}@example.com", unique("fan"))).await;
    for n in 1..=3 {
        let posted = api
            .gql(
                "mutation($i: PostCommentInput!) { postComment(input: $i) { id } }",
                json!({"i": {"animeId": anime, "body": format!("comment {n}")}}),
                Some(&fan),
            )
            .await;
        assert!(posted["errors"].is_null(), "postComment: {posted}");
    }
    let query = "{ trendingAnime(first: 100) { anime { id title } commentCount } }";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let started = tokio::time::Instant::now();
    loop {
        let answer = api.gql(query, json!({}), None).await;
        assert!(answer["errors"].is_null(), "trendingAnime: {answer}");
        let entry = answer["data"]["trendingAnime"]
            .as_array()
            .and_then(|list| list.iter().find(|e| e["anime"]["id"] == anime.as_str()))
            .cloned();
        if let Some(entry) = &entry
            && entry["commentCount"] == 3
        {
            assert_eq!(entry["anime"]["title"], title.as_str());
            println!(
                "trendingAnime counted the 3 comments after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 60 s the anime's entry is {entry:?} in {answer} (is the analytics pipeline of `make up` running? `make status`)"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
